import type { Call } from "../../call/call.js";
import type { Endpoint } from "../../registry/endpoint.js";
import { EndpointStatsTable } from "../endpoint-stats.js";
import type { LoadBalancer } from "./load-balancer.js";
import { LowestScore } from "./lowest-score.js";

/** Options of {@link leastActive}. */
export interface LeastActiveOptions {
  /** Uniform random numbers in [0, 1) for ties. Default `Math.random`; tests pass a seeded source. */
  readonly random?: () => number;
}

/**
 * Least active (Dubbo's `leastactive`): the endpoint with the fewest attempts in flight from this
 * consumer; ties are broken at random in proportion to the warm-up adjusted weights. Suits
 * providers of unequal speed under steady load: a slow one keeps more calls in flight and gets
 * fewer new ones. O(n) per pick, no allocation. Reads the client's call statistics
 * (`needsStats`); without them every endpoint looks idle and it picks like weighted random.
 */
export function leastActive(options: LeastActiveOptions = {}): LoadBalancer {
  const random = options.random ?? Math.random;
  const scratch = new LowestScore();
  let unrecorded: EndpointStatsTable | undefined;
  return {
    name: "leastActive",
    needsStats: true,
    pick(endpoints: readonly Endpoint[], call: Call, now: number, stats?: EndpointStatsTable): Endpoint | undefined {
      const n = endpoints.length;
      if (n <= 1) return endpoints[0];
      const table = stats ?? (unrecorded ??= new EndpointStatsTable());
      scratch.prepare(endpoints, now);
      const scores = scratch.scores;
      if (call.tried.length === 0) {
        const aligned = table.forSnapshot(endpoints);
        for (let i = 0; i < n; i++) scores[i] = aligned[i]?.inFlight ?? 0;
      } else {
        for (let i = 0; i < n; i++) scores[i] = table.get(endpoints[i] as Endpoint).inFlight;
      }
      return scratch.pick(endpoints, random);
    },
  };
}
