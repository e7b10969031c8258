import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { FarcallError } from "../errors/farcall-error.js";
import { checkRetryBudgetOptions, RetryBudget } from "./retry-budget.js";

function assertBadOption(fn: () => unknown, option: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof FarcallError, String(error));
    assert.equal(error.code, "invalid_argument");
    assert.equal(error.reason, "bad_option");
    assert.equal(error.details.option, option);
    return true;
  });
}

/** `n` withdrawals at `now`; how many were allowed. */
function withdraw(budget: RetryBudget, now: number, n: number): number {
  let allowed = 0;
  for (let i = 0; i < n; i++) if (budget.tryWithdraw(now)) allowed++;
  return allowed;
}

/** How many of `sorted` (ascending) lie in [lo, hi]. */
function countIn(sorted: readonly number[], lo: number, hi: number): number {
  const firstAtLeast = (x: number): number => {
    let a = 0;
    let b = sorted.length;
    while (a < b) {
      const m = (a + b) >>> 1;
      if ((sorted[m] as number) < x) a = m + 1;
      else b = m;
    }
    return a;
  };
  return firstAtLeast(hi + 1) - firstAtLeast(lo);
}

function deposit(budget: RetryBudget, now: number, n: number): void {
  for (let i = 0; i < n; i++) budget.deposit(now);
}

describe("checkRetryBudgetOptions", () => {
  it("fills the defaults and freezes the copy", () => {
    const checked = checkRetryBudgetOptions({}, "retryBudget");
    assert.deepEqual(checked, { percent: 0.2, minPerSecond: 10, ttlMs: 10_000 });
    assert.ok(Object.isFrozen(checked));
    assert.deepEqual(checkRetryBudgetOptions(JSON.parse('{"percent":0,"minPerSecond":0,"ttlMs":1}'), "r"), { percent: 0, minPerSecond: 0, ttlMs: 1 });
    assert.deepEqual(checkRetryBudgetOptions({ percent: 1, minPerSecond: 1e7, ttlMs: 3_600_000 }, "r"), { percent: 1, minPerSecond: 1e7, ttlMs: 3_600_000 });
  });

  it("refuses non-objects, unknown fields and out-of-range values, naming the option", () => {
    for (const value of [null, 0.2, "0.2", [], undefined]) assertBadOption(() => checkRetryBudgetOptions(value, "retryBudget"), "retryBudget");
    assertBadOption(() => checkRetryBudgetOptions({ ratio: 0.2 }, "retryBudget"), "retryBudget.ratio");
    const bad: Record<string, readonly unknown[]> = {
      percent: [-0.01, 1.01, Number.NaN, "0.2", null],
      minPerSecond: [-1, 1e7 + 1, Number.POSITIVE_INFINITY, "10"],
      ttlMs: [0, 0.5, 3_600_001, Number.NaN, "10000"],
    };
    for (const [field, values] of Object.entries(bad)) {
      for (const v of values) assertBadOption(() => checkRetryBudgetOptions({ [field]: v }, "retryBudget"), `retryBudget.${field}`);
    }
    assertBadOption(() => new RetryBudget({ percent: 2 }), "retryBudget.percent");
  });
});

