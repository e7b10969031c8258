import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { FarcallError } from "../errors/farcall-error.js";
import { checkOutlierDetectionOptions, defaultOutlierDetectionOptions, type OutlierDetectionOptions, OutlierDetector, type ProviderHealth } from "./outlier-detector.js";

/** `n` provider addresses. */
function addresses(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `10.0.0.${i}:7000`);
}

/** A detector whose state changes are kept in `changes` as `address state @now`. */
function detector(options: OutlierDetectionOptions = {}): { d: OutlierDetector; changes: string[]; last: Map<string, ProviderHealth> } {
  const changes: string[] = [];
  const last = new Map<string, ProviderHealth>();
  const d = new OutlierDetector(options, (address, health, now) => {
    changes.push(`${address} ${health.state} @${now}`);
    last.set(address, health);
  });
  return { d, changes, last };
}

/** Records `n` results of `address` at `now`, failed or not. */
function results(d: OutlierDetector, address: string, now: number, n: number, failed: boolean, hosts = 3): void {
  for (let i = 0; i < n; i++) d.record(address, now, failed, hosts);
}

/** Records a pattern ("x" a failure, "." a success) for `address` at `now`. */
function pattern(d: OutlierDetector, address: string, now: number, p: string, hosts = 3): void {
  for (const c of p) d.record(address, now, c === "x", hosts);
}

/** Sweeps at every multiple of `intervalMs` in (from, to]. */
function sweepUntil(d: OutlierDetector, from: number, to: number, all: readonly string[]): void {
  const step = d.options.intervalMs;
  for (let t = (Math.floor(from / step) + 1) * step; t <= to; t += step) d.sweep(t, all);
}

function assertBadOption(f: () => unknown, option: string): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof FarcallError, String(e));
    assert.equal(e.code, "invalid_argument");
    assert.equal(e.reason, "bad_option");
    assert.equal(e.details["option"], option, e.message);
    return true;
  });
}

const [a, b, c] = addresses(3) as [string, string, string];

