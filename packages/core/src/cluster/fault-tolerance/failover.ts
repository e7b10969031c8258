import type { Call, Invoke, Reply } from "../../call/call.js";
import { tickNow } from "../../timing/tick-clock.js";
import { badOption, FarcallError } from "../../errors/farcall-error.js";
import { type ClusterView, type FaultTolerance, type FinishingTolerance, settlesWith } from "./fault-tolerance.js";

/** Options of {@link failover}. */
export interface FailoverOptions {
  /**
   * Extra attempts after the first, each on a provider not tried yet. Default 2; an integer in
   * 0..10. Whatever it says, a call makes at most 5 attempts in all (the first included), as
   * gRPC's retry policy caps them (A6).
   */
  readonly retries?: number;
  /**
   * A retry budget shared by the calls of one service (any object with these two methods):
   * each call deposits once, before its first attempt; each retry withdraws first and is not made
   * when refused. `now` in epoch milliseconds. Default: none (retries bounded by `retries` only).
   */
  readonly budget?: { deposit(now: number): void; tryWithdraw(now: number): boolean };
  /** The clock for deadlines and the budget, in epoch milliseconds. Default `tickNow` (`Date.now()` read once per burst of synchronous work). */
  readonly now?: () => number;
}

/** Most attempts of one call, the first included, whatever `retries` says (as gRPC's retry policy, A6). */
const attemptCap = 5;

/**
 * `details.reason` of the errors of the consumer's own protection (breakers, rate and concurrency
 * limits, the adaptive throttle): with `sent: false`, another provider would get the same answer.
 */
const localRefusals: ReadonlySet<unknown> = new Set(["circuit_open", "rate_limited", "concurrency_limited", "throttled"]);

/**
 * Retries a failed attempt on another provider when it is safe: the error is `unavailable` (the
 * provider went away or is closing) or `resource_exhausted`, and either the method is idempotent
 * or the request never left this process (`sent: false`). `deadline_exceeded` is never retried
 * (the call's one deadline has passed), nor `application` or any other code. Nor is an error of
 * the consumer's own protection (`sent: false` and `details.reason` `circuit_open`,
 * `rate_limited`, `concurrency_limited` or `throttled`: every provider would get the same answer),
 * nor one whose `details.retryAfterMs` is negative (the provider's pushback: do not retry).
 * Providers already tried (`details.address` of their errors) are excluded, and an error that names
 * no provider (no provider to try at all), or one after which no untried provider is left, is
 * thrown as is rather than retried; the original deadline
 * is never extended; an aborted call is not retried. At most 5 attempts in all.
 *
 * With a `budget`, each call deposits once and each retry withdraws first; when the budget refuses,
 * the attempt's error is thrown as a copy with `details.retryBudgetExhausted: true`. Otherwise the
 * last attempt's error is thrown as is.
 *
 * @throws `FarcallError` `invalid_argument` (reason `bad_option`) at construction for a bad option.
 */
