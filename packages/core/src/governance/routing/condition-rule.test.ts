import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { Call } from "../../call/call.js";
import { FarcallError } from "../../errors/farcall-error.js";
import { sampleEndpoint } from "../../registry/sample-endpoint.js";
import {
  type ConditionRule,
  formatConditionRule,
  matchesGlob,
  matchesThen,
  matchesWhen,
  parseConditionRule,
  type ThenCondition,
  type WhenCondition,
} from "./condition-rule.js";
import type { RouteContext } from "./router.js";

function callOf(method: string, args: readonly unknown[] = [], metadata: Record<string, string> = {}): Call {
  return { ref: { method }, args, metadata } as unknown as Call;
}

const consumer: RouteContext = { application: "shop", host: "10.1.0.7" };

/** Asserts that parsing `text` throws `invalid_argument` / `bad_rule` whose message contains `fragment`; returns the error. */
function rejects(text: string, fragment: string): FarcallError {
  try {
    parseConditionRule(text);
  } catch (error) {
    assert.ok(error instanceof FarcallError, `not a FarcallError: ${String(error)}`);
    assert.equal(error.code, "invalid_argument");
    assert.equal(error.reason, "bad_rule");
    assert.deepEqual(error.details, { rule: text.slice(0, 200) });
    assert.ok(error.message.includes(fragment), `${JSON.stringify(error.message)} does not say ${JSON.stringify(fragment)}`);
    return error;
  }
  assert.fail(`${JSON.stringify(text)} was accepted`);
}

