import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { Call } from "../../call/call.js";
import { FarcallError } from "../../errors/farcall-error.js";
import type { Endpoint } from "../../registry/endpoint.js";
import { sampleEndpoint } from "../../registry/sample-endpoint.js";
import { matchesThen, matchesWhen, parseConditionRule } from "./condition-rule.js";
import { type ConditionRuleOptions, conditionRouter } from "./condition-router.js";
import type { RouteContext } from "./router.js";

function callOf(method: string, args: readonly unknown[] = [], metadata: Record<string, string> = {}): Call {
  return { ref: { method }, args, metadata } as unknown as Call;
}

/** A frozen snapshot of one provider per host 10.0.0.<n>, port 20880. */
function hosts(...n: number[]): readonly Endpoint[] {
  return Object.freeze(n.map((i) => sampleEndpoint("s", 20880, { host: `10.0.0.${i}` })));
}

function hostsOf(endpoints: readonly Endpoint[]): string[] {
  return endpoints.map((e) => e.host);
}

const consumer: RouteContext = { application: "shop", host: "10.1.0.7" };

describe("conditionRouter", () => {
  it("blacklist `host = 10.0.0.5 =>`: the consumer on 10.0.0.5 gets no provider, even without force; others get the snapshot itself", () => {
    const router = conditionRouter(["host = 10.0.0.5 =>"]);
    const snapshot = hosts(1, 2, 3);
    assert.deepEqual(router.route(snapshot, callOf("get"), { application: "shop", host: "10.0.0.5" }), []);
    assert.equal(router.route(snapshot, callOf("get"), consumer), snapshot);
  });

  it("read/write split `method = find*,get* => host = 10.0.0.1,10.0.0.2`: reads go to those hosts, writes anywhere", () => {
    const router = conditionRouter(["method = find*,get* => host = 10.0.0.1,10.0.0.2"]);
    const snapshot = hosts(1, 2, 3, 4);
    assert.deepEqual(hostsOf(router.route(snapshot, callOf("findUser"), consumer)), ["10.0.0.1", "10.0.0.2"]);
    assert.deepEqual(hostsOf(router.route(snapshot, callOf("getById"), consumer)), ["10.0.0.1", "10.0.0.2"]);
    assert.equal(router.route(snapshot, callOf("save"), consumer), snapshot);
  });

  it("`=> host != 10.0.0.3`: no call goes to 10.0.0.3", () => {
    const router = conditionRouter(["=> host != 10.0.0.3"]);
    for (const method of ["get", "save", "anything"]) assert.deepEqual(hostsOf(router.route(hosts(1, 3, 5), callOf(method), consumer)), ["10.0.0.1", "10.0.0.5"]);
  });

  it("the example rule: find/list calls from other applications than admin go to 10.0.* providers not on port 20881", () => {
    const router = conditionRouter(["method = find*,list* & application != admin => host = 10.0.* & port != 20881"]);
    const snapshot = Object.freeze([
      sampleEndpoint("s", 20880, { host: "10.0.0.1" }),
      sampleEndpoint("s", 20881, { host: "10.0.0.1" }),
      sampleEndpoint("s", 20880, { host: "10.9.0.1" }),
    ]);
    assert.deepEqual(router.route(snapshot, callOf("listAll"), consumer), [snapshot[0]]);
    assert.equal(router.route(snapshot, callOf("listAll"), { application: "admin", host: "10.1.0.7" }), snapshot);
    assert.equal(router.route(snapshot, callOf("save"), consumer), snapshot);
  });

  it("without force, a rule leaving no provider is ignored for the call (the snapshot itself); with force the empty list stands", () => {
    const snapshot = hosts(1, 2);
    assert.equal(conditionRouter(["method = get => host = 10.0.0.9"]).route(snapshot, callOf("get"), consumer), snapshot);
    assert.equal(conditionRouter([{ rule: "method = get => host = 10.0.0.9", force: false }]).route(snapshot, callOf("get"), consumer), snapshot);
    assert.deepEqual(conditionRouter([{ rule: "method = get => host = 10.0.0.9", force: true }]).route(snapshot, callOf("get"), consumer), []);
    assert.equal(conditionRouter([{ rule: "method = get => host = 10.0.0.9", force: true }]).route(snapshot, callOf("put"), consumer), snapshot, "force only matters for calls the rule matches");
  });

  it("applies rules in order, each to the previous rule's output", () => {
    // Alone, the second rule would send `get` to 10.0.0.3; after the first it finds no 10.0.0.3 and,
    // without force, is ignored.
    const router = conditionRouter(["=> host != 10.0.0.3", "method = get => host = 10.0.0.3", "method = get => host = 10.0.0.1,10.0.0.3"]);
    assert.deepEqual(hostsOf(router.route(hosts(1, 2, 3), callOf("get"), consumer)), ["10.0.0.1"]);
    assert.deepEqual(hostsOf(conditionRouter(["method = get => host = 10.0.0.3"]).route(hosts(1, 2, 3), callOf("get"), consumer)), ["10.0.0.3"]);
  });

  it("skips disabled rules, but still checks their text", () => {
    const snapshot = hosts(1, 2);
    assert.equal(conditionRouter([{ rule: "=> host = 10.0.0.1", enabled: false }]).route(snapshot, callOf("get"), consumer), snapshot);
    assert.deepEqual(hostsOf(conditionRouter([{ rule: "=> host = 10.0.0.1", enabled: true }]).route(snapshot, callOf("get"), consumer)), ["10.0.0.1"]);
    assert.throws(
      () => conditionRouter([{ rule: "=> hots = 10.0.0.1", enabled: false }]),
      (e) => e instanceof FarcallError && e.reason === "bad_rule",
    );
  });

  it("throws bad_rule naming the rule's index for invalid text, bad_option for malformed options", () => {
    assert.throws(
      () => conditionRouter(["=> host = a", "method = =>"]),
      (e) =>
        e instanceof FarcallError &&
        e.code === "invalid_argument" &&
        e.reason === "bad_rule" &&
        e.message.startsWith("rules[1]: ") &&
        e.message.includes('an empty value for "method"') &&
        (e.details as { rule?: unknown }).rule === "method = =>",
    );
    const badOption = (value: unknown, option: string) =>
      assert.throws(
        () => conditionRouter(value as readonly ConditionRuleOptions[]),
        (e) => e instanceof FarcallError && e.reason === "bad_option" && e.details["option"] === option,
        option,
      );
    badOption("=> host = a", "rules");
    badOption([42], "rules[0]");
    badOption([null], "rules[0]");
    badOption([{ rule: 1 }], "rules[0]");
    badOption(["=> host = a", { rule: "=> host = a", force: "yes" }], "rules[1].force");
    badOption([{ rule: "=> host = a", enabled: 0 }], "rules[0].enabled");
  });

  it("returns the snapshot itself with no rules, and an empty snapshot as is", () => {
    const snapshot = hosts(1);
    assert.equal(conditionRouter([]).route(snapshot, callOf("get"), consumer), snapshot);
    const empty: readonly Endpoint[] = Object.freeze([]);
    assert.equal(conditionRouter(["=> host = 10.0.0.1"]).route(empty, callOf("get"), consumer), empty);
  });

  it("never mutates the snapshot, and returns frozen lists", () => {
    const list = [...hosts(1, 2, 3)];
    const copy = [...list];
    const routed = conditionRouter(["=> host != 10.0.0.2"]).route(list, callOf("get"), consumer);
    assert.deepEqual(list, copy);
    assert.ok(Object.isFrozen(routed));
  });
});

