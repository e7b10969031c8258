import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { FarcallError } from "../errors/farcall-error.js";
import {
  formatGovernanceRules,
  type GovernanceRules,
  maxGovernanceRulesBytes,
  parseGovernanceRules,
} from "./governance-rules.js";

/** Asserts that `run` throws `invalid_argument` / `bad_rules` naming `path`. */
function rejects(run: () => unknown, path: string, what = path): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof FarcallError, `${what}: a FarcallError, got ${String(error)}`);
    assert.equal(error.code, "invalid_argument", what);
    assert.equal(error.reason, "bad_rules", what);
    assert.equal(error.details["path"], path, what);
    assert.equal(error.sent, false, what);
    return true;
  });
}

const parse = (document: unknown): GovernanceRules => parseGovernanceRules(JSON.stringify(document));

/** A document of exactly `bytes` UTF-8 bytes: `{}` padded with spaces. */
function padded(bytes: number): string {
  return `{${" ".repeat(bytes - 2)}}`;
}

describe("parseGovernanceRules", () => {
  it("reads every field of a version 1 document, with defaults and frozen results", () => {
    const rules = parse({
      version: 1,
      providers: { "10.0.0.1:8080": { weight: 0 }, "[::1]:9000": { disabled: true }, "host-a.example:1": { weight: 10_000, disabled: false }, "b:2": {} },
      routes: ["method = get => host = 10.0.0.1", { rule: "=> host != 10.0.0.2", force: true }, { rule: "tag = gray => ", enabled: false }],
      tagForce: true,
    });
    assert.deepEqual(Object.entries(rules.providers), [
      ["10.0.0.1:8080", { weight: 0 }],
      ["[::1]:9000", { disabled: true }],
      ["host-a.example:1", { weight: 10_000, disabled: false }],
      ["b:2", {}],
    ]);
    assert.deepEqual(rules.routes, [
      { rule: "method = get => host = 10.0.0.1", force: false, enabled: true },
      { rule: "=> host != 10.0.0.2", force: true, enabled: true },
      { rule: "tag = gray => ", force: false, enabled: false },
    ]);
    assert.equal(rules.tagForce, true);
    assert.deepEqual(rules.ignored, []);
    assert.ok(Object.isFrozen(rules) && Object.isFrozen(rules.routes) && Object.isFrozen(rules.routes[0]));
    assert.ok(Object.isFrozen(rules.providers) && Object.isFrozen(rules.providers["b:2"]) && Object.isFrozen(rules.ignored));
    assert.equal(Object.getPrototypeOf(rules.providers), null);
    assert.equal(rules.providers["constructor"], undefined);
  });

  it("reads an empty document as no overrides, tagForce absent", () => {
    const rules = parseGovernanceRules(" {} ");
    assert.deepEqual(Object.keys(rules.providers), []);
    assert.deepEqual(rules.routes, []);
    assert.equal("tagForce" in rules, false);
    assert.equal(parse({ tagForce: false }).tagForce, false);
  });

  it("ignores unknown fields at every level and lists their paths", () => {
    const rules = parse({ comment: "by ops", providers: { "h:1": { weight: 5, label: "x" } }, routes: [{ rule: "=> a = b", note: 1 }], future: { anything: [1] } });
    assert.deepEqual(rules.ignored, ["comment", "providers.h:1.label", "routes.0.note", "future"]);
    assert.equal(rules.providers["h:1"]?.weight, 5);
  });

  it("accepts each limit exactly: 1000 providers, 64 routes, 1024-character rules, 65536 bytes", () => {
    const providers = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`10.0.${i >> 8}.${i & 255}:1`, { weight: i }]));
    assert.equal(Object.keys(parse({ providers }).providers).length, 1000);
    assert.equal(parse({ routes: Array.from({ length: 64 }, () => "=> a = b") }).routes.length, 64);
    assert.equal(parse({ routes: ["x".repeat(1024)] }).routes[0]?.rule.length, 1024);
    assert.deepEqual(Object.keys(parse({ providers: { "h:65535": {} } }).providers), ["h:65535"]);
    assert.equal(parseGovernanceRules(padded(maxGovernanceRulesBytes)).routes.length, 0);
  });

  it("rejects a document that is too large, not JSON, or not an object", () => {
    rejects(() => parseGovernanceRules(padded(maxGovernanceRulesBytes + 1)), "", "one byte over");
    // Under the cap in characters, over it in bytes.
    rejects(() => parseGovernanceRules(`{"comment":"${"é".repeat(40_000)}"}`), "", "multi-byte");
    for (const text of ["", "{", "{'a':1}", "[]", "null", "1", '"text"', "true", "{} {}", "{\"a\":1,}"]) rejects(() => parseGovernanceRules(text), "", text);
    rejects(() => parseGovernanceRules(42 as unknown as string), "", "not a string");
  });

  it("rejects __proto__, constructor and prototype keys wherever they appear, polluting nothing", () => {
    const cases: Array<[string, string]> = [
      ['{"__proto__":{"polluted":true}}', "__proto__"],
      ['{"constructor":{"prototype":{"polluted":true}}}', "constructor"],
      ['{"prototype":1}', "prototype"],
      ['{"providers":{"__proto__":{"weight":1}}}', "providers.__proto__"],
      ['{"providers":{"h:1":{"constructor":1}}}', "providers.h:1.constructor"],
      ['{"routes":[{"rule":"a","__proto__":{"force":true}}]}', "routes.0.__proto__"],
    ];
    for (const [text, path] of cases) rejects(() => parseGovernanceRules(text), path, text);
    assert.equal(({} as Record<string, unknown>)["polluted"], undefined);
    assert.equal((Object.prototype as unknown as Record<string, unknown>)["polluted"], undefined);
  });

  it("rejects every malformed field, naming its path", () => {
    const many = (n: number, value: (i: number) => unknown): Record<string, unknown> =>
      Object.fromEntries(Array.from({ length: n }, (_, i) => [`10.1.${i >> 8}.${i & 255}:1`, value(i)]));
    const cases: Array<[unknown, string]> = [
      [{ version: 2 }, "version"],
      [{ version: "1" }, "version"],
      [{ providers: [] }, "providers"],
      [{ providers: null }, "providers"],
      [{ providers: "h:1" }, "providers"],
      [{ providers: many(1001, () => ({})) }, "providers"],
      [{ providers: { nohost: {} } }, "providers.nohost"],
      [{ providers: { "h:0": {} } }, "providers.h:0"],
      [{ providers: { "h:65536": {} } }, "providers.h:65536"],
      [{ providers: { "h:080": {} } }, "providers.h:080"],
      [{ providers: { ":80": {} } }, "providers.:80"],
      [{ providers: { "h:": {} } }, "providers.h:"],
      [{ providers: { "a b:1": {} } }, "providers.a b:1"],
      [{ providers: { [`${"h".repeat(300)}:1`]: {} } }, `providers.${"h".repeat(256)}…`],
      [{ providers: { "h:1": null } }, "providers.h:1"],
      [{ providers: { "h:1": [] } }, "providers.h:1"],
      [{ providers: { "h:1": 5 } }, "providers.h:1"],
      [{ providers: { "10.0.0.1:1": { weight: -1 } } }, "providers.10.0.0.1:1.weight"],
      [{ providers: { "10.0.0.1:1": { weight: 10_001 } } }, "providers.10.0.0.1:1.weight"],
      [{ providers: { "10.0.0.1:1": { weight: 1.5 } } }, "providers.10.0.0.1:1.weight"],
      [{ providers: { "10.0.0.1:1": { weight: "5" } } }, "providers.10.0.0.1:1.weight"],
      [{ providers: { "10.0.0.1:1": { weight: null } } }, "providers.10.0.0.1:1.weight"],
      [{ providers: { "10.0.0.1:1": { disabled: "true" } } }, "providers.10.0.0.1:1.disabled"],
      [{ providers: { "10.0.0.1:1": { disabled: 1 } } }, "providers.10.0.0.1:1.disabled"],
      [{ routes: {} }, "routes"],
      [{ routes: "=> a = b" }, "routes"],
      [{ routes: Array.from({ length: 65 }, () => "=> a = b") }, "routes"],
      [{ routes: [1] }, "routes.0"],
      [{ routes: ["ok", null] }, "routes.1"],
      [{ routes: [["=> a = b"]] }, "routes.0"],
      [{ routes: [""] }, "routes.0"],
      [{ routes: ["x".repeat(1025)] }, "routes.0"],
      [{ routes: [{}] }, "routes.0.rule"],
      [{ routes: [{ force: true }] }, "routes.0.rule"],
      [{ routes: [{ rule: 5 }] }, "routes.0.rule"],
      [{ routes: [{ rule: "" }] }, "routes.0.rule"],
      [{ routes: [{ rule: "a", force: "yes" }] }, "routes.0.force"],
      [{ routes: [{ rule: "a", enabled: 1 }] }, "routes.0.enabled"],
      [{ tagForce: "true" }, "tagForce"],
      [{ tagForce: null }, "tagForce"],
    ];
    for (const [document, path] of cases) rejects(() => parse(document), path, JSON.stringify(document).slice(0, 80));
  });

  it("keeps the error message and details small whatever the input", () => {
    const key = `${"k".repeat(60_000)}:1`;
    try {
      parse({ providers: { [key]: {} } });
      assert.fail("accepted");
    } catch (error) {
      assert.ok(error instanceof FarcallError);
      assert.ok(error.message.length < 400, `message of ${error.message.length} characters`);
    }
  });
});