describe("checkOutlierDetectionOptions", () => {
  it("gives the frozen defaults for undefined and true, undefined (disabled) for false and enabled: false", () => {
    assert.deepEqual(checkOutlierDetectionOptions(undefined, "outlierDetection"), {
      consecutiveFailures: 5,
      failureRate: 0.25,
      minRequests: 20,
      intervalMs: 10_000,
      baseEjectionMs: 30_000,
      maxEjectionMs: 300_000,
      maxEjectionPercent: 10,
    });
    assert.equal(checkOutlierDetectionOptions(true), defaultOutlierDetectionOptions);
    assert.ok(Object.isFrozen(defaultOutlierDetectionOptions));
    assert.equal(checkOutlierDetectionOptions(false), undefined);
    assert.equal(checkOutlierDetectionOptions({ enabled: false, failureRate: 0.5 }), undefined);
  });

  it("returns a frozen normalised copy; maxEjectionMs defaults to max(300000, baseEjectionMs)", () => {
    const input = { enabled: true, failureRate: 0.5, baseEjectionMs: 400_000 };
    const resolved = checkOutlierDetectionOptions(input);
    assert.ok(resolved !== undefined && Object.isFrozen(resolved));
    assert.equal(resolved.failureRate, 0.5);
    assert.equal(resolved.maxEjectionMs, 400_000);
    assert.equal(resolved.consecutiveFailures, 5);
    assert.equal("enabled" in resolved, false);
    assert.equal(checkOutlierDetectionOptions({ consecutiveFailures: 0, failureRate: 1, maxEjectionPercent: 0 })?.consecutiveFailures, 0);
  });

  it("rejects wrong types, out-of-range values and unknown fields with bad_option naming the field", () => {
    const cases: [unknown, string][] = [
      ["yes", "outlierDetection"],
      [null, "outlierDetection"],
      [[], "outlierDetection"],
      [5, "outlierDetection"],
      [{ enabled: "no" }, "outlierDetection.enabled"],
      [{ consecutiveFailures: -1 }, "outlierDetection.consecutiveFailures"],
      [{ consecutiveFailures: 1.5 }, "outlierDetection.consecutiveFailures"],
      [{ consecutiveFailures: "5" }, "outlierDetection.consecutiveFailures"],
      [{ failureRate: 0 }, "outlierDetection.failureRate"],
      [{ failureRate: 1.01 }, "outlierDetection.failureRate"],
      [{ failureRate: Number.NaN }, "outlierDetection.failureRate"],
      [{ failureRate: "0.25" }, "outlierDetection.failureRate"],
      [{ minRequests: 0 }, "outlierDetection.minRequests"],
      [{ minRequests: 2.5 }, "outlierDetection.minRequests"],
      [{ intervalMs: 0 }, "outlierDetection.intervalMs"],
      [{ intervalMs: 2 ** 31 }, "outlierDetection.intervalMs"],
      [{ intervalMs: 10.5 }, "outlierDetection.intervalMs"],
      [{ baseEjectionMs: 0 }, "outlierDetection.baseEjectionMs"],
      [{ baseEjectionMs: Number.POSITIVE_INFINITY }, "outlierDetection.baseEjectionMs"],
      [{ maxEjectionMs: 1000 }, "outlierDetection.maxEjectionMs"],
      [{ maxEjectionMs: null }, "outlierDetection.maxEjectionMs"],
      [{ maxEjectionPercent: -1 }, "outlierDetection.maxEjectionPercent"],
      [{ maxEjectionPercent: 101 }, "outlierDetection.maxEjectionPercent"],
      [{ failurRate: 0.3 }, "outlierDetection.failurRate"],
      [{ enabled: false, minRequests: -1 }, "outlierDetection.minRequests"],
    ];
    for (const [value, option] of cases) assertBadOption(() => checkOutlierDetectionOptions(value, "outlierDetection"), option);
    assertBadOption(() => checkOutlierDetectionOptions({ failureRate: 2 }, "services.Greeter.outlierDetection"), "services.Greeter.outlierDetection.failureRate");
  });

  it("the detector validates its options at construction and exposes intervalMs", () => {
    assertBadOption(() => new OutlierDetector({ failureRate: 0 }), "outlierDetection.failureRate");
    assertBadOption(() => new OutlierDetector({ enabled: false } as OutlierDetectionOptions), "outlierDetection.enabled");
    const d = new OutlierDetector({ intervalMs: 5000 });
    assert.equal(d.options.intervalMs, 5000);
    assert.ok(Object.isFrozen(d.options));
    assert.equal(new OutlierDetector(checkOutlierDetectionOptions({ minRequests: 7 })).options.minRequests, 7);
  });
});

