import { badOption } from "../errors/farcall-error.js";
import type { RateLimiter, RateLimitOptions } from "./limiter.js";
import { optionFields, numberField, show } from "./option-fields.js";
import { WindowCounts } from "./window-counts.js";

/** Highest rate accepted, per second (a sliding window's `limit` per `windowMs` included). */
const maxRatePerSecond = 1e7;
/** Largest token bucket `burst`: ten seconds at the highest rate. */
const maxBurst = 1e8;
/** Longest sliding window, in ms (one hour). */
const maxWindowMs = 3_600_000;
/** Longest leaky bucket `maxQueueMs`, in ms. */
const maxQueueMsLimit = 60_000;
const defaultWindowMs = 1000;
const defaultMaxQueueMs = 500;

/**
 * Validates rate limit options that come as data (a config file, environment JSON, registry
 * rules: untrusted) and returns a frozen, normalised copy with the defaults filled in (`burst`,
 * `windowMs`, `maxQueueMs`). Accepted:
 * - `value` must be a plain object of own data properties, with only the keys of its kind;
 * - `tokenBucket`: `ratePerSecond` in (0, 1e7]; `burst` in [1, 1e8], default max(1, ratePerSecond);
 * - `slidingWindow`: `windowMs` in [1, 3600000] ms, default 1000; `limit` an integer ≥ 1 and at
 *   most 1e7 per second (`limit ≤ 1e4 × windowMs`);
 * - `leakyBucket`: `ratePerSecond` in (0, 1e7]; `maxQueueMs` in [0, 60000] ms, default 500.
 *
 * Numbers must be JSON numbers (a numeric string is refused).
 * @param option the name of the value in error messages and `details.option`, e.g. `rateLimit`:
 *   a bad field is reported as `rateLimit.ratePerSecond`.
 * @throws FarcallError `invalid_argument`, reason `bad_option`, `details.option` naming the value
 *   or the field at fault.
 */
export function checkRateLimitOptions(value: unknown, option: string): RateLimitOptions {
  return resolveRateLimit(value, option);
}

/** {@link RateLimitOptions} with the defaults filled in. */
type ResolvedRateLimit =
  | { readonly kind: "tokenBucket"; readonly ratePerSecond: number; readonly burst: number }
  | { readonly kind: "slidingWindow"; readonly limit: number; readonly windowMs: number }
  | { readonly kind: "leakyBucket"; readonly ratePerSecond: number; readonly maxQueueMs: number };

function resolveRateLimit(value: unknown, option: string): ResolvedRateLimit {
  const fields = optionFields(value, option, ["kind", "ratePerSecond", "burst", "limit", "windowMs", "maxQueueMs"]);
  const kind = fields.kind;
  switch (kind) {
    case "tokenBucket": {
      onlyFields(fields, option, kind, ["ratePerSecond", "burst"]);
      const ratePerSecond = rate(fields.ratePerSecond, `${option}.ratePerSecond`);
      const burst = numberField(fields.burst, `${option}.burst`, Math.max(1, ratePerSecond), 1, maxBurst, false);
      return Object.freeze({ kind, ratePerSecond, burst });
    }
    case "slidingWindow": {
      onlyFields(fields, option, kind, ["limit", "windowMs"]);
      const windowMs = numberField(fields.windowMs, `${option}.windowMs`, defaultWindowMs, 1, maxWindowMs, false);
      if (fields.limit === undefined) badOption(`${option}.limit`, "required");
      const limit = numberField(fields.limit, `${option}.limit`, 0, 1, Math.floor((maxRatePerSecond * windowMs) / 1000), true);
      return Object.freeze({ kind, limit, windowMs });
    }
    case "leakyBucket": {
      onlyFields(fields, option, kind, ["ratePerSecond", "maxQueueMs"]);
      const ratePerSecond = rate(fields.ratePerSecond, `${option}.ratePerSecond`);
      const maxQueueMs = numberField(fields.maxQueueMs, `${option}.maxQueueMs`, defaultMaxQueueMs, 0, maxQueueMsLimit, false);
      return Object.freeze({ kind, ratePerSecond, maxQueueMs });
    }
    default:
      return badOption(`${option}.kind`, `must be tokenBucket, slidingWindow or leakyBucket, got ${show(kind)}`);
  }
}

