import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { FarcallError } from "../errors/farcall-error.js";
import { seededRandom } from "../timing/seeded-random.js";
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

/** `n` requests at `now` that the throttle admits (random 0.999…) and that complete at once, accepted by a backend. */
function acceptedRequests(throttle: AdaptiveThrottle, now: number, n: number): void {
  for (let i = 0; i < n; i++) {
    assert.equal(throttle.shouldReject(now, 0.999_999), false);
    throttle.completed(now, true);
  }
}

/** `n` requests at `now` that the throttle admits and that complete at once, rejected by a backend (requests, not accepts). */
function backendRejectedRequests(throttle: AdaptiveThrottle, now: number, n: number): void {
  for (let i = 0; i < n; i++) {
    assert.equal(throttle.shouldReject(now, 0.999_999), false);
    throttle.completed(now, false);
  }
}

/** The probability the throttle must report for `requests` and `accepts` counted in the window. */
function formula(requests: number, accepts: number, k = 2): number {
  return Math.max(0, (requests - k * accepts) / (requests + 1));
}

/**
 * Drives `throttle` in front of a backend accepting at most 10 calls per 30 ms, each completing
 * 20 ms after it was sent, one millisecond at a time from 0 to `untilMs`: a request is asked in
 * each millisecond `offered` says, and `seen` is told its outcome.
 */
function simulateBackend(
  throttle: AdaptiveThrottle,
  random: () => number,
  untilMs: number,
  offered: (now: number) => boolean,
  seen: (now: number, outcome: "local" | "accepted" | "rejected") => void,
): void {
  const inFlight: { at: number; accepted: boolean }[] = [];
  let next = 0;
  let slot = -1;
  let used = 0;
  for (let now = 0; now < untilMs; now++) {
    while (next < inFlight.length && (inFlight[next] as { at: number }).at <= now) {
      const call = inFlight[next++] as { at: number; accepted: boolean };
      throttle.completed(call.at, call.accepted);
    }
    if (!offered(now)) continue;
    if (throttle.shouldReject(now, random())) {
      seen(now, "local");
      continue;
    }
    if (Math.floor(now / 30) !== slot) {
      slot = Math.floor(now / 30);
      used = 0;
    }
    const accepted = used < 10;
    if (accepted) used++;
    seen(now, accepted ? "accepted" : "rejected");
    inFlight.push({ at: now + 20, accepted });
  }
}

