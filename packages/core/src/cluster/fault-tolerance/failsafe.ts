import type { Call, Invoke, Reply } from "../../call/call.js";
import { badOption, FarcallError } from "../../errors/farcall-error.js";
import type { FaultTolerance } from "./fault-tolerance.js";

/** Options of {@link failsafe}. */
export interface FailsafeOptions {
  /**
   * Told of every failure swallowed, with the error (normalised by `FarcallError.from`) and the
   * call. Whatever it throws is swallowed too. Default: none.
   */
  readonly onError?: (error: FarcallError, call: Call) => void;
}

/** What a swallowed failure resolves to. Frozen and shared: a reply is never mutated. */
const noReply: Reply = Object.freeze({ value: undefined, metadata: undefined });

/**
 * Makes one attempt and swallows its failure, whatever the code: the call resolves with
 * `{ value: undefined, metadata: undefined }` and `onError` is told. For logging and auditing
 * calls whose failure must not break the caller. Never retries, so any method may use it.
 *
 * @throws `FarcallError` `invalid_argument` (reason `bad_option`) at construction for a bad option;
 *   the strategy itself never rejects.
 */
export function failsafe(options: FailsafeOptions = {}): FaultTolerance {
  const onError = options.onError;
  if (onError !== undefined && typeof onError !== "function") badOption("onError", "must be a function");
  return (call: Call, attempt: Invoke): Promise<Reply> => {
    let reply: Promise<Reply>;
    try {
      reply = attempt(call);
    } catch (error) {
      // An attempt should reject, not throw; failsafe keeps its promise either way.
      reply = Promise.reject(error);
    }
    return reply.then(undefined, (error: unknown) => {
      if (onError !== undefined) {
        try {
          onError(FarcallError.from(error), call);
        } catch {
          // The caller must not see a failure, not even the observer's.
        }
      }
      return noReply;
    });
  };
}
