import type { Call, Invoke, Reply } from "../../call/call.js";
import { badOption, FarcallError } from "../../errors/farcall-error.js";
import type { FaultTolerance } from "./fault-tolerance.js";

/** Options of {@link failover}. */
export interface FailoverOptions {
  /** Extra attempts after the first, each on a provider not tried yet. Default 2. */
  readonly retries?: number;
}

/**
 * Retries a failed attempt on another provider when it is safe: the error is `unavailable` (the
 * provider went away or is closing) or `resource_exhausted`, and either the method is idempotent
 * or the request never left this process (`sent: false`). `deadline_exceeded` is never retried
 * (the call's one deadline has passed), nor `application` or any other code. Providers already
 * tried (`details.address` of their errors) are excluded; the original deadline is never extended.
 */
export function failover(options: FailoverOptions = {}): FaultTolerance {
  const retries = options.retries ?? 2;
  if (!Number.isInteger(retries) || retries < 0 || retries > 10) badOption("retries", "must be an integer in 0..10");
  const run = (call: Call, attempt: Invoke): Promise<Reply> =>
    // No async function here: the common case (first attempt succeeds) costs one derived promise.
    attempt(call).then(undefined, (error: unknown) => {
      if (!(error instanceof FarcallError) || call.attempt >= retries || !retryable(error, call)) throw error;
      const tried = error.details["address"];
      const next: Call = { ...call, attempt: call.attempt + 1, tried: typeof tried === "string" ? [...call.tried, tried] : call.tried };
      return run(next, attempt);
    });
  return run;
}

function retryable(error: FarcallError, call: Call): boolean {
  if (call.signal?.aborted) return false;
  if (Date.now() >= call.deadline) return false;
  switch (error.code) {
    case "unavailable":
    case "resource_exhausted":
      return call.ref.idempotent || !error.sent;
    default:
      return false;
  }
}

/** Fails on the first error: for non-idempotent writes that must not be retried at all. */
export function failfast(): FaultTolerance {
  return (call: Call, attempt: Invoke) => attempt(call);
}