describe("formatGovernanceRules", () => {
  it("writes the canonical text: version 1, providers sorted, routes in full, empty sections left out", () => {
    const rules = parse({ tagForce: false, routes: ["=> a = b"], providers: { "b:2": { disabled: true, weight: 3 }, "a:1": {} }, extra: 1 });
    assert.equal(
      formatGovernanceRules(rules),
      '{"version":1,"providers":{"a:1":{},"b:2":{"weight":3,"disabled":true}},"routes":[{"rule":"=> a = b","force":false,"enabled":true}],"tagForce":false}',
    );
    assert.equal(formatGovernanceRules(parse({})), '{"version":1}');
  });

  it("gives equal texts for equal rules written differently", () => {
    const one = parse({ providers: { "a:1": { weight: 1 }, "b:2": { disabled: false } }, routes: [{ rule: "r" }] });
    const two = parse({ routes: ["r"], providers: { "b:2": { disabled: false }, "a:1": { weight: 1 } }, version: 1 });
    assert.equal(formatGovernanceRules(one), formatGovernanceRules(two));
  });

  it("rejects rules built in code that a reader would reject", () => {
    const base: GovernanceRules = { providers: {}, routes: [], ignored: [] };
    rejects(() => formatGovernanceRules({ ...base, providers: { "h:1": { weight: 20_000 } } }), "providers.h:1.weight");
    rejects(() => formatGovernanceRules({ ...base, providers: { "not an address": {} } }), "providers.not an address");
    rejects(() => formatGovernanceRules({ ...base, providers: JSON.parse('{"__proto__":{}}') as GovernanceRules["providers"] }), "providers.__proto__");
    rejects(() => formatGovernanceRules({ ...base, routes: [{ rule: "", force: false, enabled: true }] }), "routes.0.rule");
    rejects(() => formatGovernanceRules({ ...base, tagForce: "yes" as unknown as boolean }), "tagForce");
    // 64 rules of 1024 characters each are allowed one by one, not together: over 65536 bytes.
    const routes = Array.from({ length: 64 }, () => ({ rule: "x".repeat(1024), force: false, enabled: true }));
    rejects(() => formatGovernanceRules({ ...base, routes }), "");
    rejects(() => formatGovernanceRules(null as unknown as GovernanceRules), "");
  });
});

