import type { Call } from "../../call/call.js";
import type { Endpoint } from "../../registry/endpoint.js";
import { type EndpointStats, EndpointStatsTable } from "../endpoint-stats.js";
import { effectiveWeight, type LoadBalancer } from "./load-balancer.js";

/** Options of {@link adaptive}. */
export interface AdaptiveOptions {
  /** Uniform random numbers in [0, 1). Default `Math.random`; tests pass a seeded source. */
  readonly random?: () => number;
}

/**
 * Adaptive: power of two choices over Peak EWMA (Finagle's and Linkerd's default balancer). Draws
 * two distinct endpoints at random in proportion to their warm-up adjusted weights and takes the
 * one with the lower cost, `peakMs × (inFlight + 1) × load` (see `EndpointStats`): latency as it
 * is now (a slow reply raises it at once, it fades over ~5 s) times the calls the endpoint would
 * be serving. A provider that slows down stops getting calls after its first slow reply; one
 * with calls in flight and no reply yet is avoided while another can be drawn. Comparing two
 * random endpoints rather than all of them keeps the pick O(1) when weights are equal and spares
 * the single best endpoint the herd. `load` is 1 until providers report their load.
 *
 * Reads the client's call statistics (`needsStats`); without them it picks like weighted random.
 */
export function adaptive(options: AdaptiveOptions = {}): LoadBalancer {
  const random = options.random ?? Math.random;
  let weights = new Float64Array(8);
  let profiled: readonly Endpoint[] | undefined;
  /** Epoch ms from which every endpoint of `profiled` has the same, final weight; Infinity if never. */
  let uniformFrom = Infinity;
  let unrecorded: EndpointStatsTable | undefined;
  return {
    name: "adaptive",
    needsStats: true,
    pick(endpoints: readonly Endpoint[], call: Call, now: number, stats?: EndpointStatsTable): Endpoint | undefined {
      const n = endpoints.length;
      if (n <= 1) return endpoints[0];
      const table = stats ?? (unrecorded ??= new EndpointStatsTable());
      const whole = call.tried.length === 0;
      if (whole && endpoints !== profiled) {
        profiled = endpoints;
        uniformFrom = equalWeightsFrom(endpoints);
      }
      let a: number;
      let b: number;
      if (whole && now >= uniformFrom) {
        a = Math.floor(random() * n);
        b = Math.floor(random() * (n - 1));
        if (b >= a) b++;
      } else {
        if (weights.length < n) weights = new Float64Array(n * 2);
        let total = 0;
        for (let i = 0; i < n; i++) {
          const w = effectiveWeight(endpoints[i] as Endpoint, now);
          weights[i] = w;
          total += w;
        }
        if (total <= 0) {
          a = Math.floor(random() * n);
          b = Math.floor(random() * (n - 1));
          if (b >= a) b++;
        } else {
          a = drawWeighted(weights, n, total, -1, random);
          const rest = total - (weights[a] as number);
          // Every other endpoint has weight 0: they take no traffic while this one has weight.
          if (rest <= 0) return endpoints[a];
          b = drawWeighted(weights, n, rest, a, random);
        }
      }
      const ea = endpoints[a] as Endpoint;
      const eb = endpoints[b] as Endpoint;
      let sa: EndpointStats;
      let sb: EndpointStats;
      if (whole) {
        const aligned = table.forSnapshot(endpoints);
        sa = aligned[a] as EndpointStats;
        sb = aligned[b] as EndpointStats;
      } else {
        sa = table.get(ea);
        sb = table.get(eb);
      }
      const clock = table.now();
      return sb.peakCost(clock) < sa.peakCost(clock) ? eb : ea;
    },
  };
}

/** Index drawn in proportion to `weights[0..n)`, skipping `skip`; `total` is the sum without it. */
function drawWeighted(weights: Float64Array, n: number, total: number, skip: number, random: () => number): number {
  let offset = random() * total;
  let last = -1;
  for (let i = 0; i < n; i++) {
    if (i === skip) continue;
    const w = weights[i] as number;
    if (w <= 0) continue;
    last = i;
    offset -= w;
    if (offset < 0) return i;
  }
  return last;
}

/**
 * The epoch ms from which every endpoint has the same final weight (when the last warm-up ends),
 * or Infinity when the configured weights differ or one is 0: until then picks draw by weight.
 */
function equalWeightsFrom(endpoints: readonly Endpoint[]): number {
  const weight = (endpoints[0] as Endpoint).weight;
  if (weight <= 0) return Infinity;
  let from = Number.NEGATIVE_INFINITY;
  for (const e of endpoints) {
    if (e.weight !== weight) return Infinity;
    if (e.warmupMs > 0 && e.startTime > 0) from = Math.max(from, e.startTime + e.warmupMs);
  }
  return from;
}
