import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { FarcallError } from "../errors/farcall-error.js";
import { AdaptiveThrottle, checkAdaptiveThrottleOptions } from "./adaptive-throttle.js";

function assertBadOption(fn: () => unknown, option: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof FarcallError, String(error));
    assert.equal(error.code, "invalid_argument");
    assert.equal(error.reason, "bad_option");
    assert.equal(error.details.option, option);
    return true;
  });
}

/** `n` requests at `now` that the throttle lets through (random 0.999…) and a backend accepts. */
function acceptedRequests(throttle: AdaptiveThrottle, now: number, n: number): void {
  for (let i = 0; i < n; i++) {
    assert.equal(throttle.shouldReject(now, 0.999_999), false);
    throttle.accepted(now);
  }
}

/** `n` requests at `now` that a backend rejects (counted as requests only). */
function rejectedRequests(throttle: AdaptiveThrottle, now: number, n: number): void {
  for (let i = 0; i < n; i++) throttle.shouldReject(now, 0.999_999);
}

describe("checkAdaptiveThrottleOptions", () => {
  it("fills the defaults and freezes the copy", () => {
    const checked = checkAdaptiveThrottleOptions({}, "adaptiveThrottle");
    assert.deepEqual(checked, { k: 2, windowMs: 120_000 });
    assert.ok(Object.isFrozen(checked));
    assert.deepEqual(checkAdaptiveThrottleOptions(JSON.parse('{"k":1.1,"windowMs":1}'), "t"), { k: 1.1, windowMs: 1 });
    assert.deepEqual(checkAdaptiveThrottleOptions({ k: 1000, windowMs: 3_600_000 }, "t"), { k: 1000, windowMs: 3_600_000 });
  });

  it("refuses non-objects, unknown fields and out-of-range values, naming the option", () => {
    for (const value of [null, 2, "k", [], undefined, true]) assertBadOption(() => checkAdaptiveThrottleOptions(value, "adaptiveThrottle"), "adaptiveThrottle");
    assertBadOption(() => checkAdaptiveThrottleOptions({ K: 2 }, "adaptiveThrottle"), "adaptiveThrottle.K");
    for (const k of [0.99, 0, -2, 1001, Number.NaN, "2", null]) assertBadOption(() => checkAdaptiveThrottleOptions({ k }, "adaptiveThrottle"), "adaptiveThrottle.k");
    for (const windowMs of [0, 3_600_001, Number.POSITIVE_INFINITY, "120000"]) {
      assertBadOption(() => checkAdaptiveThrottleOptions({ windowMs }, "adaptiveThrottle"), "adaptiveThrottle.windowMs");
    }
    assertBadOption(() => new AdaptiveThrottle({ k: 0.5 }), "adaptiveThrottle.k");
  });
});