describe("OutlierDetector: consecutive failures", () => {
  it("ejects on the 5th consecutive failure, not the 4th, for baseEjectionMs", () => {
    const { d, changes } = detector();
    results(d, a, 1000, 4, true);
    assert.equal(d.isEjected(a, 1000), false);
    assert.equal(d.health(a, 1000).state, "degraded");
    assert.equal(d.health(a, 1000).consecutiveFailures, 4);
    d.record(a, 1000, true, 3);
    assert.equal(d.isEjected(a, 1000), true);
    assert.deepEqual(d.health(a, 1000), { state: "ejected", ejectedUntil: 31_000, consecutiveFailures: 0, timesEjected: 1, intervalRequests: 5, intervalFailures: 5 });
    assert.deepEqual(changes, [`${a} degraded @1000`, `${a} ejected @1000`]);
  });

  it("a success in between resets the count", () => {
    const { d } = detector();
    pattern(d, a, 0, "xxxx.xxxx");
    assert.equal(d.isEjected(a, 0), false);
    assert.equal(d.health(a, 0).consecutiveFailures, 4);
    d.record(a, 0, true, 3);
    assert.equal(d.isEjected(a, 0), true);
  });

  it("consecutiveFailures: 0 turns the mode off (the failure-percentage mode still runs)", () => {
    const { d } = detector({ consecutiveFailures: 0 });
    results(d, a, 0, 100, true);
    assert.equal(d.isEjected(a, 0), false);
    d.sweep(10_000, [a, b, c]);
    assert.equal(d.isEjected(a, 10_000), true);
  });

  it("an ejection ends by itself at ejectedUntil; the change is reported at the next record or sweep", () => {
    const { d, changes } = detector();
    results(d, a, 0, 5, true);
    assert.equal(d.isEjected(a, 29_999), true);
    assert.equal(d.isEjected(a, 30_000), false);
    assert.equal(d.ejectedCount(30_000), 0);
    assert.equal(d.health(a, 30_000).state, "healthy");
    assert.equal(changes.length, 2, "not reported by queries");
    d.record(b, 30_500, false, 3);
    assert.deepEqual(changes.slice(2), [`${a} healthy @30500`]);
    assert.deepEqual(d.health(a, 30_500), { state: "healthy", consecutiveFailures: 0, timesEjected: 1, intervalRequests: 0, intervalFailures: 0 });
  });

  it("failures while ejected (attempts in flight) are counted but neither extend nor repeat the ejection", () => {
    const { d, changes } = detector();
    results(d, a, 0, 5, true);
    results(d, a, 100, 20, true);
    assert.equal(d.health(a, 100).ejectedUntil, 30_000);
    assert.equal(d.health(a, 100).timesEjected, 1);
    assert.equal(changes.length, 2);
    // Readmitted afresh: five new failures in a row are needed.
    results(d, a, 30_000, 4, true);
    assert.equal(d.isEjected(a, 30_000), false);
  });

  it("the nth ejection lasts baseEjectionMs × n (30 s, 60 s, 90 s…) capped at maxEjectionMs, with sweeps every interval", () => {
    const all = addresses(3);
    const { d } = detector({ maxEjectionMs: 100_000 });
    const lengths: number[] = [];
    let now = 1;
    for (let n = 1; n <= 5; n++) {
      results(d, a, now, 5, true);
      const until = d.health(a, now).ejectedUntil;
      assert.ok(until !== undefined);
      lengths.push(until - now);
      sweepUntil(d, now, until, all);
      // Fails again right after readmission (T10: the provider is still down).
      now = until;
      assert.equal(d.isEjected(a, now), false);
    }
    assert.deepEqual(lengths, [30_000, 60_000, 90_000, 100_000, 100_000]);
  });
});

describe("OutlierDetector: ejection multiplier decay", () => {
  it("drops by one per interval in which the provider was never ejected", () => {
    const all = addresses(3);
    const { d } = detector();
    results(d, a, 0, 5, true); // until 30 000
    sweepUntil(d, 0, 30_000, all);
    results(d, a, 30_000, 5, true); // until 90 000
    assert.equal(d.health(a, 30_000).ejectedUntil, 90_000);
    sweepUntil(d, 30_000, 90_000, all);
    assert.equal(d.health(a, 90_000).timesEjected, 2, "the interval (80 s, 90 s] held an ejection");
    d.sweep(100_000, all);
    assert.equal(d.health(a, 100_000).timesEjected, 1);
    d.sweep(110_000, all);
    assert.equal(d.health(a, 110_000).timesEjected, 0);
    d.sweep(120_000, all);
    assert.equal(d.health(a, 120_000).timesEjected, 0);
    results(d, a, 120_001, 5, true);
    assert.equal(d.health(a, 120_001).ejectedUntil, 150_001, "back to baseEjectionMs");
  });

  it("an interval in which an ejection ended is not a healthy one", () => {
    const all = addresses(3);
    const { d } = detector();
    results(d, a, 5000, 5, true); // until 35 000, inside the interval (30 s, 40 s]
    sweepUntil(d, 0, 40_000, all);
    assert.equal(d.health(a, 40_000).timesEjected, 1);
    d.sweep(50_000, all);
    assert.equal(d.health(a, 50_000).timesEjected, 0);
  });

  it("after one healthy interval, a third ejection lasts 60 s instead of 90 s", () => {
    const all = addresses(3);
    const { d } = detector();
    results(d, a, 0, 5, true);
    results(d, a, 30_000, 5, true); // no sweep yet: multiplier 2, until 90 000
    sweepUntil(d, 0, 100_000, all);
    assert.equal(d.health(a, 100_000).timesEjected, 1);
    results(d, a, 100_001, 5, true);
    assert.equal(d.health(a, 100_001).ejectedUntil, 160_001);
  });
});

