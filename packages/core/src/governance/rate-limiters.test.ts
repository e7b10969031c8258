import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { FarcallError } from "../errors/farcall-error.js";
import type { RateLimiter, RateLimitOptions } from "./limiter.js";
import { checkRateLimitOptions, createRateLimiter } from "./rate-limiters.js";

/** Asserts that `fn` throws `invalid_argument` / `bad_option` naming `option`. */
function assertBadOption(fn: () => unknown, option: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof FarcallError, String(error));
    assert.equal(error.code, "invalid_argument");
    assert.equal(error.reason, "bad_option");
    assert.equal(error.details.option, option);
    return true;
  });
}

/** `tryAcquire` at each time of `times`, in order. */
function run(limiter: RateLimiter, times: readonly number[]): number[] {
  return times.map((t) => limiter.tryAcquire(t));
}

/**
 * Arrival times built from integer steps (some 0: simultaneous arrivals; some negative when
 * `back`), with the limiter's own time for each: the sum of the forward steps only, since a step
 * back counts as no time passing.
 */
function arrivals(back: boolean, maxStep: number) {
  const step = back
    ? fc.oneof(fc.constant(0), fc.integer({ min: 0, max: maxStep }), fc.integer({ min: -5 * maxStep, max: -1 }))
    : fc.oneof(fc.constant(0), fc.integer({ min: 0, max: maxStep }));
  return fc.record({ start: fc.integer({ min: 0, max: 2e12 }), steps: fc.array(step, { minLength: 1, maxLength: 200, size: "max" }) }).map(({ start, steps }) => {
    const times: number[] = [start];
    const own: number[] = [start];
    let t = start;
    let v = start;
    for (const s of steps.slice(1)) {
      t += s;
      v += Math.max(0, s);
      times.push(t);
      own.push(v);
    }
    return { times, own };
  });
}

