import type { Call } from "../../call/call.js";
import type { Endpoint } from "../../registry/endpoint.js";

/** Who is calling: the consumer's own application name and host, which routing rules may read. */
export interface RouteContext {
  /** The consumer's application name (`""` when it has none). */
  readonly application: string;
  /** The consumer's host (IP address or name), as providers would see it. */
  readonly host: string;
}

/**
 * Narrows the providers of a service to those one call may use, before the load balancer picks
 * among them (Dubbo's router). `route` is synchronous and reads an immutable snapshot:
 * - it never mutates `endpoints` and never adds an endpoint that is not in it;
 * - when it filters nothing it returns `endpoints` itself (the same array), so callers can cache
 *   per snapshot by identity; otherwise a new frozen array, in the input's order;
 * - an empty result means the call has no provider (it then fails as such).
 */
export interface Router {
  /** The factory's name, for logs and metrics (e.g. `"tagRouter"`). */
  readonly name: string;
  /**
   * True when the result depends on the call beyond its method and its `farcall-tag` metadata
   * (a rule reading arguments or other metadata): the client then routes every call afresh.
   * Otherwise it may reuse the result for calls of the same method, snapshot and tag. Default false.
   */
  readonly perCall?: boolean;
  route(endpoints: readonly Endpoint[], call: Call, context: RouteContext): readonly Endpoint[];
}

/**
 * Runs `routers` in order, each on the previous one's output, and returns the last output. Stops
 * at an empty list (routers only narrow, so none could bring a provider back). Returns `endpoints`
 * itself when no router filtered anything, and when `routers` is empty.
 */
export function routeAll(routers: readonly Router[], endpoints: readonly Endpoint[], call: Call, context: RouteContext): readonly Endpoint[] {
  let list = endpoints;
  for (const router of routers) {
    if (list.length === 0) break;
    list = router.route(list, call, context);
  }
  return list;
}

/**
 * The endpoints for which `keep` is true, in order: `endpoints` itself when it keeps all of them,
 * otherwise a new frozen array. Never mutates `endpoints`.
 */
export function keepEndpoints(endpoints: readonly Endpoint[], keep: (endpoint: Endpoint) => boolean): readonly Endpoint[] {
  const n = endpoints.length;
  let i = 0;
  while (i < n && keep(endpoints[i] as Endpoint)) i++;
  if (i === n) return endpoints;
  const kept = endpoints.slice(0, i);
  for (i++; i < n; i++) {
    const endpoint = endpoints[i] as Endpoint;
    if (keep(endpoint)) kept.push(endpoint);
  }
  return Object.freeze(kept);
}

/** The frozen empty list routers return for "no provider". */
export const noEndpoints: readonly Endpoint[] = Object.freeze([]);
