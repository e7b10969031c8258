import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Call, Invoke, Reply } from "../../call/call.js";
import { FarcallError } from "../../errors/farcall-error.js";
import { type FailbackOptions, type FailbackTimers, failback } from "./failback.js";
import type { ClusterView } from "./fault-tolerance.js";

const cluster: ClusterView = { endpoints: () => [], pick: () => undefined };
const empty: Reply = { value: undefined, metadata: undefined };

function makeCall(idempotent: boolean, overrides: Partial<Call> = {}): Call {
  return {
    ref: { service: "s", version: "1", group: "", method: "notify", idempotent, oneway: false },
    args: [],
    metadata: {},
    deadline: Infinity,
    signal: undefined,
    attempt: 0,
    tried: [],
    ...overrides,
  };
}

/** Settles the promises chained on what has settled so far (no time passes for the fake clock). */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A fake clock and fake timers: time moves only through advance(). */
class FakeTime {
  now = 0;
  readonly pending = new Map<number, { at: number; callback: () => void; unref: boolean }>();
  #next = 1;
  readonly timers: FailbackTimers = {
    setTimeout: (callback, delayMs) => {
      const id = this.#next++;
      const timer = { at: this.now + delayMs, callback, unref: false };
      this.pending.set(id, timer);
      return { id, unref: () => void (timer.unref = true) };
    },
    clearTimeout: (handle) => void this.pending.delete((handle as { id: number }).id),
  };

  options(extra: FailbackOptions = {}): FailbackOptions {
    return { timers: this.timers, now: () => this.now, ...extra };
  }

  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    for (;;) {
      const due = [...this.pending].filter(([, t]) => t.at <= end).sort(([, a], [, b]) => a.at - b.at)[0];
      if (due === undefined) break;
      const [id, timer] = due;
      this.pending.delete(id);
      this.now = timer.at;
      timer.callback();
      await flush();
    }
    this.now = end;
    await flush();
  }
}

/** An attempt answering each call with the next of `outcomes` (an error rejects; "hang" waits for abort); then succeeds. */
function scripted(outcomes: readonly (FarcallError | "hang")[]): { attempt: Invoke; calls: Call[] } {
  const calls: Call[] = [];
  const attempt: Invoke = (call) => {
    const outcome = outcomes[calls.push(call) - 1];
    if (outcome === undefined) return Promise.resolve({ value: "ok", metadata: undefined });
    if (outcome === "hang") {
      return new Promise((_, reject) => call.signal?.addEventListener("abort", () => reject(new FarcallError("canceled", "aborted"))));
    }
    return Promise.reject(outcome);
  };
  return { attempt, calls };
}

const unavailable = (sent: boolean, n = 1) => new FarcallError("unavailable", `failure ${n}`, { sent });