describe("parseConditionRule", () => {
  it("parses both sides of the example rule into frozen plain data", () => {
    const rule = parseConditionRule("method = find*,list* & application != admin => host = 10.0.* & port != 20881");
    assert.deepEqual(rule, {
      when: [
        { key: "method", operator: "=", values: ["find*", "list*"] },
        { key: "application", operator: "!=", values: ["admin"] },
      ],
      then: [
        { key: "host", operator: "=", values: ["10.0.*"] },
        { key: "port", operator: "!=", values: ["20881"] },
      ],
    });
    for (const part of [rule, rule.when, rule.then, ...rule.when, ...rule.then, ...rule.when.map((c) => c.values)]) assert.ok(Object.isFrozen(part));
  });

  it("reads arguments[N] and metadata.NAME keys, and every then key", () => {
    const rule = parseConditionRule("arguments[0] = vip* & arguments[255] != x & metadata.x-user = 1,2 => address = 10.0.0.1:* & application = a & version = 2.* & group = g & tag = gray & protocol = farcall");
    assert.deepEqual(rule.when, [
      { key: "arguments", index: 0, operator: "=", values: ["vip*"] },
      { key: "arguments", index: 255, operator: "!=", values: ["x"] },
      { key: "metadata", name: "x-user", operator: "=", values: ["1", "2"] },
    ]);
    assert.deepEqual(
      rule.then.map((c) => c.key),
      ["address", "application", "version", "group", "tag", "protocol"],
    );
  });

  it("takes empty sides: a block rule, a rule for every call, and both", () => {
    assert.deepEqual(parseConditionRule("host = 10.0.0.5 =>"), { when: [{ key: "host", operator: "=", values: ["10.0.0.5"] }], then: [] });
    assert.deepEqual(parseConditionRule("=> host != 10.0.0.3"), { when: [], then: [{ key: "host", operator: "!=", values: ["10.0.0.3"] }] });
    assert.deepEqual(parseConditionRule("  =>\t"), { when: [], then: [] });
  });

  it("ignores spaces around tokens", () => {
    assert.deepEqual(parseConditionRule("method=find*,get*&host!=a=>port=1"), parseConditionRule(" method \t= find* ,\nget*  &  host  != a  =>  port =  1 "));
  });

  it("accepts the limits: 1024 characters, 16 conditions per side, 64 values per condition", () => {
    const sixteen = Array.from({ length: 16 }, (_, i) => `metadata.k${i} = v`).join(" & ");
    const sixteenThen = Array.from({ length: 16 }, (_, i) => `tag != t${i}`).join(" & ");
    const rule = parseConditionRule(`${sixteen} => ${sixteenThen}`);
    assert.equal(rule.when.length, 16);
    assert.equal(rule.then.length, 16);
    const values = Array.from({ length: 64 }, (_, i) => `v${i}`).join(",");
    assert.equal(parseConditionRule(`method = ${values} =>`).when[0]?.values.length, 64);
    const long = `method = ${"a".repeat(1024 - "method = ".length - " =>".length)} =>`;
    assert.equal(long.length, 1024);
    assert.equal(parseConditionRule(long).when.length, 1);
  });

  it("rejects malformed rules with bad_rule, saying what is wrong", () => {
    const cases: [string, string][] = [
      ["method = find*", 'no "=>"'],
      ["method = a => host = b => port = 1", 'a second "=>"'],
      ["metho = x =>", 'unknown key "metho" on the when side'],
      ["=> hots = x", 'unknown key "hots" on the then side'],
      ["port = 1 =>", '"port" is a key of the then side'],
      ["=> method = x", '"method" is a key of the when side'],
      ["=> metadata.x = y", '"metadata.x" is a key of the when side'],
      ["=> arguments[0] = y", '"arguments[0]" is a key of the when side'],
      ["method = =>", 'an empty value for "method"'],
      ["method = a,,b =>", 'an empty value for "method"'],
      ["method = a, =>", 'an empty value for "method"'],
      ["method = a & =>", "an empty condition on the when side"],
      ["=> & host = a", "an empty condition on the then side"],
      ["method a =>", 'no "=" or "!="'],
      ["= a =>", 'no key before "="'],
      ["!= a =>", 'no key before "!="'],
      ["method ! = a =>", 'unknown key "method !"'],
      ["arguments[256] = a =>", "argument index 256 is over 255"],
      ["arguments[x] = a =>", "is not arguments[N]"],
      ["arguments[1000] = a =>", "is not arguments[N]"],
      ["metadata. = a =>", '"metadata." without a name'],
      ["metadata.a b = c =>", 'a metadata name contains " "'],
      ["method = a b =>", 'a value of "method" contains " "'],
      ["method = a!b =>", 'contains "!"'],
      ["method = >a =>", 'starts with ">"'],
      ["method = a\u0000 =>", 'contains "\\u0000"'],
      ["method = a\u00a0b =>", 'contains "\u00a0"'],
      ["x".repeat(1025), "1025 characters long, over the limit of 1024"],
      [`${Array.from({ length: 17 }, () => "method = a").join(" & ")} =>`, "more than 16 conditions on the when side"],
      [`=> ${Array.from({ length: 17 }, () => "port = 1").join(" & ")}`, "more than 16 conditions on the then side"],
      [`method = ${Array.from({ length: 65 }, (_, i) => `m${i}`).join(",")} =>`, 'more than 64 values for "method"'],
    ];
    for (const [text, fragment] of cases) rejects(text, fragment);
  });

  it("says where: the character (1-based) at which the problem is", () => {
    const text = "method = a => host = b & hots = x";
    rejects(text, `(at character ${text.indexOf("hots") + 1})`);
    rejects("method = a b =>", "(at character 11)");
  });

  it("keeps only the first 200 characters of the rule in details", () => {
    const error = rejects("y".repeat(1025), "over the limit");
    assert.equal((error.details["rule"] as string).length, 200);
  });

  it("rejects a value that is not a string with bad_rule", () => {
    assert.throws(
      () => parseConditionRule(42 as unknown as string),
      (error) => error instanceof FarcallError && error.reason === "bad_rule" && error.message.includes("must be a string, got number"),
    );
  });
});