describe("OutlierDetector: ejection cap", () => {
  it("3 providers at 10 %: one ejected; the next waits and is ejected at the first record after the slot frees", () => {
    const { d, changes } = detector();
    results(d, a, 0, 5, true);
    results(d, b, 0, 7, true);
    assert.equal(d.ejectedCount(0), 1);
    assert.equal(d.isEjected(b, 0), false);
    assert.deepEqual(d.health(b, 0), { state: "degraded", consecutiveFailures: 7, timesEjected: 0, intervalRequests: 7, intervalFailures: 7 });
    d.sweep(10_000, [a, b, c]);
    assert.equal(d.isEjected(b, 10_000), false, "the cap still holds at the sweep");
    d.record(c, 30_000, false, 3);
    assert.equal(d.isEjected(a, 30_000), false);
    assert.equal(d.isEjected(b, 30_000), true);
    assert.equal(d.health(b, 30_000).ejectedUntil, 60_000);
    assert.deepEqual(changes.slice(-2), [`${a} healthy @30000`, `${b} ejected @30000`]);
  });

  it("a waiting provider that succeeds is no longer ejected when the slot frees", () => {
    const { d } = detector();
    results(d, a, 0, 5, true);
    results(d, b, 0, 5, true);
    d.record(b, 1, false, 3);
    d.record(c, 30_000, false, 3);
    assert.equal(d.ejectedCount(30_000), 0);
  });

  it("20 providers at 10 %: two ejected, even when all fail", () => {
    const all = addresses(20);
    const { d } = detector();
    for (const address of all) results(d, address, 0, 25, true, 20);
    assert.equal(d.ejectedCount(0), 2);
    d.sweep(10_000, all);
    assert.equal(d.ejectedCount(10_000), 2);
    assert.equal(all.filter((x) => d.isEjected(x, 10_000)).length, 2);
  });

  it("all providers failing for five minutes never eject more than the cap (3 providers: 1)", () => {
    const all = addresses(3);
    const { d } = detector();
    let max = 0;
    let ejectedTime = 0;
    for (let now = 0; now <= 300_000; now += 100) {
      for (const address of all) d.record(address, now, true, all.length);
      if (now % 10_000 === 0) d.sweep(now, all);
      const n = d.ejectedCount(now);
      max = Math.max(max, n);
      if (n > 0) ejectedTime += 100;
    }
    assert.equal(max, 1);
    assert.ok(ejectedTime > 290_000, `one provider out nearly all the time (${ejectedTime} ms)`);
  });

  it("maxEjectionPercent 0 still allows one ejection; 100 allows all", () => {
    const none = detector({ maxEjectionPercent: 0 }).d;
    const every = detector({ maxEjectionPercent: 100 }).d;
    for (const address of [a, b, c]) {
      results(none, address, 0, 5, true);
      results(every, address, 0, 5, true);
    }
    assert.equal(none.ejectedCount(0), 1);
    assert.equal(every.ejectedCount(0), 3);
  });
});