/** Documents near the valid shape, so that the fuzzer reaches every check, not only the first. */
const address = fc.oneof(
  fc.constantFrom("10.0.0.1:1", "[::1]:8080", "h:65535", "h:0", "h:65536", "nohost", "__proto__", "constructor", "a b:1", ""),
  fc.tuple(fc.stringMatching(/^[a-z0-9.-]{1,20}$/), fc.integer({ min: 0, max: 70_000 })).map(([h, p]) => `${h}:${p}`),
);
const override = fc.oneof(
  fc.record({ weight: fc.oneof(fc.integer({ min: -5, max: 10_005 }), fc.double(), fc.jsonValue()), disabled: fc.oneof(fc.boolean(), fc.jsonValue()) }, { requiredKeys: [] }),
  fc.jsonValue(),
);
const route = fc.oneof(
  fc.string({ maxLength: 1030 }),
  fc.record({ rule: fc.oneof(fc.string({ maxLength: 1030 }), fc.jsonValue()), force: fc.oneof(fc.boolean(), fc.jsonValue()), enabled: fc.boolean() }, { requiredKeys: [] }),
  fc.jsonValue(),
);
const nearDocument = fc.record(
  {
    version: fc.oneof(fc.constant(1), fc.jsonValue()),
    providers: fc.oneof(fc.dictionary(address, override, { maxKeys: 20 }), fc.jsonValue()),
    routes: fc.oneof(fc.array(route, { maxLength: 70 }), fc.jsonValue()),
    tagForce: fc.oneof(fc.boolean(), fc.jsonValue()),
    extra: fc.jsonValue(),
  },
  { requiredKeys: [] },
);

