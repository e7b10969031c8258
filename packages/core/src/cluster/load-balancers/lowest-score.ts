import type { Endpoint } from "../../registry/endpoint.js";
import { effectiveWeight } from "./load-balancer.js";

/**
 * Scratch space of a balancer that scores every endpoint and takes the lowest score (least active,
 * shortest response): the scores and weights of one pick, in arrays reused from pick to pick (a
 * pick is synchronous, so one balancer never runs two at once).
 */
export class LowestScore {
  scores = new Float64Array(8);
  weights = new Float64Array(8);

  /** Sizes the arrays for `n` endpoints and fills `weights` with their effective weights at `now`. */
  prepare(endpoints: readonly Endpoint[], now: number): void {
    const n = endpoints.length;
    if (this.scores.length < n) {
      this.scores = new Float64Array(n * 2);
      this.weights = new Float64Array(n * 2);
    }
    for (let i = 0; i < n; i++) this.weights[i] = effectiveWeight(endpoints[i] as Endpoint, now);
  }

  /**
   * The endpoint with the lowest score; ties are broken at random in proportion to the effective
   * weights (uniformly when the tied weights are equal), as Dubbo does. Endpoints of weight 0 are
   * left out while any other has weight.
   */
  pick(endpoints: readonly Endpoint[], random: () => number): Endpoint | undefined {
    const n = endpoints.length;
    const { scores, weights } = this;
    let anyWeight = false;
    for (let i = 0; i < n; i++) {
      if ((weights[i] as number) > 0) {
        anyWeight = true;
        break;
      }
    }
    let lowest = Infinity;
    let tied = 0;
    let tiedWeight = 0;
    let sameWeight = true;
    let only = -1;
    for (let i = 0; i < n; i++) {
      const w = weights[i] as number;
      if (anyWeight && w <= 0) continue;
      const score = scores[i] as number;
      if (score < lowest || only < 0) {
        lowest = score;
        tied = 1;
        tiedWeight = w;
        sameWeight = true;
        only = i;
      } else if (score === lowest) {
        if (w !== weights[only]) sameWeight = false;
        tied++;
        tiedWeight += w;
      }
    }
    if (only < 0) return undefined;
    if (tied === 1) return endpoints[only];
    if (sameWeight || tiedWeight <= 0) {
      let k = Math.floor(random() * tied);
      for (let i = only; i < n; i++) {
        if (scores[i] !== lowest || (anyWeight && (weights[i] as number) <= 0)) continue;
        if (k-- === 0) return endpoints[i];
      }
      return endpoints[only];
    }
    let offset = random() * tiedWeight;
    let last = only;
    for (let i = only; i < n; i++) {
      const w = weights[i] as number;
      if (scores[i] !== lowest || (anyWeight && w <= 0)) continue;
      last = i;
      offset -= w;
      if (offset < 0) return endpoints[i];
    }
    return endpoints[last];
  }
}
