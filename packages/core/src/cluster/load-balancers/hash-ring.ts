import type { Endpoint } from "../../registry/endpoint.js";

/**
 * 32-bit hash of a string: FNV-1a over its UTF-16 code units, then MurmurHash3's finalizer so that
 * keys differing in one character land far apart on the ring. Not cryptographic: a client that
 * chooses keys can choose where they land, which is the point of a hash key.
 */
export function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Most endpoints one ring holds (indices share a float64 with the 32-bit point when sorting). */
const maxEndpoints = 2 ** 21;

/**
 * A consistent-hash ring (Karger et al.; Dubbo's and Ketama's layout): each endpoint owns
 * `virtualNodes` points at `hash("host:port#i")`, and a key belongs to the first point at or after
 * its hash, wrapping around. A point depends only on its endpoint's address, so when an endpoint
 * leaves only the keys it owned move (to the next points clockwise), and one that joins takes
 * keys only from others, about 1/(n+1) of them. Endpoints of configured weight 0 own no point
 * while another has weight; weights and warm-up are otherwise ignored (stickiness first).
 */
export class HashRing {
  readonly #points: Uint32Array;
  readonly #owners: Int32Array;

  private constructor(
    readonly endpoints: readonly Endpoint[],
    readonly virtualNodes: number,
    points: Uint32Array,
    owners: Int32Array,
  ) {
    this.#points = points;
    this.#owners = owners;
  }

  /** Builds the ring of `endpoints`; O(n · virtualNodes · log) once per snapshot. */
  static build(endpoints: readonly Endpoint[], virtualNodes: number): HashRing {
    const n = Math.min(endpoints.length, maxEndpoints);
    const anyWeight = endpoints.some((e) => e.weight > 0);
    let members = 0;
    for (let i = 0; i < n; i++) if (!anyWeight || (endpoints[i] as Endpoint).weight > 0) members++;
    const keys = new Float64Array(members * virtualNodes);
    let k = 0;
    for (let i = 0; i < n; i++) {
      const e = endpoints[i] as Endpoint;
      if (anyWeight && e.weight <= 0) continue;
      const base = `${e.host}:${e.port}#`;
      for (let v = 0; v < virtualNodes; v++) keys[k++] = hashString(base + v) * maxEndpoints + i;
    }
    keys.sort();
    const points = new Uint32Array(keys.length);
    const owners = new Int32Array(keys.length);
    for (let j = 0; j < keys.length; j++) {
      const key = keys[j] as number;
      const owner = key % maxEndpoints;
      points[j] = (key - owner) / maxEndpoints;
      owners[j] = owner;
    }
    return new HashRing(endpoints, virtualNodes, points, owners);
  }

  /**
   * This ring for `endpoints` when they have the same addresses in the same order as the ring's
   * (a new snapshot of the same providers), without rebuilding; otherwise undefined.
   */
  reuseFor(endpoints: readonly Endpoint[]): HashRing | undefined {
    const mine = this.endpoints;
    if (endpoints.length !== mine.length) return undefined;
    for (let i = 0; i < mine.length; i++) {
      const a = mine[i] as Endpoint;
      const b = endpoints[i] as Endpoint;
      if (a.host !== b.host || a.port !== b.port || (a.weight > 0) !== (b.weight > 0)) return undefined;
    }
    return new HashRing(endpoints, this.virtualNodes, this.#points, this.#owners);
  }

  /** Index in `endpoints` of the owner of `hash`, or -1 for an empty ring. */
  locate(hash: number): number {
    const points = this.#points;
    const m = points.length;
    if (m === 0) return -1;
    let lo = 0;
    let hi = m;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((points[mid] as number) < hash) lo = mid + 1;
      else hi = mid;
    }
    return this.#owners[lo === m ? 0 : lo] as number;
  }

  /**
   * The first endpoint clockwise from `hash` that `accept` takes (a retry skips the providers it
   * tried, and lands where their keys would go if they left), or undefined.
   */
  locateAccepted(hash: number, accept: (endpoint: Endpoint) => boolean): Endpoint | undefined {
    const points = this.#points;
    const m = points.length;
    if (m === 0) return undefined;
    let start = 0;
    let hi = m;
    while (start < hi) {
      const mid = (start + hi) >>> 1;
      if ((points[mid] as number) < hash) start = mid + 1;
      else hi = mid;
    }
    for (let step = 0; step < m; step++) {
      const endpoint = this.endpoints[this.#owners[(start + step) % m] as number] as Endpoint;
      if (accept(endpoint)) return endpoint;
    }
    return undefined;
  }
}