describe("checkRateLimitOptions", () => {
  it("returns a frozen copy with the defaults filled in", () => {
    const input = { kind: "tokenBucket", ratePerSecond: 50 };
    const checked = checkRateLimitOptions(input, "rateLimit");
    assert.deepEqual(checked, { kind: "tokenBucket", ratePerSecond: 50, burst: 50 });
    assert.ok(Object.isFrozen(checked));
    assert.notEqual(checked, input);
    assert.deepEqual(checkRateLimitOptions({ kind: "tokenBucket", ratePerSecond: 0.2 }, "r"), { kind: "tokenBucket", ratePerSecond: 0.2, burst: 1 });
    assert.deepEqual(checkRateLimitOptions({ kind: "tokenBucket", ratePerSecond: 5, burst: 2.5 }, "r"), { kind: "tokenBucket", ratePerSecond: 5, burst: 2.5 });
    assert.deepEqual(checkRateLimitOptions({ kind: "slidingWindow", limit: 7 }, "r"), { kind: "slidingWindow", limit: 7, windowMs: 1000 });
    assert.deepEqual(checkRateLimitOptions({ kind: "leakyBucket", ratePerSecond: 3 }, "r"), { kind: "leakyBucket", ratePerSecond: 3, maxQueueMs: 500 });
    assert.deepEqual(checkRateLimitOptions(JSON.parse('{"kind":"leakyBucket","ratePerSecond":1e7,"maxQueueMs":0}'), "r"), {
      kind: "leakyBucket",
      ratePerSecond: 1e7,
      maxQueueMs: 0,
    });
  });

  it("accepts the edges of each range", () => {
    for (const windowMs of [1, 3_600_000]) checkRateLimitOptions({ kind: "slidingWindow", limit: 1, windowMs }, "r");
    for (const maxQueueMs of [0, 60_000]) checkRateLimitOptions({ kind: "leakyBucket", ratePerSecond: 1, maxQueueMs }, "r");
    checkRateLimitOptions({ kind: "slidingWindow", limit: 10_000, windowMs: 1 }, "r"); // exactly 1e7 per second
    checkRateLimitOptions({ kind: "tokenBucket", ratePerSecond: 1e7, burst: 1e8 }, "r");
  });

  it("refuses what is not a plain object of data, naming the option", () => {
    for (const value of [null, undefined, 5, "tokenBucket", [], [{ kind: "tokenBucket", ratePerSecond: 1 }], new Map()]) {
      assertBadOption(() => checkRateLimitOptions(value, "rateLimit"), "rateLimit");
    }
    class Options {
      readonly kind = "tokenBucket";
      readonly ratePerSecond = 1;
    }
    assertBadOption(() => checkRateLimitOptions(new Options(), "rateLimit"), "rateLimit");
    const inherited = Object.create({ ratePerSecond: 1 }) as object;
    assertBadOption(() => checkRateLimitOptions(inherited, "rateLimit"), "rateLimit");
    let read = false;
    const accessor = {
      kind: "tokenBucket",
      get ratePerSecond() {
        read = true;
        return 1;
      },
    };
    assertBadOption(() => checkRateLimitOptions(accessor, "rateLimit"), "rateLimit.ratePerSecond");
    assert.equal(read, false, "a getter is never run");
    assertBadOption(() => checkRateLimitOptions(JSON.parse('{"kind":"tokenBucket","ratePerSecond":1,"__proto__":{"burst":1e9}}'), "rateLimit"), "rateLimit.__proto__");
  });

  it("refuses an unknown kind, an unknown field and a field of another kind", () => {
    assertBadOption(() => checkRateLimitOptions({ kind: "fixedWindow", limit: 1 }, "rateLimit"), "rateLimit.kind");
    assertBadOption(() => checkRateLimitOptions({ ratePerSecond: 1 }, "rateLimit"), "rateLimit.kind");
    assertBadOption(() => checkRateLimitOptions({ kind: "tokenBucket", ratePerSec: 1 }, "rateLimit"), "rateLimit.ratePerSec");
    assertBadOption(() => checkRateLimitOptions({ kind: "leakyBucket", ratePerSecond: 1, burst: 3 }, "rateLimit"), "rateLimit.burst");
    assertBadOption(() => checkRateLimitOptions({ kind: "slidingWindow", limit: 1, maxQueueMs: 3 }, "rateLimit"), "rateLimit.maxQueueMs");
  });

  it("refuses missing, non-finite, non-positive, non-numeric and absurd rates", () => {
    for (const kind of ["tokenBucket", "leakyBucket"]) {
      for (const ratePerSecond of [undefined, 0, -1, Number.NaN, Number.POSITIVE_INFINITY, 1e7 + 1, "100", null, true]) {
        const value = ratePerSecond === undefined ? { kind } : { kind, ratePerSecond };
        assertBadOption(() => checkRateLimitOptions(value, "rateLimit"), "rateLimit.ratePerSecond");
      }
    }
    for (const burst of [0, 0.5, -3, 1e8 + 1, Number.NaN, "5"]) {
      assertBadOption(() => checkRateLimitOptions({ kind: "tokenBucket", ratePerSecond: 1, burst }, "rateLimit"), "rateLimit.burst");
    }
  });

  it("refuses bad windows, limits and queue bounds", () => {
    for (const windowMs of [0, -1, 0.5, 3_600_001, Number.NaN, "1000"]) {
      assertBadOption(() => checkRateLimitOptions({ kind: "slidingWindow", limit: 1, windowMs }, "rateLimit"), "rateLimit.windowMs");
    }
    for (const limit of [undefined, 0, -1, 1.5, Number.POSITIVE_INFINITY, "3"]) {
      const value = limit === undefined ? { kind: "slidingWindow" } : { kind: "slidingWindow", limit };
      assertBadOption(() => checkRateLimitOptions(value, "rateLimit"), "rateLimit.limit");
    }
    // 10001 per ms is above 1e7 per second.
    assertBadOption(() => checkRateLimitOptions({ kind: "slidingWindow", limit: 10_001, windowMs: 1 }, "rateLimit"), "rateLimit.limit");
    for (const maxQueueMs of [-1, 60_001, Number.NaN, "500"]) {
      assertBadOption(() => checkRateLimitOptions({ kind: "leakyBucket", ratePerSecond: 1, maxQueueMs }, "rateLimit"), "rateLimit.maxQueueMs");
    }
  });

  it("createRateLimiter validates its options under the name rateLimit", () => {
    assertBadOption(() => createRateLimiter({ kind: "tokenBucket", ratePerSecond: 0 }), "rateLimit.ratePerSecond");
    assertBadOption(() => createRateLimiter({ kind: "nope" } as unknown as RateLimitOptions), "rateLimit.kind");
    assert.equal(createRateLimiter({ kind: "slidingWindow", limit: 1 }).kind, "slidingWindow");
  });
});

