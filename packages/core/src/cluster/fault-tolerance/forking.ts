import type { Call, Invoke, Reply } from "../../call/call.js";
import { badOption, FarcallError } from "../../errors/farcall-error.js";
import { withDetails } from "./failover.js";
import type { FaultTolerance } from "./fault-tolerance.js";

/** Options of {@link forking}. */
export interface ForkingOptions {
  /** Most providers one call runs on at once. Default 2; an integer in 1..10. */
  readonly forks?: number;
}

/**
 * Runs an idempotent call on several providers at once and takes the first answer, trading load
 * for latency (for reads that must be fast). The providers are the balancer's choices: `pick` is
 * asked up to `forks` times, each time excluding the ones already chosen. Each fork is a copy of
 * the call with `target` set to its provider, `attempt` numbered from the call's (first fork: the
 * call's own) and a signal of its own that follows the call's.
 *
 * The first success resolves the call and aborts the other forks. An `application` error settles
 * it just as early (the provider ran the method and answered: an outcome, not a failure to
 * deliver; another provider would answer alike). Otherwise the call rejects when every fork has
 * failed, with the error of the last to fail plus `details.forks` (the number of forks).
 *
 * A non-idempotent method gets exactly one attempt (as `failfast`): it must never run twice.
 * With no provider to pick, one plain attempt reports the no-provider error.
 *
 * @throws `FarcallError` `invalid_argument` (reason `bad_option`) at construction for a bad option.
 */
export function forking(options: ForkingOptions = {}): FaultTolerance {
  const forks = options.forks ?? 2;
  if (!Number.isInteger(forks) || forks < 1 || forks > 10) badOption("forks", "must be an integer in 1..10");
  return (call, attempt, cluster) => {
    if (!call.ref.idempotent) return attempt(call);
    const targets: string[] = [];
    let tried = call.tried;
    while (targets.length < forks) {
      const endpoint = cluster.pick(tried === call.tried ? call : { ...call, tried });
      if (endpoint === undefined) break;
      const address = `${endpoint.host}:${endpoint.port}`;
      // A balancer ignoring `tried` must not make the call run twice on one provider.
      if (targets.includes(address)) break;
      targets.push(address);
      tried = [...tried, address];
    }
    if (targets.length === 0) return attempt(call);
    return race(call, attempt, targets);
  };
}

function race(call: Call, attempt: Invoke, targets: readonly string[]): Promise<Reply> {
  const controllers = targets.map(() => new AbortController());
  const abortAll = (): void => {
    for (const controller of controllers) controller.abort(call.signal?.reason);
  };
  const signal = call.signal;
  if (signal?.aborted) abortAll();
  else signal?.addEventListener("abort", abortAll, { once: true });
  return new Promise<Reply>((resolve, reject) => {
    let pending = targets.length;
    let settled = false;
    /** Settles the call: the forks still running (all but `winner`) are aborted. */
    const settle = (winner: number): void => {
      settled = true;
      signal?.removeEventListener("abort", abortAll);
      controllers.forEach((controller, i) => {
        if (i !== winner) controller.abort();
      });
    };
    targets.forEach((target, i) => {
      const fork: Call = { ...call, attempt: call.attempt + i, target, signal: (controllers[i] as AbortController).signal };
      let reply: Promise<Reply>;
      try {
        reply = attempt(fork);
      } catch (error) {
        reply = Promise.reject(error);
      }
      reply.then(
        (value) => {
          if (settled) return;
          settle(i);
          resolve(value);
        },
        (error: unknown) => {
          pending--;
          if (settled) return;
          const failure = FarcallError.from(error);
          if (failure.code === "application") {
            settle(i);
            reject(error);
          } else if (pending === 0) {
            settle(-1);
            reject(withDetails(failure, { forks: targets.length }));
          }
        },
      );
    });
  });
}