describe("OutlierDetector: failure percentage", () => {
  /** 20 results, `failures` of them failed, spread so that no 5 failures are consecutive. */
  function spread(failures: number): string {
    return Array.from({ length: 20 }, (_, i) => (Math.floor((i * failures) / 20) !== Math.floor(((i + 1) * failures) / 20) ? "x" : ".")).join("");
  }

  it("at the sweep, catches a 30 % provider with ≥ 20 results at the 25 % threshold, not a 10 % one", () => {
    const { d, changes } = detector();
    pattern(d, a, 1000, spread(6));
    pattern(d, b, 1000, spread(2));
    pattern(d, c, 1000, spread(0));
    assert.equal(d.ejectedCount(1000), 0, "not before the sweep");
    d.sweep(10_000, [a, b, c]);
    assert.deepEqual(d.health(a, 10_000), { state: "ejected", ejectedUntil: 40_000, consecutiveFailures: 0, timesEjected: 1, intervalRequests: 0, intervalFailures: 0 });
    assert.equal(d.isEjected(b, 10_000), false);
    assert.ok(changes.includes(`${a} ejected @10000`));
  });

  it("ejects at exactly failureRate, not with fewer than minRequests results, and counts one interval only", () => {
    const { d } = detector();
    pattern(d, a, 0, spread(5)); // 25 %
    pattern(d, b, 0, "x.x.x.x.x.x.x.x.x.x"); // 19 results, 53 %
    d.sweep(10_000, addresses(20));
    assert.equal(d.isEjected(a, 10_000), true);
    assert.equal(d.isEjected(b, 10_000), false);
    // 3 of 10 failing in each of two intervals: never 20 in one.
    const other = detector().d;
    pattern(other, a, 0, "x..x..x...");
    other.sweep(10_000, [a, b, c]);
    pattern(other, a, 10_001, "x..x..x...");
    other.sweep(20_000, [a, b, c]);
    assert.equal(other.ejectedCount(20_000), 0);
  });

  it("failureRate 1 needs every result to fail", () => {
    const { d } = detector({ failureRate: 1, consecutiveFailures: 0 });
    pattern(d, a, 0, `${"x".repeat(19)}.`);
    pattern(d, b, 0, "x".repeat(20));
    d.sweep(10_000, addresses(20));
    assert.equal(d.isEjected(a, 10_000), false);
    assert.equal(d.isEjected(b, 10_000), true);
  });

  it("when the cap binds, the highest failure fractions go first", () => {
    const all = addresses(20); // cap 2
    const { d } = detector();
    pattern(d, all[0] as string, 0, spread(6), 20);
    pattern(d, all[1] as string, 0, spread(10), 20);
    pattern(d, all[2] as string, 0, spread(8), 20);
    d.sweep(10_000, all);
    assert.deepEqual(all.filter((x) => d.isEjected(x, 10_000)), [all[1], all[2]]);
  });
});