describe("failback", () => {
  it("answers a failure at once with an empty reply and retries it in the background after intervalMs", async () => {
    const time = new FakeTime();
    const strategy = failback(time.options({ intervalMs: 5000 }));
    const caller = new AbortController();
    const call = makeCall(true, { deadline: 2000, signal: caller.signal, tried: ["10.0.0.9:80"], target: "10.0.0.1:80" });
    const { attempt, calls } = scripted([unavailable(true)]);
    assert.deepEqual(await strategy(call, attempt, cluster), empty);
    assert.equal(strategy.queued, 1);
    assert.deepEqual([...time.pending.values()].map((t) => [t.at, t.unref]), [[5000, true]], "one unref'd timer");
    await time.advance(4999);
    assert.equal(calls.length, 1);
    await time.advance(1);
    assert.equal(calls.length, 2);
    const retry = calls[1] ?? assert.fail();
    assert.equal(retry.attempt, 1);
    assert.equal(retry.deadline, 7000, "a fresh deadline as long as the original timeout");
    assert.notEqual(retry.signal, caller.signal, "the caller's signal no longer governs it");
    assert.deepEqual(retry.tried, ["10.0.0.9:80"]);
    assert.equal(retry.target, "10.0.0.1:80");
    assert.deepEqual(retry.args, call.args);
    assert.equal(strategy.queued, 0);
    assert.equal(time.pending.size, 0, "no timer left once the queue is empty");
    strategy.close();
  });

  it("keeps an Infinity deadline Infinity", async () => {
    const time = new FakeTime();
    const strategy = failback(time.options({ intervalMs: 10 }));
    const { attempt, calls } = scripted([unavailable(true)]);
    await strategy(makeCall(true), attempt, cluster);
    await time.advance(10);
    assert.equal(calls[1]?.deadline, Infinity);
    strategy.close();
  });

  it("queues a non-idempotent call only when the request never left; throws it as is otherwise", async () => {
    const time = new FakeTime();
    const strategy = failback(time.options());
    const sent = unavailable(true);
    await assert.rejects(strategy(makeCall(false), scripted([sent]).attempt, cluster), (e) => e === sent);
    assert.equal(strategy.queued, 0);
    assert.deepEqual(await strategy(makeCall(false), scripted([unavailable(false)]).attempt, cluster), empty);
    assert.equal(strategy.queued, 1);
    strategy.close();
  });

  it("throws application and canceled errors as is: an answer, and the caller's own abort", async () => {
    const time = new FakeTime();
    const strategy = failback(time.options());
    for (const code of ["application", "canceled"] as const) {
      const error = new FarcallError(code, code, { sent: false });
      await assert.rejects(strategy(makeCall(true), scripted([error]).attempt, cluster), (e) => e === error);
    }
    assert.equal(strategy.queued, 0);
    strategy.close();
  });

  it("drops a call after maxAttempts failed background attempts, telling onDrop the last error and the caller's call", async () => {
    const time = new FakeTime();
    const dropped: [FarcallError, Call][] = [];
    const strategy = failback(time.options({ intervalMs: 100, maxAttempts: 3, onDrop: (e, c) => void dropped.push([e, c]) }));
    const errors = [1, 2, 3, 4].map((n) => unavailable(true, n));
    const { attempt, calls } = scripted(errors);
    const call = makeCall(true, { deadline: 50 });
    await strategy(call, attempt, cluster);
    await time.advance(1000);
    assert.deepEqual(calls.map((c) => c.attempt), [0, 1, 2, 3]);
    assert.deepEqual(calls.slice(1).map((c) => c.deadline), [150, 250, 350]);
    assert.equal(dropped.length, 1);
    assert.equal(dropped[0]?.[0], errors[3]);
    assert.equal(dropped[0]?.[1], call);
    assert.equal(strategy.queued, 0);
    assert.equal(time.pending.size, 0);
    strategy.close();
    assert.equal(dropped.length, 1, "close drops nothing more");
  });

  it("runs a retry only when due: at least intervalMs after its failure, with one timer for the queue", async () => {
    const time = new FakeTime();
    const strategy = failback(time.options({ intervalMs: 100 }));
    const first = scripted([unavailable(true)]);
    const second = scripted([unavailable(true)]);
    await strategy(makeCall(true), first.attempt, cluster);
    await time.advance(60);
    await strategy(makeCall(true), second.attempt, cluster);
    assert.equal(time.pending.size, 1);
    assert.equal(strategy.queued, 2);
    await time.advance(40); // t = 100: the first is due, the second (due at 160) waits.
    assert.deepEqual([first.calls.length, second.calls.length], [2, 1]);
    assert.equal(time.pending.size, 1);
    await time.advance(100); // t = 200
    assert.deepEqual([first.calls.length, second.calls.length], [2, 2]);
    assert.equal(strategy.queued, 0);
    strategy.close();
  });

  it("bounds the queue: when full, the new failure is dropped (onDrop) and still answered with an empty reply", async () => {
    const time = new FakeTime();
    const dropped: FarcallError[] = [];
    const strategy = failback(
      time.options({
        queueSize: 2,
        onDrop: (e) => {
          dropped.push(e);
          throw new Error("a broken observer is swallowed");
        },
      }),
    );
    for (let n = 1; n <= 3; n++) assert.deepEqual(await strategy(makeCall(true), scripted([unavailable(true, n)]).attempt, cluster), empty);
    assert.equal(strategy.queued, 2);
    assert.deepEqual(dropped.map((e) => e.message), ["failure 3"]);
    strategy.close();
    assert.deepEqual(dropped.map((e) => e.message), ["failure 3", "failure 1", "failure 2"]);
  });

  it("close() stops the timer, aborts the retry running, drops the queue once, and lets later failures through", async () => {
    const time = new FakeTime();
    const dropped: string[] = [];
    const strategy = failback(time.options({ intervalMs: 100, onDrop: (e) => void dropped.push(e.message) }));
    const hanging = scripted([unavailable(true, 1), "hang"]);
    const waiting = scripted([unavailable(true, 2)]);
    await strategy(makeCall(true), hanging.attempt, cluster);
    await time.advance(50);
    await strategy(makeCall(true), waiting.attempt, cluster);
    await time.advance(50); // t = 100: the first retry starts and hangs.
    assert.equal(hanging.calls.length, 2);
    assert.equal(strategy.queued, 2, "a call whose retry runs still counts");
    strategy.close();
    assert.equal(hanging.calls[1]?.signal?.aborted, true);
    assert.equal(time.pending.size, 0);
    assert.equal(strategy.queued, 0);
    strategy.close();
    await time.advance(1000);
    assert.deepEqual(dropped, ["failure 1", "failure 2"], "once each, not again for the aborted retry");
    assert.equal(waiting.calls.length, 1);
    const later = unavailable(false, 3);
    await assert.rejects(strategy(makeCall(true), scripted([later]).attempt, cluster), (e) => e === later);
    assert.deepEqual(await strategy(makeCall(true), scripted([]).attempt, cluster), { value: "ok", metadata: undefined });
  });

  it("rejects bad options with bad_option", () => {
    const bad = (options: FailbackOptions, option: string) =>
      assert.throws(() => failback(options), (e) => e instanceof FarcallError && e.reason === "bad_option" && e.details["option"] === option);
    bad({ queueSize: 0 }, "queueSize");
    bad({ queueSize: 100_001 }, "queueSize");
    bad({ intervalMs: 0 }, "intervalMs");
    bad({ intervalMs: 1.5 }, "intervalMs");
    bad({ maxAttempts: 0 }, "maxAttempts");
    bad({ onDrop: 1 as never }, "onDrop");
    bad({ timers: {} as never }, "timers");
    bad({ now: "now" as never }, "now");
  });
});