/** The property every input must meet: a valid result that formats and reads back, or `bad_rules`. */
function resultOrBadRules(text: string): void {
  let rules: GovernanceRules;
  try {
    rules = parseGovernanceRules(text);
  } catch (error) {
    assert.ok(error instanceof FarcallError, `not a FarcallError: ${String(error)}`);
    assert.equal(error.code, "invalid_argument");
    assert.equal(error.reason, "bad_rules");
    assert.equal(typeof error.details["path"], "string");
    return;
  }
  assert.ok(Object.isFrozen(rules));
  let canonical: string;
  try {
    canonical = formatGovernanceRules(rules);
  } catch (error) {
    // Only the total size can differ: the canonical text spells out every default.
    assert.ok(error instanceof FarcallError && error.reason === "bad_rules" && error.details["path"] === "", String(error));
    return;
  }
  const again = parseGovernanceRules(canonical);
  assert.deepEqual({ ...again, ignored: [] }, { ...rules, ignored: [] });
  assert.equal(formatGovernanceRules(again), canonical);
}

describe("parseGovernanceRules under fuzzing", () => {
  it("gives a result or a bad_rules FarcallError for any JSON value", () => {
    fc.assert(fc.property(fc.jsonValue(), (value) => resultOrBadRules(JSON.stringify(value) ?? "")), { numRuns: 2000 });
  });

  it("gives a result or a bad_rules FarcallError for documents near the valid shape", () => {
    fc.assert(fc.property(nearDocument, (document) => resultOrBadRules(JSON.stringify(document))), { numRuns: 3000 });
  });

  it("gives a result or a bad_rules FarcallError for any string, and for anything at all", () => {
    fc.assert(fc.property(fc.string({ unit: "binary", maxLength: 300 }), resultOrBadRules), { numRuns: 2000 });
    fc.assert(fc.property(fc.anything(), (value) => resultOrBadRules(value as string)), { numRuns: 1000 });
    assert.equal(({} as Record<string, unknown>)["polluted"], undefined);
  });
});
