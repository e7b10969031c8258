import type { Call, Invoke, Reply } from "../../call/call.js";
import { badOption, FarcallError } from "../../errors/farcall-error.js";
import type { FaultTolerance } from "./fault-tolerance.js";

/** The timer functions {@link failback} uses; replaced by fake ones in tests. */
export interface FailbackTimers {
  /** Runs `callback` once after `delayMs` milliseconds; returns a handle (unref'd when it has `unref`). */
  setTimeout(callback: () => void, delayMs: number): unknown;
  /** Cancels a handle returned by `setTimeout`. */
  clearTimeout(handle: unknown): void;
}

/** Options of {@link failback}. */
export interface FailbackOptions {
  /** Most calls waiting for (or running) a background retry. Default 1000; an integer in 1..100000. */
  readonly queueSize?: number;
  /**
   * Milliseconds between the background runs, and least time between a failure and its retry
   * (a retry runs on the first run at least `intervalMs` after the failure). Default 5000; an
   * integer in 1..3600000.
   */
  readonly intervalMs?: number;
  /** Background attempts of one call before it is dropped. Default 3; an integer in 1..100. */
  readonly maxAttempts?: number;
  /**
   * Told of every call given up: the queue was full, its background attempts were used up, or the
   * strategy was closed. Gets the call's last error and the call as the caller made it. Whatever
   * it throws is swallowed. Default: none.
   */
  readonly onDrop?: (error: FarcallError, call: Call) => void;
  /** Default: the global `setTimeout` / `clearTimeout`. */
  readonly timers?: FailbackTimers;
  /** The clock for deadlines and due times, in epoch milliseconds. Default `Date.now`. */
  readonly now?: () => number;
}

/** A {@link failback} strategy: a fault tolerance owning a retry queue and its timer. */
export interface Failback extends FaultTolerance {
  /** Stops the timer, aborts the background attempts running and drops the queue (`onDrop` for each). Idempotent. */
  close(): void;
  /** Calls waiting for, or running, a background retry. */
  readonly queued: number;
}

interface Entry {
  /** The call as the caller made it. */
  readonly call: Call;
  readonly attempt: Invoke;
  /** The call's original timeout length in milliseconds: deadline − time of the first attempt. */
  readonly timeoutMs: number;
  /** Background attempts made so far. */
  attempts: number;
  /** Epoch milliseconds from which the next background attempt may run. */
  dueAt: number;
  /** Aborts the background attempt running; undefined when none runs. */
  running: AbortController | undefined;
  lastError: FarcallError;
}

const noReply: Reply = Object.freeze({ value: undefined, metadata: undefined });

const systemTimers: FailbackTimers = Object.freeze({
  setTimeout: (callback: () => void, delayMs: number): unknown => setTimeout(callback, delayMs),
  clearTimeout: (handle: unknown): void => clearTimeout(handle as ReturnType<typeof setTimeout>),
});

/**
 * Makes one attempt; when it fails, queues the call for a retry in the background and resolves
 * at once with `{ value: undefined, metadata: undefined }`. For notifications that must arrive
 * eventually but need no answer. A call is queued only when running it again is safe: the method
 * is idempotent or the request never left this process (`sent: false`); any other failure is
 * thrown as is, as are `application` errors (the provider ran the method and answered: an
 * outcome, not a failure to deliver) and `canceled` (the caller gave up).
 *
 * One unref'd timer serves the whole queue, firing every `intervalMs` while anything is queued;
 * each run starts the retries that are due. A background attempt is a copy of the call with
 * `attempt` incremented, a fresh deadline as long as the original timeout (`Infinity` stays
 * `Infinity`) and a signal of the strategy's own (the caller is gone: the caller's signal no
 * longer governs the call; `close()` aborts it); `tried` is the caller's, so a provider that
 * failed may serve a later retry once it is back. After `maxAttempts` failed background
 * attempts, or when the queue is full at the failure, the call is dropped (`onDrop`).
 *
 * Lifecycle: `close()` it when done with it (the application closes the queues it made for
 * `faultTolerance: "failback"`, one per method, in `app.close()`); failures after that are
 * thrown as is.
 *
 * @throws `FarcallError` `invalid_argument` (reason `bad_option`) at construction for a bad option.
 */