describe("token bucket", () => {
  it("starts full, admits `burst` at once, then one per 1000/rate ms", () => {
    const limiter = createRateLimiter({ kind: "tokenBucket", ratePerSecond: 10, burst: 5 });
    assert.equal(limiter.kind, "tokenBucket");
    assert.deepEqual(run(limiter, [1000, 1000, 1000, 1000, 1000, 1000]), [0, 0, 0, 0, 0, -1]);
    assert.equal(limiter.tryAcquire(1099), -1, "0.99 token");
    assert.equal(limiter.tryAcquire(1100), 0, "one token after 100 ms");
    assert.equal(limiter.tryAcquire(1100), -1);
  });

  it("holds at most `burst` tokens however long it was idle; burst defaults to one second's worth", () => {
    const limiter = createRateLimiter({ kind: "tokenBucket", ratePerSecond: 4 });
    assert.deepEqual(run(limiter, [0, 0, 0, 0, 0]), [0, 0, 0, 0, -1]);
    assert.deepEqual(run(limiter, [3_600_000, 3_600_000, 3_600_000, 3_600_000, 3_600_000]), [0, 0, 0, 0, -1]);
    const slow = createRateLimiter({ kind: "tokenBucket", ratePerSecond: 0.5 });
    assert.deepEqual(run(slow, [0, 0, 1999, 2000]), [0, -1, -1, 0], "burst at least 1; one token per 2 s");
  });

  it("a clock stepped back refills nothing; time counts again from the new reading", () => {
    const limiter = createRateLimiter({ kind: "tokenBucket", ratePerSecond: 10, burst: 2 });
    assert.deepEqual(run(limiter, [10_000, 10_000, 10_000]), [0, 0, -1]);
    assert.equal(limiter.tryAcquire(0), -1, "10 s back: no burst");
    assert.equal(limiter.tryAcquire(99), -1);
    assert.equal(limiter.tryAcquire(100), 0, "100 ms after the step: one token, not a wait until 10 000 again");
  });

  it("a non-finite now refills nothing and does not throw", () => {
    const limiter = createRateLimiter({ kind: "tokenBucket", ratePerSecond: 10, burst: 1 });
    assert.equal(limiter.tryAcquire(0), 0);
    for (const now of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) assert.equal(limiter.tryAcquire(now), -1);
    assert.equal(limiter.tryAcquire(100), 0, "measured from the last finite now");
  });

  it("admits at most burst + rate × elapsed / 1000 over every interval, and always admits after 1000/rate ms idle (property)", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.1, max: 5000, noNaN: true }),
        fc.option(fc.double({ min: 1, max: 50, noNaN: true }), { nil: undefined }),
        fc.boolean().chain((back) => arrivals(back, 400)),
        (ratePerSecond, burstOption, { times, own }) => {
          const limiter = createRateLimiter({ kind: "tokenBucket", ratePerSecond, ...(burstOption === undefined ? {} : { burst: burstOption }) });
          const burst = burstOption ?? Math.max(1, ratePerSecond);
          const admitted = run(limiter, times).map((d) => d === 0);
          for (let i = 0; i < times.length; i++) {
            let count = 0;
            for (let j = i; j < times.length; j++) {
              if (admitted[j]) count++;
              const bound = burst + (ratePerSecond * ((own[j] as number) - (own[i] as number))) / 1000;
              assert.ok(count <= bound + 1e-9, `${count} admitted in [${i}, ${j}] > ${bound}`);
            }
            const idle = i === 0 ? Number.POSITIVE_INFINITY : (own[i] as number) - (own[i - 1] as number);
            if (idle >= 1000 / ratePerSecond + 1) assert.ok(admitted[i], `refused after ${idle} ms idle`);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("sliding window", () => {
  it("admits `limit` per window and frees a sub-bucket's admissions when it leaves the window", () => {
    const limiter = createRateLimiter({ kind: "slidingWindow", limit: 3, windowMs: 1000 });
    assert.equal(limiter.kind, "slidingWindow");
    assert.deepEqual(run(limiter, [50, 50, 950, 960, 999]), [0, 0, 0, -1, -1]);
    assert.deepEqual(run(limiter, [1000, 1000, 1000]), [0, 0, -1], "the two of sub-bucket [0, 100) expired at 1000; 950's has not");
    assert.deepEqual(run(limiter, [1899, 1900, 1900, 1900]), [-1, 0, -1, -1], "950's expires at 1900");
  });

  it("windowMs defaults to 1000", () => {
    const limiter = createRateLimiter({ kind: "slidingWindow", limit: 1 });
    assert.deepEqual(run(limiter, [0, 999, 1000]), [0, -1, 0]);
  });

  it("an unaligned window of windowMs may see 2 × limit (the documented edge)", () => {
    const limiter = createRateLimiter({ kind: "slidingWindow", limit: 3, windowMs: 1000 });
    // 3 at the end of sub-bucket [0, 100), 3 at the start of [1000, 1100): 6 within 902 ms.
    assert.deepEqual(run(limiter, [99, 99, 99, 1000, 1000, 1000, 1000]), [0, 0, 0, 0, 0, 0, -1]);
  });

  it("a clock stepped back neither resets the window nor stalls it for the size of the step", () => {
    const limiter = createRateLimiter({ kind: "slidingWindow", limit: 2, windowMs: 1000 });
    assert.deepEqual(run(limiter, [100_000, 100_000]), [0, 0]);
    assert.deepEqual(run(limiter, [0, 500, 999]), [-1, -1, -1], "time stood still at the step, then moved 999 ms");
    assert.deepEqual(run(limiter, [1000, 1000, 1000]), [0, 0, -1], "one window of forward time later");
    assert.deepEqual(run(limiter, [Number.NaN, Number.POSITIVE_INFINITY]), [-1, -1]);
  });

  it("at most `limit` admissions in any 10 consecutive sub-buckets, at most 2 × limit in any windowMs, decisions as a naive recount (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 5000 }),
        fc.boolean().chain((back) => arrivals(back, 300)),
        (limit, windowMs, { times, own }) => {
          const limiter = createRateLimiter({ kind: "slidingWindow", limit, windowMs });
          const bucketMs = windowMs / 10;
          const admittedAt: number[] = [];
          const admittedBuckets: number[] = [];
          times.forEach((t, i) => {
            const v = own[i] as number;
            const bucket = Math.floor(v / bucketMs);
            const inWindow = admittedBuckets.filter((b) => b > bucket - 10).length;
            const result = limiter.tryAcquire(t);
            assert.equal(result, inWindow < limit ? 0 : -1, `at ${v}: ${inWindow} in the window`);
            if (result === 0) {
              admittedAt.push(v);
              admittedBuckets.push(bucket);
            }
          });
          for (let i = 0; i < admittedBuckets.length; i++) {
            const first = admittedBuckets[i] as number;
            const aligned = admittedBuckets.filter((b) => b >= first && b <= first + 9).length;
            assert.ok(aligned <= limit, `${aligned} admitted in sub-buckets ${first}..${first + 9}`);
            const from = admittedAt[i] as number;
            const any = admittedAt.filter((v) => v >= from && v < from + windowMs).length;
            assert.ok(any <= 2 * limit, `${any} admitted in [${from}, ${from + windowMs})`);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("leaky bucket", () => {
  it("spaces admissions 1000/rate ms apart, returns the wait, rejects beyond maxQueueMs", () => {
    const limiter = createRateLimiter({ kind: "leakyBucket", ratePerSecond: 10, maxQueueMs: 250 });
    assert.equal(limiter.kind, "leakyBucket");
    assert.deepEqual(run(limiter, [0, 0, 0, 0]), [0, 100, 200, -1]);
    assert.equal(limiter.tryAcquire(0), -1, "the rejected request reserved nothing: still 300 ms");
    assert.equal(limiter.tryAcquire(50), 250, "wait exactly maxQueueMs is admitted");
    assert.equal(limiter.tryAcquire(50), -1);
    assert.equal(limiter.tryAcquire(10_000), 0, "idle again");
  });

  it("maxQueueMs defaults to 500; 0 admits only when idle", () => {
    const limiter = createRateLimiter({ kind: "leakyBucket", ratePerSecond: 10 });
    assert.deepEqual(run(limiter, [0, 0, 0, 0, 0, 0, 0]), [0, 100, 200, 300, 400, 500, -1]);
    const strict = createRateLimiter({ kind: "leakyBucket", ratePerSecond: 10, maxQueueMs: 0 });
    assert.deepEqual(run(strict, [0, 0, 99, 100, 150, 200]), [0, -1, -1, 0, -1, 0]);
  });

  it("a clock stepped back keeps the queue as it was instead of admitting a burst or rejecting all", () => {
    const limiter = createRateLimiter({ kind: "leakyBucket", ratePerSecond: 10, maxQueueMs: 500 });
    assert.deepEqual(run(limiter, [1_000_000, 1_000_000]), [0, 100]);
    assert.equal(limiter.tryAcquire(0), 200, "as if no time passed");
    assert.equal(limiter.tryAcquire(150), 150, "then time runs from the new reading");
    assert.equal(limiter.tryAcquire(Number.NaN), 250, "a non-finite now: no time passes");
  });

  it("keeps sub-millisecond spacing exact at epoch scale (1e7 per second)", () => {
    // At 1.7e12 ms a double resolves ~0.24 µs: an epoch-time `next` would not move by 0.1 µs.
    const limiter = createRateLimiter({ kind: "leakyBucket", ratePerSecond: 1e7, maxQueueMs: 1 });
    const now = 1_763_000_000_000;
    let previous = -1;
    for (let k = 0; k < 9990; k++) {
      const wait = limiter.tryAcquire(now);
      assert.ok(Math.abs(wait - k * 1e-4) < 1e-9, `wait ${wait} for request ${k}`);
      assert.ok(wait > previous);
      previous = wait;
    }
    for (let k = 9990; k <= 10_000; k++) limiter.tryAcquire(now);
    assert.equal(limiter.tryAcquire(now), -1, "the 10002nd would wait 1.0001 ms > maxQueueMs");
  });

  it("every wait ≤ maxQueueMs, starts (now + wait) ≥ 1000/rate apart, rejects only when the wait would exceed maxQueueMs (property)", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.5, max: 5000, noNaN: true }),
        fc.integer({ min: 0, max: 2000 }),
        fc.boolean().chain((back) => arrivals(back, 300)),
        (ratePerSecond, maxQueueMs, { times, own }) => {
          const limiter = createRateLimiter({ kind: "leakyBucket", ratePerSecond, maxQueueMs });
          const interval = 1000 / ratePerSecond;
          const tolerance = 1e-6;
          let nextFree = Number.NEGATIVE_INFINITY;
          let lastStart = Number.NEGATIVE_INFINITY;
          times.forEach((t, i) => {
            // Relative to the first arrival, so the model itself computes without epoch rounding.
            const v = (own[i] as number) - (own[0] as number);
            const expected = Math.max(0, nextFree - v);
            const wait = limiter.tryAcquire(t);
            if (wait === -1) {
              assert.ok(expected > maxQueueMs - tolerance, `rejected with a wait of ${expected} ≤ ${maxQueueMs}`);
              return;
            }
            assert.ok(wait >= 0 && wait <= maxQueueMs, `wait ${wait}`);
            assert.ok(expected <= maxQueueMs + tolerance, `admitted with a wait of ${expected} > ${maxQueueMs}`);
            assert.ok(Math.abs(wait - expected) < tolerance, `wait ${wait}, expected ${expected}`);
            // Differences of the limiter's time (forward steps) plus the waits: no epoch rounding.
            const start = v + wait;
            assert.ok(start - lastStart >= interval - tolerance, `starts ${lastStart} and ${start} closer than ${interval}`);
            lastStart = start;
            nextFree = start + interval;
          });
        },
      ),
      { numRuns: 300 },
    );
  });
});
