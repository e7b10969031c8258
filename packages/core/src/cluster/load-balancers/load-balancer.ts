import type { Call } from "../../call/call.js";
import type { Endpoint } from "../../registry/endpoint.js";
import type { EndpointStatsTable } from "../endpoint-stats.js";

/**
 * Chooses one endpoint for one attempt. `pick` is synchronous and must not mutate `endpoints` (an
 * immutable snapshot, already without the endpoints this call tried); it returns `undefined` only
 * when `endpoints` is empty.
 */
export interface LoadBalancer {
  readonly name: string;
  /**
   * True when `pick` reads call statistics: the client then records each attempt's in-flight
   * count, latency and outcome in the service's {@link EndpointStatsTable} and passes that table
   * to `pick`. Default false: the client keeps no statistics (no cost per call) and passes none.
   * A balancer that wraps another must forward both this flag and `stats`.
   */
  readonly needsStats?: boolean;
  /**
   * @param now epoch ms (the per-burst clock), for warm-up.
   * @param stats the service's call statistics, when `needsStats` is true.
   */
  pick(endpoints: readonly Endpoint[], call: Call, now: number, stats?: EndpointStatsTable): Endpoint | undefined;
}

/**
 * The weight an endpoint gets at `now`: during warm-up it grows with uptime as
 * `weight × uptime / warmupMs` (Dubbo's formula), never below 1 while the configured weight is
 * positive. A weight of 0 stays 0 (the endpoint gets no traffic while others have weight).
 */
export function effectiveWeight(endpoint: Endpoint, now: number): number {
  const weight = endpoint.weight;
  if (weight <= 0) return 0;
  if (endpoint.warmupMs <= 0 || endpoint.startTime <= 0) return weight;
  const uptime = now - endpoint.startTime;
  if (uptime >= endpoint.warmupMs) return weight;
  if (uptime <= 0) return 1;
  return Math.max(1, Math.floor((weight * uptime) / endpoint.warmupMs));
}