describe("RetryBudget", () => {
  it("with no calls allows the floor, minPerSecond × ttlMs / 1000, and counts the refusals", () => {
    const budget = new RetryBudget({ percent: 0, minPerSecond: 1, ttlMs: 10_000 });
    assert.equal(budget.balance(0), 10);
    assert.equal(withdraw(budget, 0, 15), 10);
    assert.equal(budget.exhausted, 5);
    assert.equal(budget.balance(0), 0);
    assert.equal(withdraw(budget, 9999, 1), 0, "the retries of sub-bucket [0, 1000) still count");
    assert.equal(withdraw(budget, 10_000, 15), 10, "a ttl later they have left");
    assert.equal(budget.exhausted, 11);
  });

  it("allows percent of the deposits of the last ttl, or the floor when that is more (the defaults: 20 %, at least 10 per second)", () => {
    const budget = new RetryBudget({ percent: 0.5, minPerSecond: 0 });
    deposit(budget, 0, 4);
    assert.equal(budget.balance(0), 2);
    assert.equal(withdraw(budget, 0, 5), 2);
    deposit(budget, 5000, 2);
    assert.equal(withdraw(budget, 5000, 5), 1, "6 deposits: 3 in all");
    assert.equal(withdraw(budget, 10_000, 5), 0, "the 4 deposits at 0 left with the 2 retries: 2 × 0.5 = 1 = 1 retry of 5000");
    assert.equal(budget.balance(10_000), 0);
    const defaults = new RetryBudget();
    deposit(defaults, 0, 1000);
    assert.equal(withdraw(defaults, 0, 1000), 200, "0.2 × 1000, more than the floor of 10 × 10: the floor adds nothing");
    const quiet = new RetryBudget();
    deposit(quiet, 0, 100);
    assert.equal(withdraw(quiet, 0, 1000), 100, "0.2 × 100 = 20 is under the floor of 10 × 10");
    const mixed = new RetryBudget({ percent: 0.5, minPerSecond: 1, ttlMs: 10_000 });
    deposit(mixed, 0, 30);
    assert.equal(withdraw(mixed, 0, 100), 15, "max(0.5 × 30, 1 × 10)");
  });

  it("allows a retry while retries < allowance: a fractional allowance is rounded up", () => {
    const budget = new RetryBudget({ percent: 0.25, minPerSecond: 0 });
    deposit(budget, 0, 10);
    assert.equal(budget.balance(0), 2.5);
    assert.equal(withdraw(budget, 0, 5), 3);
    assert.equal(budget.balance(0), -0.5);
  });

  it("balance(now) reads the window at now without moving the clock", () => {
    const budget = new RetryBudget({ percent: 1, minPerSecond: 0, ttlMs: 1000 });
    deposit(budget, 0, 3);
    assert.equal(budget.balance(1000), 0, "at 1000 the deposits have left");
    assert.equal(budget.balance(500), 3);
    assert.equal(withdraw(budget, 500, 5), 3, "reading at 1000 did not expire them for a call at 500");
    deposit(budget, 500, 2);
    assert.equal(budget.balance(1099), -1, "the 3 deposits of sub-bucket [0, 100) left at 1000; 2 deposits and 3 retries of 500 remain");
    assert.equal(budget.balance(1500), 0, "at 1500 those of 500 left too");
  });

  it("a clock stepped back neither empties nor freezes the window", () => {
    const budget = new RetryBudget({ percent: 0, minPerSecond: 1, ttlMs: 2000 });
    assert.equal(withdraw(budget, 1_000_000, 5), 2);
    assert.equal(withdraw(budget, 0, 1), 0, "time stood still at the step");
    assert.equal(withdraw(budget, 1999, 1), 0);
    assert.equal(withdraw(budget, 2000, 5), 2, "a ttl of forward time later");
    assert.equal(withdraw(budget, Number.NaN, 1), 0, "a non-finite now: no time passes, no throw");
  });

  it("allows at most ⌈max(percent × D, floor)⌉ retries in any 10 consecutive sub-buckets, D the deposits of those and the 9 before; refuses only when the last ttl is spent (property)", () => {
    const event = fc.record({
      step: fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 0, max: 200 }) }, fc.integer({ min: 200, max: 3000 }), fc.integer({ min: -2000, max: -1 })),
      deposit: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.constantFrom(0, 0.1, 0.2, 0.5, 1),
        fc.constantFrom(0, 0.1, 1, 3),
        fc.integer({ min: 10, max: 3000 }),
        fc.integer({ min: 0, max: 2e12 }),
        fc.array(event, { maxLength: 300, size: "max" }),
        (percent, minPerSecond, ttlMs, start, events) => {
          const budget = new RetryBudget({ percent, minPerSecond, ttlMs });
          const floor = (minPerSecond * ttlMs) / 1000;
          const bucketMs = ttlMs / 10;
          const deposits: number[] = [];
          const retries: number[] = [];
          let now = start;
          let own = start;
          let refused = 0;
          events.forEach((e, i) => {
            if (i > 0) {
              now += e.step;
              own += Math.max(0, e.step);
            }
            const bucket = Math.floor(own / bucketMs);
            if (e.deposit) {
              budget.deposit(now);
              deposits.push(bucket);
              return;
            }
            const d = deposits.filter((b) => b > bucket - 10).length;
            const r = retries.filter((b) => b > bucket - 10).length;
            assert.equal(budget.balance(now), Math.max(percent * d, floor) - r);
            const allowed = budget.tryWithdraw(now);
            assert.equal(allowed, r < Math.max(percent * d, floor), `${r} retries, ${d} deposits in the window`);
            if (allowed) retries.push(bucket);
            else refused++;
          });
          assert.equal(budget.exhausted, refused);
          // Every window of 10 sub-buckets k..k+9 holding a retry has k within 9 of a retry's sub-bucket.
          for (const b of new Set(retries)) {
            for (let k = b - 9; k <= b; k++) {
              const r = countIn(retries, k, k + 9);
              const d = countIn(deposits, k - 9, k + 9);
              assert.ok(r - 1 < Math.max(percent * d, floor), `${r} retries in sub-buckets ${k}..${k + 9} with ${d} deposits`);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