describe("matchesWhen", () => {
  it("matches every call when the when side is empty", () => {
    const rule = parseConditionRule("=> host = a");
    assert.ok(matchesWhen(rule, callOf("anything", [1]), consumer));
  });

  it("method = find*,list*: any of the globs; != : none of them", () => {
    const any = parseConditionRule("method = find*,list* =>");
    const none = parseConditionRule("method != find*,list* =>");
    for (const [method, expected] of [
      ["findUser", true],
      ["find", true],
      ["listAll", true],
      ["save", false],
      ["refind", false],
    ] as const) {
      assert.equal(matchesWhen(any, callOf(method), consumer), expected, method);
      assert.equal(matchesWhen(none, callOf(method), consumer), !expected, method);
    }
  });

  it("requires every condition (&), reading the consumer's application and host from the context", () => {
    const rule = parseConditionRule("method = find* & application != admin & host = 10.1.* =>");
    assert.ok(matchesWhen(rule, callOf("findA"), consumer));
    assert.ok(!matchesWhen(rule, callOf("findA"), { application: "admin", host: "10.1.0.7" }));
    assert.ok(!matchesWhen(rule, callOf("findA"), { application: "shop", host: "10.2.0.7" }));
    assert.ok(!matchesWhen(rule, callOf("save"), consumer));
  });

  it("matches arguments by their string form; other arguments never match = and always match !=", () => {
    const eq = parseConditionRule("arguments[1] = 42,true,9007199254740993,vip-* =>");
    const ne = parseConditionRule("arguments[1] != 42,true,9007199254740993,vip-* =>");
    for (const [arg, expected] of [
      [42, true],
      [true, true],
      [9007199254740993n, true],
      ["vip-7", true],
      ["42", true],
      [43, false],
      [false, false],
      ["plain", false],
    ] as const) {
      assert.equal(matchesWhen(eq, callOf("m", ["x", arg]), consumer), expected, String(arg));
      assert.equal(matchesWhen(ne, callOf("m", ["x", arg]), consumer), !expected, String(arg));
    }
    const anything = parseConditionRule("arguments[1] = * =>");
    const nothing = parseConditionRule("arguments[1] != * =>");
    for (const args of [["x", { id: 42 }], ["x", null], ["x", undefined], ["x"], ["x", ["42"]]]) {
      assert.equal(matchesWhen(anything, callOf("m", args), consumer), false, JSON.stringify(args));
      assert.equal(matchesWhen(nothing, callOf("m", args), consumer), true, JSON.stringify(args));
    }
  });

  it("matches metadata values; a missing name, even one on Object.prototype, is like a non-string argument", () => {
    const rule = parseConditionRule("metadata.x-user = u-* =>");
    assert.ok(matchesWhen(rule, callOf("m", [], { "x-user": "u-1" }), consumer));
    assert.ok(!matchesWhen(rule, callOf("m", [], { "x-user": "v-1" }), consumer));
    assert.ok(!matchesWhen(rule, callOf("m", [], {}), consumer));
    assert.ok(!matchesWhen(parseConditionRule("metadata.constructor = * =>"), callOf("m"), consumer));
    assert.ok(matchesWhen(parseConditionRule("metadata.toString != x =>"), callOf("m"), consumer));
  });

  it("treats rule text as data: no regular-expression metacharacter is special", () => {
    assert.ok(!matchesWhen(parseConditionRule("method = a.b =>"), callOf("axb"), consumer));
    assert.ok(!matchesWhen(parseConditionRule("method = get? =>"), callOf("getX"), consumer));
    assert.ok(!matchesWhen(parseConditionRule("method = (a+)+$ =>"), callOf("aaaa"), consumer));
    assert.ok(matchesWhen(parseConditionRule("method = (a+)+$ =>"), callOf("(a+)+$"), consumer));
  });
});

describe("matchesThen", () => {
  const provider = sampleEndpoint("s", 20880, { host: "10.0.0.1", application: "users", version: "2.1", group: "g1", tag: "gray", protocol: "farcall" });

  it("reads each then key from the endpoint", () => {
    const holding = [
      "host = 10.0.*",
      "port = 20880",
      "port != 20881",
      "address = 10.0.0.1:20880",
      "application = users",
      "version = 2.*",
      "group = g1",
      "tag = gray",
      "protocol = farcall",
      "host = 10.0.0.1 & port = 2088*",
    ];
    for (const then of holding) assert.ok(matchesThen(parseConditionRule(`=> ${then}`), provider), then);
    const failing = ["host = 10.0.0.2", "port = 20881", "address = 10.0.0.1:1", "application != users", "version = 1.*", "group = g2", "tag = blue", "protocol = http", "host = 10.0.0.1 & port = 1"];
    for (const then of failing) assert.ok(!matchesThen(parseConditionRule(`=> ${then}`), provider), then);
  });

  it("matches no endpoint when the then side is empty (a block rule)", () => {
    assert.ok(!matchesThen(parseConditionRule("method = a =>"), provider));
  });
});

/** Reference glob matcher: dynamic programming over (pattern, subject) prefixes. */
function referenceGlob(pattern: string, subject: string): boolean {
  let row = Array.from({ length: subject.length + 1 }, (_, j) => j === 0);
  for (const p of pattern) {
    const next = [p === "*" && (row[0] as boolean)];
    for (let j = 1; j <= subject.length; j++) next[j] = p === "*" ? (row[j] as boolean) || (next[j - 1] as boolean) : (row[j - 1] as boolean) && subject[j - 1] === p;
    row = next;
  }
  return row[subject.length] as boolean;
}

