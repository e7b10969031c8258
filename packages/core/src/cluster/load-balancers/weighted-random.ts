import type { Call } from "../../call/call.js";
import type { Endpoint } from "../../registry/endpoint.js";
import { effectiveWeight, type LoadBalancer } from "./load-balancer.js";

/** Options of {@link weightedRandom}. */
export interface WeightedRandomOptions {
  /** Uniform random numbers in [0, 1). Default `Math.random`; tests pass a seeded source. */
  readonly random?: () => number;
}

/**
 * Picks at random in proportion to each endpoint's effective (warm-up adjusted) weight. When every
 * weight is 0, picks uniformly. O(n) per pick, no allocation.
 */
export function weightedRandom(options: WeightedRandomOptions = {}): LoadBalancer {
  const random = options.random ?? Math.random;
  return {
    name: "random",
    pick(endpoints: readonly Endpoint[], _call: Call, now: number): Endpoint | undefined {
      const n = endpoints.length;
      if (n <= 1) return endpoints[0];
      let total = 0;
      let same = true;
      let first = -1;
      for (let i = 0; i < n; i++) {
        const w = effectiveWeight(endpoints[i] as Endpoint, now);
        if (first < 0) first = w;
        else if (w !== first) same = false;
        total += w;
      }
      if (total <= 0 || same) return endpoints[Math.floor(random() * n)];
      let offset = random() * total;
      for (let i = 0; i < n; i++) {
        offset -= effectiveWeight(endpoints[i] as Endpoint, now);
        if (offset < 0) return endpoints[i];
      }
      return endpoints[n - 1];
    },
  };
}
