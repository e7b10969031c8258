import type { Call } from "../../call/call.js";
import type { Endpoint } from "../../registry/endpoint.js";
import { effectiveWeight, type LoadBalancer } from "./load-balancer.js";

/**
 * Smooth weighted round robin (nginx's algorithm): over any window of `sum(weights)` picks each
 * endpoint is chosen exactly `weight` times, interleaved rather than in bursts. State is kept per
 * endpoint id and forgotten for endpoints that left.
 */
export function roundRobin(): LoadBalancer {
  let current = new Map<string, number>();
  let lastSet: readonly Endpoint[] | undefined;
  return {
    name: "roundRobin",
    pick(endpoints: readonly Endpoint[], _call: Call, now: number): Endpoint | undefined {
      const n = endpoints.length;
      if (n <= 1) return endpoints[0];
      if (endpoints !== lastSet) {
        // A new snapshot: drop state of endpoints that are gone.
        const next = new Map<string, number>();
        for (const e of endpoints) next.set(e.id, current.get(e.id) ?? 0);
        current = next;
        lastSet = endpoints;
      }
      let total = 0;
      let best: Endpoint | undefined;
      let bestValue = -Infinity;
      for (let i = 0; i < n; i++) {
        const e = endpoints[i] as Endpoint;
        const w = Math.max(effectiveWeight(e, now), 0);
        total += w;
        const value = (current.get(e.id) ?? 0) + w;
        current.set(e.id, value);
        if (value > bestValue) {
          bestValue = value;
          best = e;
        }
      }
      if (best === undefined || total === 0) return endpoints[Math.floor(Math.random() * n)];
      current.set(best.id, bestValue - total);
      return best;
    },
  };
}