describe("matchesGlob", () => {
  it("matches examples: * is any run, also empty", () => {
    for (const [pattern, subject, expected] of [
      ["*", "", true],
      ["*", "abc", true],
      ["", "", true],
      ["", "a", false],
      ["a*", "a", true],
      ["*a", "ba", true],
      ["a*c", "abbc", true],
      ["a*c", "ac", true],
      ["a*c", "acb", false],
      ["a*b*a", "aba", true],
      ["a*b*a", "ab", false],
      ["ab*ba", "aba", false],
      ["10.0.*", "10.0.0.1", true],
      ["10.0.*", "10.1.0.1", false],
      ["**", "x", true],
    ] as const) {
      assert.equal(matchesGlob(pattern, subject), expected, `${pattern} ~ ${subject}`);
    }
  });

  it("agrees with a reference matcher on arbitrary patterns and subjects", () => {
    const text = (maxLength: number) => fc.string({ unit: fc.constantFrom("a", "b", "*"), maxLength });
    fc.assert(
      fc.property(text(8), text(12), (pattern, subject) => {
        assert.equal(matchesGlob(pattern, subject), referenceGlob(pattern, subject));
      }),
      { numRuns: 2000 },
    );
  });

  it("stays fast on a pattern that makes backtracking matchers explode (a 1 MB subject)", { timeout: 10_000 }, () => {
    const subject = "a".repeat(1_000_000);
    const pattern = `${"*a".repeat(40)}*b`;
    assert.equal(matchesGlob(pattern, subject), false);
    assert.equal(matchesGlob(`*${"a".repeat(500)}b*`, subject), false);
    assert.equal(matchesGlob(`${"a*".repeat(40)}a`, subject), true);
  });
});

// Grammar-shaped generators: plain values (no whitespace, `=`, `!`, `&`, `,`; not starting with `>`).
const plain = fc.string({ unit: fc.constantFrom("a", "B", "0", "9", ".", "-", "_", ":", "*", ">", "[", "]", "é", "😀"), minLength: 1, maxLength: 8 }).filter((v) => !v.startsWith(">"));
const values = fc.array(plain, { minLength: 1, maxLength: 4 });
/** Records with Object.prototype, as the parser builds them (deepStrictEqual compares prototypes). */
const plainObject = { noNullPrototype: true } as const;
const operator = fc.constantFrom("=" as const, "!=" as const);
const whenCondition: fc.Arbitrary<WhenCondition> = fc.oneof(
  fc.record({ key: fc.constantFrom("method" as const, "application" as const, "host" as const), operator, values }, plainObject),
  fc.record({ key: fc.constant("arguments" as const), index: fc.integer({ min: 0, max: 255 }), operator, values }, plainObject),
  fc.record({ key: fc.constant("metadata" as const), name: plain, operator, values }, plainObject),
);
const thenCondition: fc.Arbitrary<ThenCondition> = fc.record({
  key: fc.constantFrom("host" as const, "port" as const, "address" as const, "application" as const, "version" as const, "group" as const, "tag" as const, "protocol" as const),
  operator,
  values,
}, plainObject);
const rules: fc.Arbitrary<ConditionRule> = fc.record({ when: fc.array(whenCondition, { maxLength: 4 }), then: fc.array(thenCondition, { maxLength: 4 }) }, plainObject);
const space = fc.constantFrom("", " ", "  ", "\t", "\n");

/** Writes `rule` with arbitrary spacing around tokens. */
function written(rule: ConditionRule, gap: () => string): string {
  const key = (c: WhenCondition | ThenCondition): string => (c.key === "arguments" ? `arguments[${c.index}]` : c.key === "metadata" ? `metadata.${c.name}` : c.key);
  const side = (conditions: readonly (WhenCondition | ThenCondition)[]): string =>
    conditions.map((c) => `${gap()}${key(c)}${gap()}${c.operator}${gap()}${c.values.join(`${gap()},${gap()}`)}${gap()}`).join("&");
  return `${side(rule.when)}=>${side(rule.then)}`;
}

const tokens = ["method", "application", "host", "port", "address", "tag", "arguments[", "arguments[3]", "arguments[300]", "]", "metadata.", "metadata.x", "=", "!=", "=>", "&", ",", "*", " ", "\t", "find*", "10.0.*", "20881", ">", "!", "", "é", "\u0000"];

