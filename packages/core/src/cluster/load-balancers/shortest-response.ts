import type { Call } from "../../call/call.js";
import type { Endpoint } from "../../registry/endpoint.js";
import { EndpointStatsTable } from "../endpoint-stats.js";
import type { LoadBalancer } from "./load-balancer.js";
import { LowestScore } from "./lowest-score.js";

/** Options of {@link shortestResponse}. */
export interface ShortestResponseOptions {
  /** Uniform random numbers in [0, 1) for ties. Default `Math.random`; tests pass a seeded source. */
  readonly random?: () => number;
}

/**
 * Shortest response (Dubbo's `shortestresponse`): the endpoint with the lowest estimated wait,
 * `averageMs × (inFlight + 1)` (its time-weighted average latency, see `EndpointStats`, times the
 * calls it would be serving); ties (idle endpoints with no latency yet, say) are broken at random
 * in proportion to the warm-up adjusted weights. An endpoint with calls in flight and no latency
 * sample yet waits behind every measured one, so a new provider takes one call at a time until it
 * answers. Scans every endpoint: O(n) per pick, no allocation. Reads the client's call statistics
 * (`needsStats`); without them it picks like weighted random.
 */
export function shortestResponse(options: ShortestResponseOptions = {}): LoadBalancer {
  const random = options.random ?? Math.random;
  const scratch = new LowestScore();
  let unrecorded: EndpointStatsTable | undefined;
  return {
    name: "shortestResponse",
    needsStats: true,
    pick(endpoints: readonly Endpoint[], call: Call, now: number, stats?: EndpointStatsTable): Endpoint | undefined {
      const n = endpoints.length;
      if (n <= 1) return endpoints[0];
      const table = stats ?? (unrecorded ??= new EndpointStatsTable());
      const clock = table.now();
      scratch.prepare(endpoints, now);
      const scores = scratch.scores;
      if (call.tried.length === 0) {
        const aligned = table.forSnapshot(endpoints);
        for (let i = 0; i < n; i++) scores[i] = aligned[i]?.expectedWaitMs(clock) ?? 0;
      } else {
        for (let i = 0; i < n; i++) scores[i] = table.get(endpoints[i] as Endpoint).expectedWaitMs(clock);
      }
      return scratch.pick(endpoints, random);
    },
  };
}
