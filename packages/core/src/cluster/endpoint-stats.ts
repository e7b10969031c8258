import type { AttemptObserver } from "../call/attempt-observer.js";
import type { FarcallError } from "../errors/farcall-error.js";
import type { Endpoint } from "../registry/endpoint.js";
import { tickPreciseNow } from "../timing/tick-clock.js";

/** Options of {@link EndpointStatsTable}. */
export interface EndpointStatsTableOptions {
  /**
   * Time constant of the latency estimates, in ms: a sample's weight, and how fast an estimate
   * fades while no sample arrives, go as `e^(-Δt / decayMs)`. Default 5000 (Finagle and Linkerd use
   * 10000; half that brings a provider that was slow back into rotation twice as fast).
   */
  readonly decayMs?: number;
  /**
   * Monotonic clock in ms (fractional). Default {@link tickPreciseNow}: `performance.now()` read
   * once per burst of synchronous work. Tests pass a fake.
   */
  readonly now?: () => number;
  /** The load record of a provider address (shared with the connection that receives its reports). Default: none, `load` stays 1. */
  readonly loadOf?: (address: string) => { readonly factor: number };
}

/** Default time constant of the latency estimates, in ms. */
export const defaultDecayMs = 5000;
/** How long, in ms, the stats of an address absent from every snapshot are kept. */
const forgetAfterMs = 10 * 60_000;
/**
 * Cost of an endpoint with calls in flight but no latency sample yet (Finagle's penalty): far above
 * any measured cost, so a new endpoint takes one call at a time until its first reply.
 */
const unknownCost = 1e9;

/**
 * The call statistics of one endpoint address as one consumer sees them, kept by the client when
 * its balancer reads them (`LoadBalancer.needsStats`):
 * - `inFlight`: attempts picked and not settled yet (from the pick, so a provider still being
 *   connected to counts its queued calls);
 * - `successes`, `failures`: settled attempts; a failure is one ending with `unavailable`,
 *   `deadline_exceeded`, `resource_exhausted`, `internal` or `unknown` (the provider, or the way
 *   to it, is unwell); any other code, `application` included, is the provider answering, so a
 *   success; `canceled` counts as neither;
 * - two latency estimates over the attempts that reached the provider (a reply, or an error with
 *   `sent: true`, except `canceled`), both fading towards 0 with time constant `decayMs` while no
 *   sample arrives (so an endpoint avoided for being slow is tried again, after about
 *   `decayMs × ln(its latency / the others')`):
 *   - {@link peakMs} (Finagle's Peak EWMA): a sample above the estimate replaces it at once; a
 *     lower one is blended in with weight `1 - e^(-Δt / decayMs)`, Δt the time since the previous
 *     sample. It jumps up on the first slow reply and comes down over seconds;
 *   - {@link averageMs}: the same blend for every sample (a time-weighted moving average);
 * - `load`: a factor on the costs from the provider's own load reports (event-loop utilisation,
 *   heap; see `protocol/binary/provider-load.ts`): 1 without a recent report.
 *
 * Latencies are timed with a clock read once per burst of synchronous work, so they are exact to
 * the length of a burst (well under a millisecond).
 */
export class EndpointStats implements AttemptObserver {
  /** Attempts picked and not settled yet. */
  inFlight = 0;
  /** Settled attempts the provider answered (with a value or an error it raised). */
  successes = 0;
  /** Settled attempts that failed with `unavailable`, `deadline_exceeded`, `resource_exhausted`, `internal` or `unknown`. */
  failures = 0;
  /** Multiplies the costs balancers compute: the provider's reported load factor, 1 (neutral) without a recent report. */
  get load(): number {
    const source = this.#loadSource;
    return source === undefined ? 1 : source.factor;
  }
  /** Clock time (ms) the address was last part of a snapshot; for forgetting addresses gone for good. */
  seenAt = 0;
  #peak = 0;
  #average = 0;
  /** Clock time (ms) of the last latency sample; -Infinity before the first. */
  #sampledAt = Number.NEGATIVE_INFINITY;
  /** `#fade(now)` for the last `now` asked: the picks of one burst share one clock read and one `Math.exp`. */
  #fadeAt = Number.NaN;
  #fadeValue = 1;
  readonly #now: () => number;
  readonly #decayMs: number;
  readonly #loadSource: { readonly factor: number } | undefined;

  /**
   * @param address the provider's `host:port`.
   * @param now monotonic clock in ms; default {@link tickPreciseNow}.
   * @param decayMs time constant of the latency estimates in ms; default 5000.
   * @param loadSource where the provider's reported load factor is read; none: `load` is 1.
   */
  constructor(readonly address: string, now: () => number = tickPreciseNow, decayMs = defaultDecayMs, loadSource?: { readonly factor: number }) {
    this.#loadSource = loadSource;
    this.#now = now;
    this.#decayMs = decayMs;
  }

  started(): number {
    this.inFlight++;
    return this.#now();
  }

  resumed(): number {
    return this.#now();
  }

  settled(startedAt: number, error: FarcallError | undefined): void {
    this.inFlight--;
    if (error === undefined) {
      this.successes++;
      this.#sample(startedAt);
      return;
    }
    switch (error.code) {
      case "canceled":
        return;
      case "unavailable":
      case "deadline_exceeded":
      case "resource_exhausted":
      case "internal":
      case "unknown":
        this.failures++;
        break;
      default:
        this.successes++;
    }
    if (error.sent) this.#sample(startedAt);
  }