/**
 * Creates the rate limiter `options` describe. Pure and synchronous: no timers; time is the `now`
 * passed to each `tryAcquire` (epoch ms, `Date.now()` scale). A `now` earlier than the latest one
 * seen (a clock stepped back) or not finite counts as no time passing: it neither admits a burst
 * nor stalls the limiter for the size of the step. O(1) per call (a sliding window: O(10) at
 * most), no allocation.
 *
 * - `tokenBucket`: holds up to `burst` tokens (full at creation), refilled continuously at
 *   `ratePerSecond`; a request takes one or is rejected. Over any interval in which the clock moved
 *   forward by `t` ms it admits at most `burst + ratePerSecond × t / 1000`.
 * - `slidingWindow`: the window is a ring of 10 sub-buckets of `windowMs / 10` ms, aligned to
 *   multiples of `windowMs / 10` from time 0; a request is admitted when fewer than `limit` were
 *   admitted in the current sub-bucket and the 9 before it. Guarantee: **at most `limit`
 *   admissions in any 10 consecutive sub-buckets** (any window of `windowMs` aligned to sub-bucket
 *   edges). An unaligned window of `windowMs` spans 11 sub-buckets and may see up to
 *   `2 × limit` (`limit` at the end of sub-bucket n, `limit` more at the start of n + 10). After a
 *   clock step back the sub-buckets follow the limiter's own time (which stood still during it).
 * - `leakyBucket`: admissions start `1000 / ratePerSecond` ms apart. A request is given the delay
 *   until the next free start (0 when the bucket is idle) and that start is reserved; when the
 *   delay would exceed `maxQueueMs` it is rejected (-1) and reserves nothing.
 *
 * @param options validated with {@link checkRateLimitOptions} under the name `rateLimit`.
 * @throws FarcallError `invalid_argument`, reason `bad_option`, e.g. `details.option`
 *   `rateLimit.ratePerSecond`, for an invalid option.
 */
export function createRateLimiter(options: RateLimitOptions): RateLimiter {
  const o = resolveRateLimit(options, "rateLimit");
  switch (o.kind) {
    case "tokenBucket":
      return new TokenBucket(o.ratePerSecond, o.burst);
    case "slidingWindow":
      return new SlidingWindow(o.limit, o.windowMs);
    case "leakyBucket":
      return new LeakyBucket(o.ratePerSecond, o.maxQueueMs);
  }
}

class TokenBucket implements RateLimiter {
  readonly kind = "tokenBucket";
  readonly #perMs: number;
  readonly #burst: number;
  #tokens: number;
  /** The latest finite `now` (refill is measured from it); -Infinity before the first. */
  #last = Number.NEGATIVE_INFINITY;

  constructor(ratePerSecond: number, burst: number) {
    this.#perMs = ratePerSecond / 1000;
    this.#burst = burst;
    this.#tokens = burst;
  }

  tryAcquire(now: number): number {
    const elapsed = now - this.#last;
    if (Number.isFinite(now)) this.#last = now;
    // A step back, a non-finite `now` and the first call (bucket already full) refill nothing.
    if (elapsed > 0 && elapsed < Number.POSITIVE_INFINITY) {
      const tokens = this.#tokens + elapsed * this.#perMs;
      this.#tokens = tokens < this.#burst ? tokens : this.#burst;
    }
    if (this.#tokens < 1) return -1;
    this.#tokens -= 1;
    return 0;
  }
}

class SlidingWindow implements RateLimiter {
  readonly kind = "slidingWindow";
  readonly #limit: number;
  /** One series: the admissions. */
  readonly #window: WindowCounts;

  constructor(limit: number, windowMs: number) {
    this.#limit = limit;
    this.#window = new WindowCounts(windowMs, 1);
  }

  tryAcquire(now: number): number {
    const window = this.#window;
    window.advance(now);
    if (window.total(0) >= this.#limit) return -1;
    window.add(0);
    return 0;
  }
}

class LeakyBucket implements RateLimiter {
  readonly kind = "leakyBucket";
  readonly #intervalMs: number;
  readonly #maxQueueMs: number;
  /**
   * Time in ms from `#last` to the next free start. Kept relative (at most `maxQueueMs` plus one
   * interval) rather than as an epoch time so that sub-millisecond intervals stay exact: at epoch
   * scale a double resolves only about 0.24 µs.
   */
  #backlogMs = 0;
  /** The latest finite `now`; -Infinity before the first. */
  #last = Number.NEGATIVE_INFINITY;

  constructor(ratePerSecond: number, maxQueueMs: number) {
    this.#intervalMs = 1000 / ratePerSecond;
    this.#maxQueueMs = maxQueueMs;
  }

  tryAcquire(now: number): number {
    const elapsed = now - this.#last;
    let wait = this.#backlogMs;
    // A step back, a non-finite `now` and the first call leave the backlog as it was.
    if (elapsed > 0 && elapsed < Number.POSITIVE_INFINITY) wait = wait > elapsed ? wait - elapsed : 0;
    // Re-anchoring on `now` reserves nothing: the next free start stays where it was.
    if (Number.isFinite(now)) this.#last = now;
    this.#backlogMs = wait;
    if (wait > this.#maxQueueMs) return -1;
    this.#backlogMs = wait + this.#intervalMs;
    return wait;
  }
}

/** Refuses the fields of another kind that `fields` holds. */
function onlyFields(fields: Record<string, unknown>, option: string, kind: string, allowed: readonly string[]): void {
  for (const key of Object.keys(fields)) {
    if (key !== "kind" && !allowed.includes(key)) badOption(`${option}.${key}`, `not an option of kind ${kind}`);
  }
}

/** A required rate in (0, 1e7] per second. */
function rate(raw: unknown, name: string): number {
  if (typeof raw !== "number" || !(raw > 0 && raw <= maxRatePerSecond)) {
    badOption(name, `must be a number in (0, ${maxRatePerSecond}] per second, got ${show(raw)}`);
  }
  return raw;
}
