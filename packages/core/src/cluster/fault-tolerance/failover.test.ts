import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { Call, Invoke, Reply } from "../../call/call.js";
import { type Code, FarcallError } from "../../errors/farcall-error.js";
import { failfast, failover } from "./failover.js";
import { type ClusterView, type FinishingTolerance, settlesWith } from "./fault-tolerance.js";
import { sampleEndpoint } from "../../registry/sample-endpoint.js";

/** A cluster that always has an untried provider left. */
const cluster: ClusterView = { endpoints: () => [sampleEndpoint("s", 9)], pick: () => undefined };

function makeCall(idempotent: boolean, overrides: Partial<Call> = {}): Call {
  return {
    ref: { service: "s", version: "1", group: "", method: "m", idempotent, oneway: false },
    args: [],
    metadata: {},
    deadline: Infinity,
    signal: undefined,
    attempt: 0,
    tried: [],
    ...overrides,
  };
}

interface Failure {
  readonly code?: Code;
  readonly sent?: boolean;
  readonly details?: Record<string, unknown>;
}

function failure(n: number, { code = "unavailable", sent = true, details = {} }: Failure = {}): FarcallError {
  return new FarcallError(code, `attempt ${n} failed`, { sent, details: { address: `10.0.0.${n}:80`, ...details } });
}

/** An attempt that fails with `failures[i]` on its i-th run and succeeds after them; records the calls. */
function scripted(failures: readonly unknown[]): { attempt: Invoke; calls: Call[] } {
  const calls: Call[] = [];
  const attempt: Invoke = (call) => {
    const i = calls.push(call) - 1;
    return i < failures.length ? Promise.reject(failures[i]) : Promise.resolve({ value: `ok ${i}`, metadata: undefined });
  };
  return { attempt, calls };
}

