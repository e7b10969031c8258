import { tickNow } from "../../timing/tick-clock.js";

/**
 * Provider-reported load: what a provider tells its consumers about how busy it is, so that the
 * `adaptive` and `shortestResponse` balancers can steer away from a provider before its latency
 * shows it (the seeds' adaptive weights from CPU, load and memory).
 *
 * On the wire it is one reply metadata entry, `farcall-load: "<busy>;<memory>"`, both fractions in
 * [0, 1] with at most 3 decimals (e.g. `"0.824;0.410"`): `busy` is the provider's event-loop
 * utilisation over the last sampling interval (the share of time its only thread was running
 * code rather than waiting for I/O), `memory` the V8 heap in use over the heap limit. A provider
 * adds it to at most one successful reply per connection per report interval. The value is
 * untrusted: anything that does not parse is ignored.
 */

/** The reply metadata key that carries a load report. */
export const loadMetadataKey = "farcall-load";

/** One load report. */
export interface LoadSample {
  /** Event-loop utilisation over the last interval, 0..1. */
  readonly busy: number;
  /** Heap used / heap limit, 0..1. */
  readonly memory: number;
}

/** Longest report text accepted, in characters. */
const maxReportLength = 32;
const reportPattern = /^(0(?:\.\d{1,3})?|1(?:\.0{1,3})?);(0(?:\.\d{1,3})?|1(?:\.0{1,3})?)$/;

/** The wire text of a sample, fractions clamped to [0, 1] and rounded to 3 decimals. */
export function formatLoad(sample: LoadSample): string {
  return `${fraction(sample.busy)};${fraction(sample.memory)}`;
}

function fraction(value: number): string {
  const clamped = Number.isFinite(value) ? Math.min(1, Math.max(0, value)) : 0;
  return String(Math.round(clamped * 1000) / 1000);
}

/** Parses a report read from a reply; `undefined` for anything malformed (never throws). */
export function parseLoad(text: unknown): LoadSample | undefined {
  if (typeof text !== "string" || text.length > maxReportLength) return undefined;
  const m = reportPattern.exec(text);
  if (m === null) return undefined;
  return { busy: Number(m[1]), memory: Number(m[2]) };
}

/** How long a report stays valid on the consumer, in ms: past it, the provider counts as unloaded again. */
export const loadReportTtlMs = 5000;

/** Largest factor a load report puts on a provider's cost. */
export const maxLoadFactor = 10;

/**
 * The factor a sample puts on a provider's balancing cost: `1 / (1 − busy)` (the queueing
 * delay's growth with utilisation, so a provider busy 50 % of the time costs 2×, 80 % 5×),
 * busy capped at 0.9 (factor 10), doubled when the heap is over 85 % of its limit (garbage
 * collection pauses are coming).
 */
export function loadFactor(sample: LoadSample): number {
  const busy = Math.min(sample.busy, 0.9);
  const factor = 1 / (1 - busy);
  return sample.memory > 0.85 ? Math.min(maxLoadFactor * 2, factor * 2) : factor;
}

/**
 * The latest load report of one provider address, shared by every service's statistics for that
 * address. `factor` is 1 when no report arrived within {@link loadReportTtlMs}.
 */
export class ProviderLoad {
  #factor = 1;
  #sample: LoadSample | undefined;
  #at = Number.NEGATIVE_INFINITY;
  readonly #now: () => number;

  /** @param now epoch ms clock; default the per-burst clock `tickNow`. */
  constructor(now: () => number = tickNow) {
    this.#now = now;
  }

  /** A report arrived. */
  report(sample: LoadSample): void {
    this.#sample = sample;
    this.#factor = loadFactor(sample);
    this.#at = this.#now();
  }

  /** The cost factor now: the last report's, or 1 once it is older than {@link loadReportTtlMs}. */
  get factor(): number {
    if (this.#factor === 1) return 1;
    if (this.#now() - this.#at > loadReportTtlMs) this.#factor = 1;
    return this.#factor;
  }

  /** The last report and when it arrived (epoch ms), if any. */
  get last(): { readonly sample: LoadSample; readonly at: number } | undefined {
    return this.#sample === undefined ? undefined : { sample: this.#sample, at: this.#at };
  }
}
