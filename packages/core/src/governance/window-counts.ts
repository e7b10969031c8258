/** Sub-buckets of a window. */
const subBuckets = 10;

/**
 * Counts over a sliding time window, shared by the retry budget, the adaptive throttle and the
 * circuit breaker: `series` counters (deposits and retries; requests and accepts; calls, errors and
 * slow calls), each a ring of 10 sub-buckets of `windowMs / 10` ms aligned to multiples of
 * `windowMs / 10` from time 0, with a running total of the current sub-bucket and the 9 before it.
 * O(1) per count, O(10) when the window moves, no allocation after construction.
 *
 * Time is the window's own: the `now` passed in (epoch ms) plus the sum of every step the clock
 * took backwards, so a clock going back never lets counts leave early or come back, and never
 * stalls the window for the size of the step. A `now` that is not finite counts as no time passing.
 */
export class WindowCounts {
  readonly #bucketMs: number;
  readonly #series: number;
  /** `#counts[slot * series + s]`: the count of series `s` in sub-bucket `slot`. */
  readonly #counts: Float64Array;
  readonly #totals: Float64Array;
  /** Index of the current sub-bucket in the ring. */
  #slot = 0;
  /** Absolute number of the current sub-bucket, `floor(time / bucketMs)`. */
  #bucket = Number.NEGATIVE_INFINITY;
  /** The latest finite `now`. */
  #last = Number.NEGATIVE_INFINITY;
  /** Sum of the clock's steps back. */
  #skew = 0;

  constructor(windowMs: number, series: number) {
    this.#bucketMs = windowMs / subBuckets;
    this.#series = series;
    this.#counts = new Float64Array(subBuckets * series);
    this.#totals = new Float64Array(series);
  }

  /** The window's own time at `now`, moving its clock (not the window). */
  time(now: number): number {
    if (Number.isFinite(now)) {
      if (now < this.#last) this.#skew += this.#last - now;
      this.#last = now;
    }
    return this.#last + this.#skew;
  }

  /** The window's own time at `now`, moving nothing. */
  peek(now: number): number {
    return (Number.isFinite(now) && now > this.#last ? now : this.#last) + this.#skew;
  }

  /** Moves the clock and the window to `now`; returns the own time. */
  advance(now: number): number {
    const at = this.time(now);
    this.roll(at);
    return at;
  }

  /** Makes the sub-bucket of own time `at` the current one, emptying those that left the window. */
  roll(at: number): void {
    const bucket = Math.floor(at / this.#bucketMs);
    const steps = bucket - this.#bucket;
    if (!(steps > 0)) return;
    this.#bucket = bucket;
    if (steps >= subBuckets) {
      this.clear();
      return;
    }
    const n = this.#series;
    for (let i = 0; i < steps; i++) {
      const slot = (this.#slot + 1) % subBuckets;
      for (let s = 0; s < n; s++) {
        const k = slot * n + s;
        this.#totals[s] = (this.#totals[s] as number) - (this.#counts[k] as number);
        this.#counts[k] = 0;
      }
      this.#slot = slot;
    }
  }

  /** Counts one in series `s` in the current sub-bucket (after {@link advance}). */
  add(s: number): void {
    const k = this.#slot * this.#series + s;
    this.#counts[k] = (this.#counts[k] as number) + 1;
    this.#totals[s] = (this.#totals[s] as number) + 1;
  }

  /** Series `s` over the window as it stands. */
  total(s: number): number {
    return this.#totals[s] as number;
  }

  /** Series `s` over the window as it will be once moved to own time `at`; moves nothing. */
  totalAt(s: number, at: number): number {
    const steps = Math.floor(at / this.#bucketMs) - this.#bucket;
    const total = this.#totals[s] as number;
    if (!(steps > 0)) return total;
    if (steps >= subBuckets) return 0;
    let sum = total;
    for (let i = 1; i <= steps; i++) sum -= this.#counts[((this.#slot + i) % subBuckets) * this.#series + s] as number;
    return sum;
  }

  /** Empties every series. */
  clear(): void {
    this.#counts.fill(0);
    this.#totals.fill(0);
  }
}
