import type { Call, Invoke, Reply } from "../../call/call.js";
import type { Endpoint } from "../../registry/endpoint.js";

/**
 * What a fault-tolerance strategy may ask of the cluster beyond "run one attempt": the providers
 * an attempt could go to now, and one pick by the client's balancer. Both are synchronous reads of
 * the current snapshot (after routing and health filtering).
 */
export interface ClusterView {
  /**
   * The providers an attempt of `call` may go to now: routed, usable, without open breakers for
   * its method and without ejected ones (unless only ejected ones are left), minus `call.tried`.
   */
  endpoints(call: Call): readonly Endpoint[];
  /** What the client's balancer would pick for `call` now (excluding `call.tried`); undefined when none. */
  pick(call: Call): Endpoint | undefined;
}

/**
 * Decides what happens around the attempts of one call. `attempt` picks an endpoint (excluding
 * `call.tried`; exactly the endpoint at `call.target` when that is set) and invokes it; the
 * strategy may call it again, or several times at once, with copies of the call.
 */
export type FaultTolerance = (call: Call, attempt: Invoke, cluster: ClusterView) => Promise<Reply>;

/**
 * Key of a built-in strategy's variant that settles through the caller's own reactions:
 * `finish(reply)` with the reply it would have resolved with, `fail(error)` (which may throw) with
 * the error it would have rejected with, each called at most once per call and never both. The
 * client passes its guard's bookkeeping and the reply's value there, so the whole call costs one
 * derived promise instead of one per layer. Internal: not exported from the package; a strategy
 * without it is followed by `.then(finish, fail)`.
 */
export const settlesWith: unique symbol = Symbol("farcall.faultTolerance.settlesWith");

/**
 * A strategy's variant under {@link settlesWith}: the same attempts, settling with `finish(reply)`
 * (the reply as is when undefined) or `fail(error)` (a rejection with the error when undefined).
 */
export type FinishingTolerance = <R>(
  call: Call,
  attempt: Invoke,
  cluster: ClusterView,
  finish: ((reply: Reply) => R) | undefined,
  fail: ((error: unknown) => R) | undefined,
) => Promise<R>;