const tokenSoup = fc.array(fc.constantFrom(...tokens), { maxLength: 40 }).map((parts) => parts.join(""));
/** Rule-shaped token strings: each token is valid 19 times in 20, else a likely mistake (wrong key, side, operator, separator). */
const nearGrammar = (() => {
  const mostly = (good: readonly string[], bad: readonly string[]) => fc.oneof({ weight: 19, arbitrary: fc.constantFrom(...good) }, { weight: 1, arbitrary: fc.constantFrom(...bad) });
  const gap = fc.constantFrom("", " ", "\t", "  ");
  const op = mostly(["=", "!="], ["", "=>", "==", "! ="]);
  const value = mostly(["find*", "10.0.*", "20881", "*", "a", "é"], ["", ">x", "a b", "!", "x&"]);
  const condition = (keys: readonly string[]) =>
    fc
      .tuple(gap, mostly(keys, ["bogus", "", "arguments[256]", "metadata.", "port", "method"]), gap, op, gap, fc.array(value, { minLength: 1, maxLength: 3 }), gap)
      .map(([a, k, b, o, c, vs, d]) => `${a}${k}${b}${o}${c}${vs.join(",")}${d}`);
  const side = (keys: readonly string[]) => fc.tuple(fc.array(condition(keys), { maxLength: 3 }), mostly(["&", " & "], ["&&", ","])).map(([cs, and]) => cs.join(and));
  const when = side(["method", "application", "host", "arguments[0]", "arguments[255]", "metadata.k"]);
  const then = side(["host", "port", "address", "application", "version", "group", "tag", "protocol"]);
  return fc.tuple(when, mostly(["=>", " => "], ["", "=>=>", "="]), then).map(([w, arrow, t]) => `${w}${arrow}${t}`);
})();

function expectRuleOrBadRule(text: string): ConditionRule | undefined {
  try {
    return parseConditionRule(text);
  } catch (error) {
    assert.ok(error instanceof FarcallError, `not a FarcallError: ${String(error)}`);
    assert.equal(error.reason, "bad_rule");
    assert.equal(error.code, "invalid_argument");
    assert.deepEqual(error.details, { rule: text.slice(0, 200) });
    return undefined;
  }
}

describe("parseConditionRule (fuzz)", () => {
  it("returns a rule or throws bad_rule for arbitrary strings", () => {
    const anyString = fc.oneof(fc.string({ maxLength: 1100 }), fc.string({ unit: "binary", maxLength: 300 }), fc.string({ unit: "grapheme", maxLength: 300 }));
    fc.assert(fc.property(anyString, (text) => void expectRuleOrBadRule(text)), { numRuns: 3000 });
  });

  it("returns a rule or throws bad_rule for strings of grammar tokens; a printed rule parses back to an equal rule", () => {
    let parsed = 0;
    fc.assert(
      fc.property(fc.oneof(tokenSoup, nearGrammar), (text) => {
        const rule = expectRuleOrBadRule(text);
        if (rule === undefined) return;
        parsed++;
        assert.deepEqual(parseConditionRule(formatConditionRule(rule)), rule);
      }),
      { numRuns: 5000 },
    );
    assert.ok(parsed > 500, `only ${parsed} of 5000 token strings were rules: the round trip was hardly tried`);
  });

  it("parses any rule written from the grammar, with any spacing, to that rule; printing and parsing again gives it back", () => {
    fc.assert(
      fc.property(rules, fc.infiniteStream(space), (rule, gaps) => {
        const parsed = parseConditionRule(written(rule, () => gaps.next().value as string));
        assert.deepEqual(parsed, rule);
        assert.deepEqual(parseConditionRule(formatConditionRule(parsed)), rule);
      }),
      { numRuns: 2000 },
    );
  });

  it("prints a rule near the length limit without spaces, so that it still parses back", () => {
    const condition = (i: number) => `metadata.k${String(i).padStart(2, "0")}=${"v".repeat(40)}`;
    let text = `${Array.from({ length: 16 }, (_, i) => condition(i)).join("&")}=>`;
    text += `tag=${"t".repeat(1024 - text.length - 4)}`;
    assert.equal(text.length, 1024);
    const rule = parseConditionRule(text);
    const printed = formatConditionRule(rule);
    assert.equal(printed, text, "the compact form is the canonical text without spaces");
    assert.deepEqual(parseConditionRule(printed), rule);
  });

  it("prints the canonical spaced form", () => {
    const text = "method = find*,list* & application != admin & arguments[2] = x & metadata.k = v => host = 10.0.* & port != 20881";
    assert.equal(formatConditionRule(parseConditionRule(` ${text.replaceAll(" ", "")} `)), text);
    assert.equal(formatConditionRule(parseConditionRule("host=10.0.0.5=>")), "host = 10.0.0.5 =>");
    assert.equal(formatConditionRule(parseConditionRule("=>host!=10.0.0.3")), "=> host != 10.0.0.3");
  });
});