describe("OutlierDetector: health and changes", () => {
  it("degraded: the last result failed, or ≥ failureRate/2 of ≥ minRequests/2 results this interval failed", () => {
    const { d } = detector();
    assert.deepEqual(d.health(a, 0), { state: "healthy", consecutiveFailures: 0, timesEjected: 0, intervalRequests: 0, intervalFailures: 0 });
    d.record(a, 0, true, 3);
    assert.equal(d.health(a, 0).state, "degraded");
    d.record(a, 0, false, 3);
    assert.equal(d.health(a, 0).state, "healthy", "1 of 2 results: fewer than minRequests / 2");
    pattern(d, a, 0, "x.......");
    assert.equal(d.health(a, 0).state, "degraded", "2 of 10 failed: 20 % ≥ 12.5 %");
    pattern(d, b, 0, "x.........");
    assert.equal(d.health(b, 0).state, "healthy", "1 of 10 failed: 10 % < 12.5 %");
    d.sweep(10_000, [a, b, c]);
    assert.equal(d.health(a, 10_000).state, "healthy", "a new interval");
  });

  it("onChange fires once per transition", () => {
    const { d, changes } = detector();
    pattern(d, a, 0, "xxx");
    pattern(d, a, 1, "..");
    pattern(d, a, 2, "xxxxx");
    pattern(d, a, 3, "xxxx.");
    d.sweep(10_000, [a, b, c]);
    d.sweep(40_000, [a, b, c]);
    d.sweep(50_000, [a, b, c]);
    assert.deepEqual(changes, [`${a} degraded @0`, `${a} healthy @1`, `${a} degraded @2`, `${a} ejected @2`, `${a} healthy @40000`]);
  });

  it("a sweep forgets addresses not listed (reporting the non-healthy ones as healthy): memory stays bounded", () => {
    const { d, changes } = detector({ maxEjectionPercent: 100 });
    for (const address of addresses(1000)) d.record(address, 0, false, 1000);
    results(d, a, 0, 5, true, 1000);
    assert.equal(d.size, 1000);
    assert.equal(d.ejectedCount(0), 1);
    d.sweep(10_000, [b]);
    assert.equal(d.size, 1);
    assert.equal(d.ejectedCount(10_000), 0);
    assert.equal(d.isEjected(a, 10_000), false);
    assert.deepEqual(d.health(a, 10_000), { state: "healthy", consecutiveFailures: 0, timesEjected: 0, intervalRequests: 0, intervalFailures: 0 });
    assert.deepEqual(changes, [`${a} degraded @0`, `${a} ejected @0`, `${a} healthy @10000`]);
    d.sweep(20_000, []);
    assert.equal(d.size, 0);
  });

  it("property: never more ejected than the cap; isEjected, ejectedCount, health and the reported changes agree", () => {
    const event = fc.oneof(
      fc.record({ kind: fc.constant("record" as const), host: fc.nat(24), failed: fc.boolean(), dt: fc.integer({ min: 0, max: 2000 }) }),
      fc.record({ kind: fc.constant("sweep" as const), dt: fc.integer({ min: 0, max: 10_000 }) }),
    );
    const options = fc.record({
      consecutiveFailures: fc.integer({ min: 0, max: 6 }),
      failureRate: fc.constantFrom(0.1, 0.25, 0.5, 1),
      minRequests: fc.integer({ min: 1, max: 10 }),
      baseEjectionMs: fc.integer({ min: 1, max: 8000 }),
      maxEjectionPercent: fc.integer({ min: 0, max: 100 }),
    });
    fc.assert(
      fc.property(options, fc.integer({ min: 1, max: 25 }), fc.array(event, { maxLength: 300 }), (o, hosts, events) => {
        const all = addresses(hosts);
        const { d, changes, last } = detector({ ...o, maxEjectionMs: o.baseEjectionMs * 3 });
        const cap = Math.max(1, Math.floor((hosts * o.maxEjectionPercent) / 100));
        let now = 0;
        for (const e of events) {
          now += e.dt;
          if (e.kind === "sweep") d.sweep(now, all);
          else d.record(all[e.host % hosts] as string, now, e.failed, hosts);
          const ejected = all.filter((x) => d.isEjected(x, now));
          assert.ok(ejected.length <= cap, `${ejected.length} ejected > cap ${cap}`);
          assert.equal(d.ejectedCount(now), ejected.length);
          for (const x of all) {
            const state = d.health(x, now).state;
            assert.equal(d.isEjected(x, now), state === "ejected");
            assert.equal(last.get(x)?.state ?? "healthy", state, `${x}: the last reported state is the current one`);
          }
        }
        // Once per transition: no address is reported twice in a row in the same state.
        const previous = new Map<string, string>();
        for (const change of changes) {
          const [address, state] = change.split(" ") as [string, string];
          assert.notEqual(previous.get(address) ?? "healthy", state, change);
          previous.set(address, state);
        }
      }),
      { numRuns: 300 },
    );
  });
});
