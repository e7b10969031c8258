import type { Call, Invoke, Reply } from "../../call/call.js";
import { FarcallError } from "../../errors/farcall-error.js";
import { withDetails } from "./failover.js";
import type { FaultTolerance } from "./fault-tolerance.js";

/**
 * Runs the call once on every provider at once (each attempt a copy of the call with `target`
 * set) and waits for all: to refresh a cache or reload a setting on every provider. Each provider
 * runs the call at most once, so non-idempotent methods may use it. The call's signal and
 * deadline govern every attempt.
 *
 * Resolves with the reply of the last provider in `cluster.endpoints(call)` order when every
 * attempt succeeded. Otherwise rejects with the error of the first provider in that order that
 * failed, plus `details.failed` (how many failed) and `details.total` (how many were tried).
 * With no provider, one plain attempt reports the no-provider error.
 */
export function broadcast(): FaultTolerance {
  return (call, attempt, cluster) => {
    const endpoints = cluster.endpoints(call);
    if (endpoints.length === 0) return attempt(call);
    const settled = endpoints.map((endpoint) => settle(attempt, { ...call, target: `${endpoint.host}:${endpoint.port}` }));
    return Promise.all(settled).then((outcomes) => {
      let first: FarcallError | undefined;
      let failed = 0;
      for (const outcome of outcomes) {
        if (outcome instanceof FarcallError) {
          failed++;
          first ??= outcome;
        }
      }
      if (first !== undefined) throw withDetails(first, { failed, total: outcomes.length });
      return outcomes[outcomes.length - 1] as Reply;
    });
  };
}

/** The attempt's reply, or its error normalised: never rejects. */
function settle(attempt: Invoke, call: Call): Promise<Reply | FarcallError> {
  let reply: Promise<Reply>;
  try {
    reply = attempt(call);
  } catch (error) {
    reply = Promise.reject(error);
  }
  return reply.then(undefined, (error: unknown) => FarcallError.from(error));
}