export function failback(options: FailbackOptions = {}): Failback {
  const queueSize = integerOption("queueSize", options.queueSize, 1000, 1, 100_000);
  const intervalMs = integerOption("intervalMs", options.intervalMs, 5000, 1, 3_600_000);
  const maxAttempts = integerOption("maxAttempts", options.maxAttempts, 3, 1, 100);
  const onDrop = options.onDrop;
  if (onDrop !== undefined && typeof onDrop !== "function") badOption("onDrop", "must be a function");
  const timers = options.timers ?? systemTimers;
  if (typeof timers.setTimeout !== "function" || typeof timers.clearTimeout !== "function") {
    badOption("timers", "must have setTimeout and clearTimeout functions");
  }
  const now = options.now ?? Date.now;
  if (typeof now !== "function") badOption("now", "must be a function returning epoch milliseconds");

  // Insertion-ordered: older failures are retried first within one run.
  const entries = new Set<Entry>();
  let timer: unknown;
  let armed = false;
  let closed = false;

  const drop = (error: FarcallError, call: Call): void => {
    if (onDrop === undefined) return;
    try {
      onDrop(error, call);
    } catch {
      // An observer's failure must not stop the queue.
    }
  };
  const arm = (): void => {
    if (armed || closed || entries.size === 0) return;
    armed = true;
    timer = timers.setTimeout(run, intervalMs);
    (timer as { unref?: () => void } | undefined)?.unref?.();
  };
  const remove = (entry: Entry): void => {
    entries.delete(entry);
    if (entries.size === 0 && armed) {
      armed = false;
      timers.clearTimeout(timer);
    }
  };
  const retry = (entry: Entry, at: number): void => {
    const controller = new AbortController();
    entry.running = controller;
    entry.attempts++;
    const call: Call = {
      ...entry.call,
      attempt: entry.call.attempt + entry.attempts,
      deadline: at + entry.timeoutMs,
      signal: controller.signal,
    };
    let reply: Promise<Reply>;
    try {
      reply = entry.attempt(call);
    } catch (error) {
      reply = Promise.reject(error);
    }
    reply.then(
      () => {
        if (entries.has(entry)) remove(entry);
      },
      (error: unknown) => {
        if (!entries.has(entry)) return; // dropped by close() meanwhile
        entry.running = undefined;
        entry.lastError = FarcallError.from(error);
        if (entry.attempts >= maxAttempts) {
          remove(entry);
          drop(entry.lastError, entry.call);
          return;
        }
        entry.dueAt = now() + intervalMs;
      },
    );
  };
  function run(): void {
    armed = false;
    const at = now();
    for (const entry of entries) if (entry.running === undefined && entry.dueAt <= at) retry(entry, at);
    arm();
  }

  const strategy = (call: Call, attempt: Invoke): Promise<Reply> => {
    const startedAt = now();
    return attempt(call).then(undefined, (error: unknown) => {
      if (closed) throw error;
      const failure = FarcallError.from(error);
      if (failure.code === "application" || failure.code === "canceled") throw error;
      // Never risk running a non-idempotent call twice.
      if (!call.ref.idempotent && failure.sent) throw error;
      if (entries.size >= queueSize) {
        drop(failure, call);
        return noReply;
      }
      entries.add({
        call,
        attempt,
        timeoutMs: call.deadline - startedAt,
        attempts: 0,
        dueAt: now() + intervalMs,
        running: undefined,
        lastError: failure,
      });
      arm();
      return noReply;
    });
  };
  const close = (): void => {
    if (closed) return;
    closed = true;
    if (armed) {
      armed = false;
      timers.clearTimeout(timer);
    }
    const dropped = [...entries];
    entries.clear();
    for (const entry of dropped) {
      entry.running?.abort();
      drop(entry.lastError, entry.call);
    }
  };
  return Object.defineProperties(strategy, {
    close: { value: close },
    queued: { get: () => entries.size },
  }) as unknown as Failback; // close and queued are defined just above
}

function integerOption(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min || value > max) badOption(name, `must be an integer in ${min}..${max}`);
  return value;
}
