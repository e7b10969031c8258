import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { FarcallError } from "../errors/farcall-error.js";
import { createConcurrencyLimiter } from "./concurrency-limiter.js";

describe("createConcurrencyLimiter", () => {
  it("admits up to `limit` at once and again after a release", () => {
    const limiter = createConcurrencyLimiter(2);
    assert.equal(limiter.limit, 2);
    assert.equal(limiter.running, 0);
    assert.equal(limiter.tryAcquire(), true);
    assert.equal(limiter.tryAcquire(), true);
    assert.equal(limiter.running, 2);
    assert.equal(limiter.tryAcquire(), false);
    assert.equal(limiter.running, 2, "a refusal counts nothing");
    limiter.release();
    assert.equal(limiter.running, 1);
    assert.equal(limiter.tryAcquire(), true);
    assert.equal(limiter.tryAcquire(), false);
  });

  it("a release with nothing running is a no-op: running never goes negative", () => {
    const limiter = createConcurrencyLimiter(1);
    limiter.release();
    limiter.release();
    assert.equal(limiter.running, 0);
    assert.equal(limiter.tryAcquire(), true);
    assert.equal(limiter.tryAcquire(), false, "the extra releases did not raise the limit");
  });

  it("refuses a limit that is not an integer in 1..1e6 with bad_option maxConcurrent", () => {
    for (const limit of [0, -1, 1.5, 1_000_001, Number.NaN, Number.POSITIVE_INFINITY, "5", null, undefined]) {
      assert.throws(
        () => createConcurrencyLimiter(limit as number),
        (error: unknown) =>
          error instanceof FarcallError && error.code === "invalid_argument" && error.reason === "bad_option" && error.details.option === "maxConcurrent",
        String(limit),
      );
    }
    assert.equal(createConcurrencyLimiter(1_000_000).limit, 1_000_000);
  });

  it("matches a counter model over any sequence of acquires and releases (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.array(fc.boolean(), { maxLength: 200, size: "max" }), (limit, ops) => {
        const limiter = createConcurrencyLimiter(limit);
        let running = 0;
        for (const acquire of ops) {
          if (acquire) {
            const admitted = running < limit;
            assert.equal(limiter.tryAcquire(), admitted);
            if (admitted) running++;
          } else {
            limiter.release();
            running = Math.max(0, running - 1);
          }
          assert.equal(limiter.running, running);
          assert.ok(limiter.running >= 0 && limiter.running <= limit);
        }
      }),
    );
  });
});