describe("conditionRouter cache", () => {
  it("returns the same list for repeated calls of a method on the same snapshot", () => {
    const router = conditionRouter(["method = find* => host = 10.0.0.1"]);
    const snapshot = hosts(1, 2);
    const first = router.route(snapshot, callOf("findA"), consumer);
    assert.deepEqual(hostsOf(first), ["10.0.0.1"]);
    assert.equal(router.route(snapshot, callOf("findA"), consumer), first);
  });

  it("routes a new snapshot afresh, also when it holds the same providers as the cached one minus one", () => {
    const router = conditionRouter(["method = find* => host = 10.0.0.1,10.0.0.2"]);
    const before = hosts(1, 2, 3);
    assert.deepEqual(hostsOf(router.route(before, callOf("findA"), consumer)), ["10.0.0.1", "10.0.0.2"]);
    const after = Object.freeze(before.filter((e) => e.host !== "10.0.0.1"));
    assert.deepEqual(hostsOf(router.route(after, callOf("findA"), consumer)), ["10.0.0.2"]);
    const gone = Object.freeze(after.filter((e) => e.host !== "10.0.0.2"));
    assert.equal(router.route(gone, callOf("findA"), consumer), gone, "no 10.0.0.1 or .2 left: the rule is ignored");
    assert.deepEqual(hostsOf(router.route(before, callOf("findA"), consumer)), ["10.0.0.1", "10.0.0.2"], "the old snapshot still routes as before");
  });

  it("routes again when the consumer context changes (rules may read the consumer's application and host)", () => {
    const router = conditionRouter(["application = admin => host = 10.0.0.1"]);
    const snapshot = hosts(1, 2);
    assert.equal(router.route(snapshot, callOf("get"), consumer), snapshot);
    assert.deepEqual(hostsOf(router.route(snapshot, callOf("get"), { application: "admin", host: "10.1.0.7" })), ["10.0.0.1"]);
    assert.equal(router.route(snapshot, callOf("get"), consumer), snapshot);
  });

  it("routes by argument and metadata on every call when a rule reads them (no per-method cache)", () => {
    const router = conditionRouter(["arguments[0] = vip-* => host = 10.0.0.1", "metadata.region = eu => host = 10.0.0.2,10.0.0.3"]);
    const snapshot = hosts(1, 2, 3);
    assert.deepEqual(hostsOf(router.route(snapshot, callOf("get", ["vip-1"]), consumer)), ["10.0.0.1"]);
    assert.equal(router.route(snapshot, callOf("get", ["joe"]), consumer), snapshot);
    assert.deepEqual(hostsOf(router.route(snapshot, callOf("get", ["joe"], { region: "eu" }), consumer)), ["10.0.0.2", "10.0.0.3"]);
    assert.deepEqual(hostsOf(router.route(snapshot, callOf("get", ["vip-2"]), consumer)), ["10.0.0.1"]);
    assert.equal(router.route(snapshot, callOf("get", ["vip-2"]), consumer), router.route(snapshot, callOf("get", ["vip-3"]), consumer), "each rule's output is cached per input list");
  });

  it("still routes correctly beyond 1024 cached methods", () => {
    const router = conditionRouter(["method = m1* => host = 10.0.0.1"]);
    const snapshot = hosts(1, 2);
    for (let i = 0; i < 1100; i++) {
      const routed = router.route(snapshot, callOf(`m${i}`), consumer);
      if (String(i).startsWith("1")) assert.deepEqual(hostsOf(routed), ["10.0.0.1"], `m${i}`);
      else assert.equal(routed, snapshot, `m${i}`);
    }
    assert.deepEqual(hostsOf(router.route(snapshot, callOf("m1099"), consumer)), ["10.0.0.1"]);
    assert.equal(router.route(snapshot, callOf("m2000"), consumer), snapshot);
  });

  it("agrees with a direct reading of the rules over random rules, snapshots and calls, repeated on shared snapshots", () => {
    const ruleText = fc
      .tuple(
        fc.constantFrom("", "method = get*", "method != get*", "host = 10.1.*", "application = admin", "arguments[0] = a*", "metadata.k = v"),
        fc.constantFrom("", "host = 10.0.0.1,10.0.0.2", "host != 10.0.0.3", "port = 1", "tag = gray", "host = 10.0.0.9"),
        fc.boolean(),
      )
      .map(([when, then, force]) => ({ rule: `${when} => ${then}`, force }));
    const snapshot = fc.subarray([1, 2, 3, 4, 5]).map((n) => Object.freeze(n.map((i) => sampleEndpoint("s", i === 4 ? 1 : 20880, { host: `10.0.0.${i}`, tag: i === 5 ? "gray" : "" }))));
    const call = fc.tuple(fc.constantFrom("getA", "getB", "put"), fc.constantFrom("a1", "b1"), fc.constantFrom({}, { k: "v" })).map(([m, a, md]) => callOf(m, [a], md));
    const context = fc.constantFrom(consumer, { application: "admin", host: "10.2.0.1" });
    fc.assert(
      fc.property(fc.array(ruleText, { maxLength: 4 }), fc.array(snapshot, { minLength: 1, maxLength: 3 }), fc.array(fc.tuple(fc.nat(), call, context), { maxLength: 30 }), (rules, snapshots, calls) => {
        const router = conditionRouter(rules);
        const parsed = rules.map((r) => ({ rule: parseConditionRule(r.rule), force: r.force }));
        for (const [which, c, ctx] of calls) {
          const endpoints = snapshots[which % snapshots.length] as readonly Endpoint[];
          let expected: readonly Endpoint[] = endpoints;
          for (const { rule, force } of parsed) {
            if (expected.length === 0 || !matchesWhen(rule, c, ctx)) continue;
            const kept = rule.then.length === 0 ? [] : expected.filter((e) => matchesThen(rule, e));
            if (kept.length > 0 || force || rule.then.length === 0) expected = kept;
          }
          const routed = router.route(endpoints, c, ctx);
          assert.deepEqual(routed, expected);
          if (routed.length === endpoints.length) assert.equal(routed, endpoints, "nothing filtered: the snapshot itself");
        }
      }),
      { numRuns: 500 },
    );
  });
});