describe("AdaptiveThrottle", () => {
  it("never rejects while the backends accept everything, nor when fresh", () => {
    const throttle = new AdaptiveThrottle();
    assert.equal(throttle.shouldReject(0, 0), false, "no history: probability 0");
    throttle.accepted(0);
    acceptedRequests(throttle, 1, 500);
    assert.deepEqual(throttle.snapshot(1), { requests: 501, accepts: 501, rejectProbability: 0 });
    assert.equal(throttle.shouldReject(1, 0), false);
  });

  it("rejects with probability (requests − k × accepts) / (requests + 1), judged before counting the request", () => {
    const throttle = new AdaptiveThrottle({ k: 2 });
    acceptedRequests(throttle, 0, 4);
    rejectedRequests(throttle, 0, 6);
    // 10 requests, 4 accepts: (10 − 8) / 11.
    assert.deepEqual(throttle.snapshot(0), { requests: 10, accepts: 4, rejectProbability: 2 / 11 });
    assert.equal(throttle.shouldReject(0, 2 / 11 - 1e-9), true);
    // Now 11 requests: (11 − 8) / 12 = 0.25.
    assert.equal(throttle.shouldReject(0, 0.25), false, "random equal to the probability: admitted");
    assert.equal(throttle.shouldReject(0, 3 / 13 + 1e-9), true, "12 requests: (12 − 8) / 13, rejected and counted");
    assert.deepEqual(throttle.snapshot(0), { requests: 13, accepts: 4, rejectProbability: 5 / 14 });
  });

  it("climbs towards 1 without reaching it when nothing is accepted", () => {
    const throttle = new AdaptiveThrottle();
    assert.equal(throttle.shouldReject(0, 0.49), false, "first: 0");
    assert.equal(throttle.shouldReject(0, 0.49), true, "second: 1/2");
    assert.equal(throttle.shouldReject(0, 0.67), false, "third: 2/3");
    rejectedRequests(throttle, 0, 997);
    assert.equal(throttle.snapshot(0).rejectProbability, 1000 / 1001);
    assert.equal(throttle.shouldReject(0, 0.9995), false, "a trickle still goes through");
  });

  it("k sets how many rejections the backends may answer before the client throttles", () => {
    const lenient = new AdaptiveThrottle({ k: 3 });
    const strict = new AdaptiveThrottle({ k: 1.1 });
    for (const throttle of [lenient, strict]) {
      acceptedRequests(throttle, 0, 10);
      rejectedRequests(throttle, 0, 15);
    }
    // 25 requests, 10 accepts.
    assert.equal(lenient.snapshot(0).rejectProbability, 0, "25 < 3 × 10");
    assert.equal(strict.snapshot(0).rejectProbability, (25 - 11) / 26);
    assert.equal(lenient.shouldReject(0, 0), false);
    assert.equal(strict.shouldReject(0, 0.5), true);
  });

  it("counts over the window only, a sub-bucket (windowMs / 10) at a time", () => {
    const throttle = new AdaptiveThrottle({ windowMs: 1000 });
    rejectedRequests(throttle, 0, 9);
    acceptedRequests(throttle, 950, 1);
    assert.deepEqual(throttle.snapshot(999), { requests: 10, accepts: 1, rejectProbability: 8 / 11 });
    assert.deepEqual(throttle.snapshot(1000), { requests: 1, accepts: 1, rejectProbability: 0 }, "sub-bucket [0, 100) left");
    assert.equal(throttle.shouldReject(999, 0.5), true, "the snapshot at 1000 moved nothing");
    assert.deepEqual(throttle.snapshot(1950), { requests: 0, accepts: 0, rejectProbability: 0 });
    assert.equal(throttle.shouldReject(1950, 0), false);
  });

  it("a clock stepped back neither empties nor freezes the window", () => {
    const throttle = new AdaptiveThrottle({ windowMs: 1000 });
    rejectedRequests(throttle, 1_000_000, 9);
    assert.equal(throttle.shouldReject(0, 0.85), true, "time stood still: 9 / 10");
    assert.deepEqual(throttle.snapshot(999), { requests: 10, accepts: 0, rejectProbability: 10 / 11 });
    assert.deepEqual(throttle.snapshot(1000), { requests: 0, accepts: 0, rejectProbability: 0 }, "a window of forward time later");
    assert.equal(throttle.shouldReject(Number.NaN, 0.9), true, "a non-finite now: no time passes, no throw");
  });

  it("counts as a naive recount of the last 10 sub-buckets; shouldReject is exactly `random < rejectProbability` before the request (property)", () => {
    const op = fc.record({
      step: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 50 }) }, fc.integer({ min: 50, max: 2000 }), fc.integer({ min: -500, max: -1 })),
      accept: fc.boolean(),
      random: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
    });
    fc.assert(
      fc.property(fc.double({ min: 1, max: 5, noNaN: true }), fc.integer({ min: 10, max: 5000 }), fc.array(op, { maxLength: 300, size: "max" }), (k, windowMs, ops) => {
        const throttle = new AdaptiveThrottle({ k, windowMs });
        const bucketMs = windowMs / 10;
        const requests: number[] = [];
        const accepts: number[] = [];
        let now = 1_763_000_000_000;
        let own = now;
        ops.forEach((o, i) => {
          if (i > 0) {
            now += o.step;
            own += Math.max(0, o.step);
          }
          const bucket = Math.floor(own / bucketMs);
          const r = requests.filter((b) => b > bucket - 10).length;
          const a = accepts.filter((b) => b > bucket - 10).length;
          const probability = Math.max(0, (r - k * a) / (r + 1));
          assert.deepEqual(throttle.snapshot(now), { requests: r, accepts: a, rejectProbability: probability });
          assert.ok(probability < 1);
          assert.equal(throttle.shouldReject(now, o.random), o.random < probability);
          requests.push(bucket);
          if (o.accept) {
            throttle.accepted(now);
            accepts.push(bucket);
          }
        });
      }),
      { numRuns: 200 },
    );
  });
});