  /** The Peak EWMA latency in ms at clock time `now` (0 before the first sample). */
  peakMs(now: number = this.#now()): number {
    return this.#peak * this.#fade(now);
  }

  /** The time-weighted average latency in ms at clock time `now` (0 before the first sample). */
  averageMs(now: number = this.#now()): number {
    return this.#average * this.#fade(now);
  }

  /**
   * The adaptive balancer's cost: `peakMs × (inFlight + 1) × load`. An endpoint with calls in
   * flight and no sample yet costs more than any measured one (Finagle's penalty).
   */
  peakCost(now: number): number {
    const peak = this.#peak;
    if (peak === 0) return this.inFlight === 0 ? 0 : unknownCost + this.inFlight;
    return peak * this.#fade(now) * (this.inFlight + 1) * this.load;
  }

  /** The shortest-response balancer's estimated wait: `averageMs × (inFlight + 1) × load`, same penalty. */
  expectedWaitMs(now: number): number {
    const average = this.#average;
    if (average === 0) return this.inFlight === 0 ? 0 : unknownCost + this.inFlight;
    return average * this.#fade(now) * (this.inFlight + 1) * this.load;
  }

  #fade(now: number): number {
    if (now === this.#fadeAt) return this.#fadeValue;
    const elapsed = now - this.#sampledAt;
    const fade = elapsed > 0 ? Math.exp(-elapsed / this.#decayMs) : 1;
    this.#fadeAt = now;
    this.#fadeValue = fade;
    return fade;
  }

  #sample(startedAt: number): void {
    const now = this.#now();
    const rtt = Math.max(now - startedAt, 0);
    const elapsed = now - this.#sampledAt;
    // Weight of what was known: e^(-Δt/τ); 0 for the first sample (elapsed is +Infinity).
    const keep = elapsed > 0 ? Math.exp(-elapsed / this.#decayMs) : 1;
    const peak = this.#peak * keep;
    this.#peak = rtt > peak ? rtt : peak + rtt * (1 - keep);
    this.#average = this.#average * keep + rtt * (1 - keep);
    this.#sampledAt = now;
    this.#fadeAt = Number.NaN;
  }
}

/**
 * The {@link EndpointStats} of every address one service's consumers call, kept by address
 * (`host:port`) so that a new snapshot of the same provider keeps its history. Lookups by endpoint
 * record go through a `WeakMap`, and {@link forSnapshot} caches the stats of the latest snapshot as
 * an array aligned with it: balancers read stats by index, with no lookup per pick.
 */
export class EndpointStatsTable {
  readonly #byAddress = new Map<string, EndpointStats>();
  #byEndpoint = new WeakMap<Endpoint, EndpointStats>();
  #snapshot: readonly Endpoint[] | undefined;
  #snapshotStats: readonly EndpointStats[] = [];
  readonly #decayMs: number;
  readonly #loadOf: ((address: string) => { readonly factor: number }) | undefined;
  /** Monotonic clock in ms shared by the stats of this table. */
  readonly now: () => number;

  constructor(options: EndpointStatsTableOptions = {}) {
    this.now = options.now ?? tickPreciseNow;
    this.#decayMs = options.decayMs ?? defaultDecayMs;
    this.#loadOf = options.loadOf;
  }

  /** The stats of `endpoint`'s address, created on first use. */
  get(endpoint: Endpoint): EndpointStats {
    return this.#byEndpoint.get(endpoint) ?? this.#attach(endpoint);
  }

  /**
   * The stats of each endpoint of `endpoints`, by index. The array of the latest snapshot is
   * cached (by identity): pass the directory's snapshots here, not lists filtered per call (use
   * {@link get} for those). Building the array of a new snapshot also forgets the addresses that
   * have been in no snapshot for 10 minutes and have nothing in flight.
   */
  forSnapshot(endpoints: readonly Endpoint[]): readonly EndpointStats[] {
    if (endpoints === this.#snapshot) return this.#snapshotStats;
    const now = this.now();
    // The previous snapshot's addresses were in use until now.
    for (const s of this.#snapshotStats) s.seenAt = now;
    const stats = endpoints.map((e) => {
      const s = this.get(e);
      s.seenAt = now;
      return s;
    });
    this.#snapshot = endpoints;
    this.#snapshotStats = stats;
    this.#forget(now);
    return stats;
  }

  /** Addresses with stats. */
  get size(): number {
    return this.#byAddress.size;
  }

  #attach(endpoint: Endpoint): EndpointStats {
    const address = `${endpoint.host}:${endpoint.port}`;
    let stats = this.#byAddress.get(address);
    if (stats === undefined) {
      stats = new EndpointStats(address, this.now, this.#decayMs, this.#loadOf?.(address));
      stats.seenAt = this.now();
      this.#byAddress.set(address, stats);
    }
    this.#byEndpoint.set(endpoint, stats);
    return stats;
  }

  #forget(now: number): void {
    let forgot = false;
    for (const [address, stats] of this.#byAddress) {
      if (stats.inFlight === 0 && now - stats.seenAt > forgetAfterMs) {
        this.#byAddress.delete(address);
        forgot = true;
      }
    }
    // Records still mapping to forgotten stats must not revive them.
    if (forgot) this.#byEndpoint = new WeakMap();
  }
}