describe("checkAdaptiveThrottleOptions", () => {
  it("fills the defaults and freezes the copy", () => {
    const checked = checkAdaptiveThrottleOptions({}, "adaptiveThrottle");
    assert.deepEqual(checked, { k: 2, windowMs: 5_000 });
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

/** What {@link closedLoop} saw. */
interface ClosedLoopRun {
  /** Asks of the throttle, locally rejected ones included. */
  readonly asks: number;
  /** The `now` of each locally rejected ask. */
  readonly localRejections: readonly number[];
  /** Each admitted call's completion, in order, with the rejection probability right after it. */
  readonly completions: readonly { readonly at: number; readonly accepted: boolean; readonly probability: number }[];
}

/**
 * A closed loop of `callers` callers, all asking at time 0: a call the throttle rejects returns
 * at once and its caller asks again at the same `now`; an admitted call completes `latencyMs`
 * later (`backendAccepts(now)` says whether a backend accepted it) and its caller asks again
 * then. Runs until `untilMs`; stops with an assertion after `maxAsks` asks. Before every ask it
 * checks that the throttle's snapshot is the formula over its own recount of the window (local
 * rejections counted at their ask, admitted calls at their completion) and that the ask is
 * rejected exactly when `random()` falls below that probability.
 */
function closedLoop(options: {
  readonly throttle: AdaptiveThrottle;
  readonly windowMs: number;
  readonly callers: number;
  readonly latencyMs: number;
  readonly untilMs: number;
  readonly maxAsks: number;
  readonly random: () => number;
  readonly backendAccepts: (now: number) => boolean;
}): ClosedLoopRun {
  const { throttle, windowMs, callers, latencyMs, untilMs, maxAsks, random, backendAccepts } = options;
  const bucketMs = windowMs / 10;
  const requests = new Map<number, number>();
  const accepts = new Map<number, number>();
  const count = (counts: Map<number, number>, now: number): void => {
    const bucket = Math.floor(now / bucketMs);
    counts.set(bucket, (counts.get(bucket) ?? 0) + 1);
  };
  const inWindow = (counts: Map<number, number>, now: number): number => {
    const bucket = Math.floor(now / bucketMs);
    let sum = 0;
    for (let b = bucket - 9; b <= bucket; b++) sum += counts.get(b) ?? 0;
    return sum;
  };
  const localRejections: number[] = [];
  const completions: { at: number; accepted: boolean; probability: number }[] = [];
  /** Completion times of the calls in flight; one latency for all, so in order. */
  const inFlight: number[] = [];
  let next = 0;
  let asks = 0;
  const ask = (now: number): void => {
    for (;;) {
      assert.ok(asks < maxAsks, `more than ${maxAsks} asks by ${now} ms`);
      asks++;
      const r = inWindow(requests, now);
      const a = inWindow(accepts, now);
      const probability = formula(r, a);
      assert.deepEqual(throttle.snapshot(now), { requests: r, accepts: a, rejectProbability: probability }, `at ${now} ms`);
      assert.ok(probability < 1);
      const p = random();
      const rejected = throttle.shouldReject(now, p);
      assert.equal(rejected, p < probability, `at ${now} ms`);
      if (!rejected) {
        inFlight.push(now + latencyMs);
        return;
      }
      localRejections.push(now);
      count(requests, now);
    }
  };
  for (let i = 0; i < callers; i++) ask(0);
  while (next < inFlight.length && (inFlight[next] as number) <= untilMs) {
    const now = inFlight[next++] as number;
    const accepted = backendAccepts(now);
    throttle.completed(now, accepted);
    count(requests, now);
    if (accepted) count(accepts, now);
    completions.push({ at: now, accepted, probability: throttle.snapshot(now).rejectProbability });
    ask(now);
  }
  return { asks, localRejections, completions };
}

describe("AdaptiveThrottle", () => {
  it("never rejects while the backends accept everything, nor when fresh", () => {
    const throttle = new AdaptiveThrottle();
    assert.equal(throttle.shouldReject(0, 0), false, "no history: probability 0");
    throttle.completed(0, true);
    acceptedRequests(throttle, 1, 500);
    assert.deepEqual(throttle.snapshot(1), { requests: 501, accepts: 501, rejectProbability: 0 });
    assert.equal(throttle.shouldReject(1, 0), false);
  });

  it("counts an admitted request only when it completes, and a rejected one at once", () => {
    const throttle = new AdaptiveThrottle({ windowMs: 1000 });
    assert.equal(throttle.shouldReject(0, 0.5), false);
    assert.deepEqual(throttle.snapshot(0), { requests: 0, accepts: 0, rejectProbability: 0 }, "in flight: not counted");
    throttle.completed(0, false);
    assert.deepEqual(throttle.snapshot(0), { requests: 1, accepts: 0, rejectProbability: 1 / 2 }, "completed, not accepted: a request");
    assert.equal(throttle.shouldReject(0, 0.25), true);
    assert.deepEqual(throttle.snapshot(0), { requests: 2, accepts: 0, rejectProbability: 2 / 3 }, "rejected: counted at once");
    assert.equal(throttle.shouldReject(0, 0.9), false);
    throttle.completed(0, true);
    assert.deepEqual(throttle.snapshot(0), { requests: 3, accepts: 1, rejectProbability: 1 / 4 }, "completed, accepted: a request and an accept");
  });

  it("counts a request in the sub-bucket where it completes, not where it was admitted", () => {
    const throttle = new AdaptiveThrottle({ windowMs: 1000 });
    assert.equal(throttle.shouldReject(0, 0.5), false);
    throttle.completed(1500, false);
    assert.deepEqual(throttle.snapshot(1500), { requests: 1, accepts: 0, rejectProbability: 1 / 2 });
    assert.deepEqual(throttle.snapshot(2499), { requests: 1, accepts: 0, rejectProbability: 1 / 2 });
    assert.deepEqual(throttle.snapshot(2500), { requests: 0, accepts: 0, rejectProbability: 0 });
  });

  it("rejects with probability (requests − k × accepts) / (requests + 1), judged before counting the request", () => {
    const throttle = new AdaptiveThrottle({ k: 2 });
    acceptedRequests(throttle, 0, 4);
    backendRejectedRequests(throttle, 0, 6);
    // 10 requests, 4 accepts: (10 − 8) / 11.
    assert.deepEqual(throttle.snapshot(0), { requests: 10, accepts: 4, rejectProbability: 2 / 11 });
    assert.equal(throttle.shouldReject(0, 2 / 11 - 1e-9), true);
    // Now 11 requests: (11 − 8) / 12 = 0.25.
    assert.equal(throttle.shouldReject(0, 0.25), false, "random equal to the probability: admitted");
    assert.deepEqual(throttle.snapshot(0), { requests: 11, accepts: 4, rejectProbability: 0.25 }, "admitted: not counted yet");
    throttle.completed(0, false);
    assert.equal(throttle.shouldReject(0, 4 / 13 - 1e-9), true, "12 requests: (12 − 8) / 13, rejected and counted");
    assert.deepEqual(throttle.snapshot(0), { requests: 13, accepts: 4, rejectProbability: 5 / 14 });
  });

  it("climbs towards 1 without reaching it when nothing is accepted", () => {
    const throttle = new AdaptiveThrottle();
    assert.equal(throttle.shouldReject(0, 0.49), false, "first: 0");
    throttle.completed(0, false);
    assert.equal(throttle.shouldReject(0, 0.49), true, "second: 1/2");
    assert.equal(throttle.shouldReject(0, 0.67), false, "third: 2/3");
    throttle.completed(0, false);
    backendRejectedRequests(throttle, 0, 997);
    assert.equal(throttle.snapshot(0).rejectProbability, 1000 / 1001);
    assert.equal(throttle.shouldReject(0, 0.9995), false, "a trickle still goes through");
    const local = new AdaptiveThrottle();
    assert.equal(local.shouldReject(0, 0.5), false);
    local.completed(0, false);
    for (let i = 0; i < 999; i++) assert.equal(local.shouldReject(0, 0), true, `local rejection ${i}`);
    assert.deepEqual(local.snapshot(0), { requests: 1000, accepts: 0, rejectProbability: 1000 / 1001 }, "fed by its own rejections alone");
  });

  it("k sets how many rejections the backends may answer before the client throttles", () => {
    const lenient = new AdaptiveThrottle({ k: 3 });
    const strict = new AdaptiveThrottle({ k: 1.1 });
    for (const throttle of [lenient, strict]) {
      acceptedRequests(throttle, 0, 10);
      backendRejectedRequests(throttle, 0, 15);
    }
    // 25 requests, 10 accepts.
    assert.equal(lenient.snapshot(0).rejectProbability, 0, "25 < 3 × 10");
    assert.equal(strict.snapshot(0).rejectProbability, (25 - 11) / 26);
    assert.equal(lenient.shouldReject(0, 0), false);
    assert.equal(strict.shouldReject(0, 0.5), true);
  });

  it("counts over the window only, a sub-bucket (windowMs / 10) at a time", () => {
    const throttle = new AdaptiveThrottle({ windowMs: 1000 });
    backendRejectedRequests(throttle, 0, 9);
    acceptedRequests(throttle, 950, 1);
    assert.deepEqual(throttle.snapshot(999), { requests: 10, accepts: 1, rejectProbability: 8 / 11 });
    assert.deepEqual(throttle.snapshot(1000), { requests: 1, accepts: 1, rejectProbability: 0 }, "sub-bucket [0, 100) left");
    assert.equal(throttle.shouldReject(999, 0.5), true, "the snapshot at 1000 moved nothing");
    assert.deepEqual(throttle.snapshot(1950), { requests: 0, accepts: 0, rejectProbability: 0 });
    assert.equal(throttle.shouldReject(1950, 0), false);
  });

  it("a clock stepped back neither empties nor freezes the window", () => {
    const throttle = new AdaptiveThrottle({ windowMs: 1000 });
    backendRejectedRequests(throttle, 1_000_000, 9);
    assert.equal(throttle.shouldReject(0, 0.85), true, "time stood still: 9 / 10");
    assert.deepEqual(throttle.snapshot(999), { requests: 10, accepts: 0, rejectProbability: 10 / 11 });
    assert.deepEqual(throttle.snapshot(1000), { requests: 0, accepts: 0, rejectProbability: 0 }, "a window of forward time later");
    assert.equal(throttle.shouldReject(Number.NaN, 0.9), true, "a non-finite now: no time passes, no throw");
    throttle.completed(Number.NaN, true);
    throttle.completed(-5, false);
    assert.deepEqual(throttle.snapshot(-5), { requests: 13, accepts: 1, rejectProbability: 11 / 14 }, "completions at a non-finite or earlier now: counted now");
  });

  it("a burst of concurrent first calls is not throttled (regression: 1,250 of 1,255 calls refused)", () => {
    const throttle = new AdaptiveThrottle();
    // Random 0 rejects whenever the probability is above 0.
    for (let i = 0; i < 256; i++) assert.equal(throttle.shouldReject(1000, 0), false, `call ${i} of the burst`);
    assert.deepEqual(throttle.snapshot(1000), { requests: 0, accepts: 0, rejectProbability: 0 }, "nothing completed: nothing counted");
    for (let i = 0; i < 256; i++) {
      throttle.completed(1000, true);
      assert.equal(throttle.snapshot(1000).rejectProbability, 0, `after completion ${i}`);
    }
    assert.deepEqual(throttle.snapshot(1000), { requests: 256, accepts: 256, rejectProbability: 0 });
    assert.equal(throttle.shouldReject(1000, 0), false);
  });

  it("a closed-loop caller against a healthy backend is never throttled", () => {
    const windowMs = 1000;
    const throttle = new AdaptiveThrottle({ windowMs });
    const run = closedLoop({
      throttle,
      windowMs,
      callers: 64,
      latencyMs: 20,
      untilMs: 10 * windowMs,
      maxAsks: 40_000,
      random: seededRandom(1),
      backendAccepts: () => true,
    });
    assert.deepEqual(run.localRejections, []);
    // Each caller: a call every 20 ms from 20 to 10,000 ms, plus the one in flight at the end.
    assert.equal(run.completions.length, 64 * 500);
    assert.equal(run.asks, 64 * 501);
    const end = throttle.snapshot(10 * windowMs);
    assert.equal(end.rejectProbability, 0);
    assert.equal(end.accepts, end.requests);
  });

  it("a closed-loop caller against a backend accepting 1 call in 3 is throttled at the formula's probability, and is freed once the backend recovers", () => {
    // Accepting under 1/k of the calls, the formula climbs towards 1 (here above 0.9 within the
    // first window). A caller that asks again at once keeps every call in flight, so the local
    // rejections do not lower the backend's load; they grow with each window the backend stays
    // bad (no per-accept bound holds in this loop).
    const windowMs = 1000;
    const recoversAt = 2 * windowMs;
    const throttle = new AdaptiveThrottle({ windowMs });
    let completed = 0;
    const run = closedLoop({
      throttle,
      windowMs,
      callers: 16,
      latencyMs: 20,
      untilMs: 8 * windowMs,
      maxAsks: 200_000,
      random: seededRandom(42),
      backendAccepts: (now) => now >= recoversAt || completed++ % 3 === 0,
    });
    const bad = run.completions.filter((c) => c.at < recoversAt);
    assert.equal(bad.length, 16 * 99, "every caller keeps getting calls through: a call every 20 ms from 20 to 1,980 ms");
    assert.equal(bad.filter((c) => c.accepted).length, 16 * 33);
    const firstWindow = run.localRejections.filter((at) => at < windowMs).length;
    assert.ok(firstWindow > 0, "the throttle engages within the first window");
    assert.ok((bad.at(-1) as { probability: number }).probability > 0.9, "near 1 when the backend recovers");
    // Recovery: the bad window's counts leave, helped by the accepts; the local rejections made
    // while recovering count too, hence more than one window (4 allowed, about 3.3 here).
    const lastLocal = Math.max(...run.localRejections);
    assert.ok(lastLocal < recoversAt + 4 * windowMs, `last local rejection at ${lastLocal} ms`);
    assert.equal(throttle.snapshot(8 * windowMs).rejectProbability, 0);
    assert.ok(run.completions.filter((c) => c.at >= recoversAt).every((c) => c.accepted));
  });

  it("a backend whose capacity is a third of the offered load: about 1 local rejection and 1 backend rejection per accept, probability ≈ 1/3 (SRE)", () => {
    // Open loop: one request a millisecond, whatever happened to the others. The backend accepts
    // at most 10 calls per 30 ms (unthrottled it would reject 2 in 3); calls complete 20 ms later.
    // With k = 2 the client lets through twice what is accepted: (R − 2A) / (R + 1) ≈ 1/3.
    const windowMs = 10_000;
    const throttle = new AdaptiveThrottle({ windowMs });
    let asks = 0;
    let local = 0;
    let accepts = 0;
    let backendRejects = 0;
    simulateBackend(throttle, seededRandom(7), 6 * windowMs, () => true, (now, outcome) => {
      if (now < windowMs) return;
      if (now % 1000 === 0) {
        const { rejectProbability } = throttle.snapshot(now);
        assert.ok(Math.abs(rejectProbability - 1 / 3) < 0.02, `probability ${rejectProbability} at ${now} ms`);
      }
      asks++;
      if (outcome === "local") local++;
      else if (outcome === "accepted") accepts++;
      else backendRejects++;
    });
    assert.ok(accepts > 16_000, `${accepts} accepts: the backend runs at capacity`);
    assert.ok(local / accepts <= 1.05, `${local} local rejections for ${accepts} accepts`);
    assert.ok(local / accepts >= 0.95, `${local} local rejections for ${accepts} accepts: the throttle sheds`);
    assert.ok(backendRejects / accepts <= 1.05, `${backendRejects} backend rejections for ${accepts} accepts`);
    assert.ok(Math.abs(local / asks - 1 / 3) < 0.02);
  });

  it("with the default window, after a step down from 3 × the backend's capacity to half of it, the last local rejection comes within 4 s (T14: recovery within 5 s)", () => {
    // The same backend, one request a millisecond for 20 s, then one every 6 ms (half its
    // capacity): every call it gets from then on is accepted.
    const throttle = new AdaptiveThrottle();
    const stepDownAt = 20_000;
    let lastLocal = -1;
    let localBefore = 0;
    const offered = (now: number): boolean => now < stepDownAt || now % 6 === 0;
    simulateBackend(throttle, seededRandom(11), stepDownAt + 15_000, offered, (now, outcome) => {
      if (outcome !== "local") return;
      lastLocal = now;
      if (now < stepDownAt) localBefore++;
    });
    assert.ok(localBefore > 4000, `${localBefore} local rejections under overload: the throttle was shedding`);
    assert.ok(lastLocal > stepDownAt, "it still refused calls just after the step down");
    assert.ok(lastLocal < stepDownAt + 4000, `last local rejection ${lastLocal - stepDownAt} ms after the step down`);
  });

  it("counts as a naive recount of the last 10 sub-buckets, rejections at once and admitted requests at completion; shouldReject is exactly `random < rejectProbability`; snapshot changes nothing (property)", () => {
    const op = fc.record({
      step: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 50 }) }, fc.integer({ min: 50, max: 2000 }), fc.integer({ min: -500, max: -1 })),
      complete: fc.boolean(),
      accept: fc.boolean(),
      random: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      peek: fc.option(fc.integer({ min: 0, max: 10_000 })),
    });
    fc.assert(
      fc.property(fc.double({ min: 1, max: 5, noNaN: true }), fc.integer({ min: 10, max: 5000 }), fc.array(op, { maxLength: 300, size: "max" }), (k, windowMs, ops) => {
        const throttle = new AdaptiveThrottle({ k, windowMs });
        const bucketMs = windowMs / 10;
        const requests: number[] = [];
        const accepts: number[] = [];
        const model = (at: number) => {
          const bucket = Math.floor(at / bucketMs);
          const r = requests.filter((b) => b > bucket - 10).length;
          const a = accepts.filter((b) => b > bucket - 10).length;
          return { requests: r, accepts: a, rejectProbability: Math.max(0, (r - k * a) / (r + 1)) };
        };
        let inFlight = 0;
        let now = 1_763_000_000_000;
        let own = now;
        ops.forEach((o, i) => {
          if (i > 0) {
            now += o.step;
            own += Math.max(0, o.step);
          }
          const bucket = Math.floor(own / bucketMs);
          const expected = model(own);
          assert.deepEqual(throttle.snapshot(now), expected);
          assert.ok(expected.rejectProbability < 1);
          if (o.complete && inFlight > 0) {
            inFlight--;
            throttle.completed(now, o.accept);
            requests.push(bucket);
            if (o.accept) accepts.push(bucket);
          } else {
            const rejected = throttle.shouldReject(now, o.random);
            assert.equal(rejected, o.random < expected.rejectProbability);
            if (rejected) requests.push(bucket);
            else inFlight++;
          }
          if (o.peek !== null) assert.deepEqual(throttle.snapshot(now + o.peek), model(own + o.peek), "a snapshot ahead");
        });
      }),
      { numRuns: 200 },
    );
  });
});