export function failover(options: FailoverOptions = {}): FaultTolerance {
  const retries = options.retries ?? 2;
  if (!Number.isInteger(retries) || retries < 0 || retries > 10) badOption("retries", "must be an integer in 0..10");
  const budget = options.budget;
  if (budget !== undefined && (typeof budget.deposit !== "function" || typeof budget.tryWithdraw !== "function")) {
    badOption("budget", "must have deposit(now) and tryWithdraw(now) functions");
  }
  const now = options.now ?? tickNow;
  if (typeof now !== "function") badOption("now", "must be a function returning epoch milliseconds");
  const lastRetry = Math.min(retries, attemptCap - 1);
  /** The next attempt of `call` after `error`, or undefined when the error is final. */
  const retryOf = (error: unknown, call: Call, cluster: ClusterView | undefined): Call | undefined => {
    if (!(error instanceof FarcallError) || call.attempt >= lastRetry || !retryable(error, call, now)) return undefined;
    const tried = error.details["address"];
    // Nothing tried (no provider at all) or nowhere left to go: a retry would only replace this
    // error with "no available provider" (and spend budget).
    if (typeof tried !== "string") return undefined;
    const next: Call = { ...call, attempt: call.attempt + 1, tried: [...call.tried, tried] };
    if (cluster !== undefined && cluster.endpoints(next).length === 0) return undefined;
    return next;
  };
  // No async function here: the common case (first attempt succeeds) costs one derived promise,
  // whose reactions are also the caller's `finish` and `fail` (see `settlesWith`).
  const run = <R>(call: Call, attempt: Invoke, cluster: ClusterView | undefined, finish: ((reply: Reply) => R) | undefined, fail: (error: unknown) => R): Promise<R> =>
    attemptOf(attempt, call).then(finish as (reply: Reply) => R, (error: unknown): R | Promise<R> => {
      // Whatever throws while deciding (a router, a budget or clock given in code) still ends in
      // `fail`, once: `fail` itself rethrows, so it is called outside the try.
      let final: unknown = error;
      try {
        const next = retryOf(error, call, cluster);
        if (next !== undefined) {
          if (budget === undefined || budget.tryWithdraw(now())) return run(next, attempt, cluster, finish, fail);
          final = withDetails(error as FarcallError, { retryBudgetExhausted: true });
        }
      } catch (thrown) {
        final = thrown;
      }
      return fail(final);
    });
  const finishing: FinishingTolerance =
    budget === undefined
      ? (call, attempt, cluster, finish, fail) => run(call, attempt, cluster, finish, fail ?? rethrow)
      : (call, attempt, cluster, finish, fail) => {
          budget.deposit(now());
          return run(call, attempt, cluster, finish, fail ?? rethrow);
        };
  const strategy: FaultTolerance = (call, attempt, cluster) => finishing<Reply>(call, attempt, cluster, undefined, undefined);
  return Object.assign(strategy, { [settlesWith]: finishing });
}

/** `attempt(call)`, with a synchronous throw (an attempt interceptor's) turned into a rejection. */
function attemptOf(attempt: Invoke, call: Call): Promise<Reply> {
  try {
    return attempt(call);
  } catch (error) {
    return Promise.reject(error);
  }
}

function rethrow(error: unknown): never {
  throw error;
}

function retryable(error: FarcallError, call: Call, now: () => number): boolean {
  if (call.signal?.aborted) return false;
  if (now() >= call.deadline) return false;
  if (!error.sent && localRefusals.has(error.details["reason"])) return false;
  const retryAfterMs = error.details["retryAfterMs"];
  if (typeof retryAfterMs === "number" && retryAfterMs < 0) return false;
  switch (error.code) {
    case "unavailable":
    case "resource_exhausted":
      return call.ref.idempotent || !error.sent;
    default:
      return false;
  }
}

/**
 * A copy of `error` with `extra` merged into its details, keeping code, message, `sent`,
 * metadata, reason, cause and stack. An error may be shared (a caller, a log, another strategy
 * hold it), so a strategy never mutates one it did not create.
 *
 * @internal Shared by the fault-tolerance strategies; a candidate for a `FarcallError` method.
 */
export function withDetails(error: FarcallError, extra: Readonly<Record<string, unknown>>): FarcallError {
  const copy = new FarcallError(error.code, error.message, {
    details: { ...error.details, ...extra },
    metadata: error.metadata,
    sent: error.sent,
    ...(error.cause === undefined ? {} : { cause: error.cause }),
    ...(error.reason === undefined ? {} : { reason: error.reason }),
  });
  if (error.stack !== undefined) copy.stack = error.stack;
  return copy;
}

/** Fails on the first error: for non-idempotent writes that must not be retried at all. */
export function failfast(): FaultTolerance {
  return (call: Call, attempt: Invoke) => attempt(call);
}