describe("failover", () => {
  it("throws the attempt's own error when no untried provider is left, or when it names no provider", async () => {
    const refusal = failure(1, { code: "resource_exhausted", details: { reason: "rate_limited" } });
    const { attempt, calls } = scripted([refusal]);
    const budget = { deposits: 0, withdrawals: 0, deposit() { this.deposits++; }, tryWithdraw() { this.withdrawals++; return true; } };
    const empty: ClusterView = { endpoints: () => [], pick: () => undefined };
    await assert.rejects(failover({ budget })(makeCall(true), attempt, empty), (e) => e === refusal);
    assert.equal(calls.length, 1);
    assert.equal(budget.withdrawals, 0, "no budget spent on a retry that cannot go anywhere");
    const nowhere = new FarcallError("unavailable", "no available provider", { sent: false });
    const second = scripted([nowhere]);
    await assert.rejects(failover()(makeCall(true), second.attempt, cluster), (e) => e === nowhere);
    assert.equal(second.calls.length, 1);
  });

  it("retries unavailable on another provider: attempt + 1 and the failed address in tried", async () => {
    const { attempt, calls } = scripted([failure(1), failure(2, { code: "resource_exhausted" })]);
    const reply = await failover()(makeCall(true), attempt, cluster);
    assert.deepEqual(reply, { value: "ok 2", metadata: undefined });
    assert.deepEqual(calls.map((c) => c.attempt), [0, 1, 2]);
    assert.deepEqual(calls.map((c) => c.tried), [[], ["10.0.0.1:80"], ["10.0.0.1:80", "10.0.0.2:80"]]);
  });

  it("never retries deadline_exceeded, application or other codes, even for idempotent methods", async () => {
    for (const code of ["deadline_exceeded", "application", "internal", "canceled", "invalid_argument"] as const) {
      const error = failure(1, { code, sent: false });
      const { attempt, calls } = scripted([error]);
      await assert.rejects(failover()(makeCall(true), attempt, cluster), (e) => e === error);
      assert.equal(calls.length, 1, code);
    }
  });

  it("retries a non-idempotent call only when the request never left (sent: false)", async () => {
    const sent = failure(1);
    const run = scripted([sent]);
    await assert.rejects(failover()(makeCall(false), run.attempt, cluster), (e) => e === sent);
    assert.equal(run.calls.length, 1);
    const unsent = scripted([failure(1, { sent: false })]);
    assert.deepEqual(await failover()(makeCall(false), unsent.attempt, cluster), { value: "ok 1", metadata: undefined });
  });

  it("makes at most retries + 1 attempts, and never more than 5 whatever retries says", async () => {
    const many = Array.from({ length: 20 }, (_, i) => failure(i + 1));
    for (const [retries, attempts] of [[0, 1], [1, 2], [4, 5], [5, 5], [10, 5]] as const) {
      const { attempt, calls } = scripted(many);
      await assert.rejects(failover({ retries })(makeCall(true), attempt, cluster), (e) => e === many[attempts - 1]);
      assert.equal(calls.length, attempts, `retries ${retries}`);
    }
  });

  it("does not retry the consumer's own refusals (sent: false with a local protection reason)", async () => {
    for (const reason of ["circuit_open", "rate_limited", "concurrency_limited", "throttled"]) {
      for (const code of ["unavailable", "resource_exhausted"] as const) {
        const { attempt, calls } = scripted([failure(1, { code, sent: false, details: { reason } })]);
        await assert.rejects(failover()(makeCall(true), attempt, cluster));
        assert.equal(calls.length, 1, `${code} ${reason}`);
      }
    }
    // The same reason from a provider (sent) is the provider's answer: another may accept.
    const remote = scripted([failure(1, { code: "resource_exhausted", details: { reason: "rate_limited" } })]);
    await failover()(makeCall(true), remote.attempt, cluster);
    assert.equal(remote.calls.length, 2);
    // Any other reason with sent: false is retried as before.
    const other = scripted([failure(1, { sent: false, details: { reason: "closing" } })]);
    await failover()(makeCall(false), other.attempt, cluster);
    assert.equal(other.calls.length, 2);
  });

  it("does not retry when the provider pushes back with a negative retryAfterMs", async () => {
    const pushback = scripted([failure(1, { code: "resource_exhausted", details: { retryAfterMs: -1 } })]);
    await assert.rejects(failover()(makeCall(true), pushback.attempt, cluster));
    assert.equal(pushback.calls.length, 1);
    for (const retryAfterMs of [0, 100, "-1"]) {
      const run = scripted([failure(1, { code: "resource_exhausted", details: { retryAfterMs } })]);
      await failover()(makeCall(true), run.attempt, cluster);
      assert.equal(run.calls.length, 2, String(retryAfterMs));
    }
  });

  it("does not retry past the deadline (by its clock) nor an aborted call", async () => {
    let now = 1000;
    const attempt: Invoke = () => {
      now += 600;
      return Promise.reject(failure(1));
    };
    const calls: Call[] = [];
    const counted: Invoke = (call) => {
      calls.push(call);
      return attempt(call);
    };
    await assert.rejects(failover({ retries: 10, now: () => now })(makeCall(true, { deadline: 2500 }), counted, cluster));
    assert.equal(calls.length, 3, "1600, 2200 < 2500; 2800 is past it");
    const controller = new AbortController();
    controller.abort();
    const aborted = scripted([failure(1)]);
    await assert.rejects(failover()(makeCall(true, { signal: controller.signal }), aborted.attempt, cluster));
    assert.equal(aborted.calls.length, 1);
  });

  it("throws anything but a FarcallError as is, without retrying", async () => {
    const odd = new Error("not ours");
    const { attempt, calls } = scripted([odd]);
    await assert.rejects(failover()(makeCall(true), attempt, cluster), (e) => e === odd);
    assert.equal(calls.length, 1);
  });

  it("deposits once per call and withdraws before each retry, at the clock's time", async () => {
    const log: string[] = [];
    const budget = {
      deposit: (now: number) => void log.push(`deposit ${now}`),
      tryWithdraw: (now: number) => (log.push(`withdraw ${now}`), true),
    };
    const strategy = failover({ budget, now: () => 7 });
    await strategy(makeCall(true), scripted([failure(1), failure(2)]).attempt, cluster);
    assert.deepEqual(log, ["deposit 7", "withdraw 7", "withdraw 7"]);
    log.length = 0;
    await strategy(makeCall(true), scripted([]).attempt, cluster);
    await assert.rejects(strategy(makeCall(true), scripted([failure(1, { code: "application" })]).attempt, cluster));
    assert.deepEqual(log, ["deposit 7", "deposit 7"], "no withdrawal when no retry would be made");
  });

  it("throws a copy of the error marked retryBudgetExhausted when the budget refuses, leaving the original alone", async () => {
    const cause = new Error("socket closed");
    const original = new FarcallError("unavailable", "provider went away", {
      sent: false,
      details: { address: "10.0.0.1:80", extra: 1 },
      metadata: { k: "v" },
      cause,
    });
    const budget = { deposit: () => {}, tryWithdraw: () => false };
    const { attempt, calls } = scripted([original]);
    const error = await failover({ budget })(makeCall(false), attempt, cluster).then(
      () => assert.fail("resolved"),
      (e: unknown) => e,
    );
    assert.equal(calls.length, 1);
    assert.ok(error instanceof FarcallError);
    assert.notEqual(error, original);
    assert.equal(error.code, "unavailable");
    assert.equal(error.message, "provider went away");
    assert.equal(error.sent, false);
    assert.equal(error.cause, cause);
    assert.deepEqual(error.metadata, { k: "v" });
    assert.deepEqual(error.details, { address: "10.0.0.1:80", extra: 1, retryBudgetExhausted: true });
    assert.equal(error.stack, original.stack);
    assert.deepEqual(original.details, { address: "10.0.0.1:80", extra: 1 });
  });

  it("settlesWith: runs the caller's finish or fail exactly once, whatever throws while deciding on a retry", async () => {
    const variant = (strategy: ReturnType<typeof failover>): FinishingTolerance => (strategy as unknown as { [settlesWith]: FinishingTolerance })[settlesWith];
    const run = async (strategy: ReturnType<typeof failover>, attempt: Invoke, view: ClusterView = cluster): Promise<{ finished: unknown[]; failed: unknown[]; outcome: unknown }> => {
      const finished: unknown[] = [];
      const failed: unknown[] = [];
      const outcome = await variant(strategy)(
        makeCall(true),
        attempt,
        view,
        (reply) => (finished.push(reply.value), `value ${String(reply.value)}`),
        (error) => {
          failed.push(error);
          throw error;
        },
      ).then(
        (value) => value,
        (error: unknown) => error,
      );
      return { finished, failed, outcome };
    };
    const boom = new Error("boom");
    // Success after a retry: finish once, with the retry's reply; the promise takes finish's value.
    let r = await run(failover(), scripted([failure(1)]).attempt);
    assert.deepEqual([r.finished, r.failed, r.outcome], [["ok 1"], [], "value ok 1"]);
    // Final failure, and a retry the budget refuses.
    r = await run(failover({ retries: 1 }), scripted([failure(1), failure(2)]).attempt);
    assert.deepEqual([r.finished.length, r.failed.length, (r.outcome as FarcallError).message], [0, 1, "attempt 2 failed"]);
    r = await run(failover({ budget: { deposit: () => {}, tryWithdraw: () => false } }), scripted([failure(1)]).attempt);
    assert.deepEqual([r.failed.length, (r.outcome as FarcallError).details["retryBudgetExhausted"]], [1, true]);
    // A budget, a clock or the cluster that throws while deciding; an attempt that gives no promise on the retry.
    r = await run(failover({ budget: { deposit: () => {}, tryWithdraw: () => { throw boom; } } }), scripted([failure(1)]).attempt);
    assert.deepEqual([r.finished.length, r.failed, r.outcome], [0, [boom], boom]);
    const throwing: ClusterView = { endpoints: () => { throw boom; }, pick: () => undefined };
    r = await run(failover(), scripted([failure(1)]).attempt, throwing);
    assert.deepEqual([r.finished.length, r.failed, r.outcome], [0, [boom], boom]);
    let attempts = 0;
    const noPromise: Invoke = () => (attempts++ === 0 ? Promise.reject(failure(1)) : ("not a promise" as unknown as Promise<Reply>));
    r = await run(failover(), noPromise);
    assert.equal(r.failed.length, 1);
    assert.ok(r.outcome instanceof TypeError, String(r.outcome));
    // An attempt that throws synchronously is an attempt that failed (and is retried like one).
    attempts = 0;
    const throwsFirst: Invoke = () => {
      if (attempts++ === 0) throw failure(1);
      return Promise.resolve({ value: "second", metadata: undefined });
    };
    r = await run(failover(), throwsFirst);
    assert.deepEqual([r.finished, r.failed.length], [["second"], 0]);
  });

  it("rejects bad options with bad_option", () => {
    const bad = (options: Parameters<typeof failover>[0], option: string) =>
      assert.throws(() => failover(options), (e) => e instanceof FarcallError && e.reason === "bad_option" && e.details["option"] === option);
    bad({ retries: -1 }, "retries");
    bad({ retries: 11 }, "retries");
    bad({ retries: 1.5 }, "retries");
    bad({ budget: {} as never }, "budget");
    bad({ now: 5 as never }, "now");
  });

  it("never re-attempts a non-idempotent call after an error that may have left (property)", async () => {
    const codes = ["unavailable", "resource_exhausted", "deadline_exceeded", "internal", "application"] as const;
    const anError = fc.record({
      code: fc.constantFrom(...codes),
      sent: fc.boolean(),
      reason: fc.constantFrom(undefined, "circuit_open", "throttled", "closing"),
      retryAfterMs: fc.constantFrom(undefined, -1, 0, 50),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(anError, { maxLength: 12 }),
        fc.boolean(),
        fc.integer({ min: 0, max: 10 }),
        fc.integer({ min: 0, max: 12 }),
        async (spec, idempotent, retries, budgetTokens) => {
          const errors = spec.map(({ code, sent, reason, retryAfterMs }, i) =>
            failure(i + 1, { code, sent, details: { ...(reason === undefined ? {} : { reason }), ...(retryAfterMs === undefined ? {} : { retryAfterMs }) } }),
          );
          let tokens = budgetTokens;
          const budget = { deposit: () => {}, tryWithdraw: () => tokens-- > 0 };
          const { attempt, calls } = scripted(errors);
          const outcome = await failover({ retries, budget })(makeCall(idempotent), attempt, cluster).then(
            (reply: Reply) => reply,
            (e: unknown) => e as FarcallError,
          );
          assert.ok(calls.length >= 1);
          assert.ok(calls.length <= Math.min(retries + 1, 5), "attempts capped");
          assert.ok(calls.length - 1 <= budgetTokens, "retries within the budget");
          for (let k = 1; k < calls.length; k++) {
            const before = errors[k - 1] ?? assert.fail();
            if (!idempotent) assert.equal(before.sent, false, `attempt ${k} followed an error that may have left`);
            assert.ok(before.code === "unavailable" || before.code === "resource_exhausted");
            assert.equal(calls[k]?.attempt, k);
          }
          if (calls.length > errors.length) assert.deepEqual(outcome, { value: `ok ${errors.length}`, metadata: undefined });
          else assert.equal((outcome as FarcallError).message, errors[calls.length - 1]?.message);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("failfast", () => {
  it("makes exactly one attempt and passes its error through", async () => {
    const error = failure(1, { sent: false });
    const { attempt, calls } = scripted([error]);
    await assert.rejects(failfast()(makeCall(true), attempt, cluster), (e) => e === error);
    assert.equal(calls.length, 1);
  });
});
