import { badOption } from "../errors/farcall-error.js";

/** Sub-buckets of the window. */
const subBuckets = 10;

/** Options of {@link AdaptiveThrottle}. */
export interface AdaptiveThrottleOptions {
  /**
   * The multiplier K: the client starts rejecting once its requests exceed K × the requests the
   * backends accepted. Lower is more aggressive (1.1), higher lets more through to the backends
   * (SRE book: 2). A number in [1, 1000]; default 2.
   */
  readonly k?: number;
  /** The window in ms over which requests and accepts are counted, kept as 10 sub-buckets. In [1, 3600000]; default 10000 (10 s; the SRE book counts over 2 minutes, which keeps refusing calls for minutes after the providers recover). */
  readonly windowMs?: number;
}

/** What {@link AdaptiveThrottle.snapshot} reports. */
export interface AdaptiveThrottleSnapshot {
  /** Requests counted in the window (those the throttle rejected included). */
  readonly requests: number;
  /** Requests the backends accepted in the window. */
  readonly accepts: number;
  /** The probability with which the next request would be rejected, in [0, 1). */
  readonly rejectProbability: number;
}

/**
 * Validates adaptive throttle options that come as data (a config file, environment JSON,
 * registry rules: untrusted) and returns a frozen copy with every default filled in (ranges in
 * {@link AdaptiveThrottleOptions}). `value` must be a plain object of own data properties with no
 * other keys; numbers must be JSON numbers.
 * @param option the name of the value in error messages and `details.option`, e.g.
 *   `adaptiveThrottle`: a bad field is reported as `adaptiveThrottle.k`.
 * @throws FarcallError `invalid_argument`, reason `bad_option`, `details.option` naming the value
 *   or the field at fault.
 */
export function checkAdaptiveThrottleOptions(value: unknown, option: string): Required<AdaptiveThrottleOptions> {
  const fields = optionFields(value, option, ["k", "windowMs"]);
  return Object.freeze({
    k: numberField(fields.k, `${option}.k`, 2, 1, 1000),
    windowMs: numberField(fields.windowMs, `${option}.windowMs`, 10_000, 1, 3_600_000),
  });
}

/**
 * Client-side adaptive throttling (Google SRE book, "Handling Overload"): a client whose backends
 * reject much of what it sends rejects some requests itself, before they cost the backends
 * anything. Over the last `windowMs` it counts `requests` (every request it was asked about,
 * rejected locally or not) and `accepts` (requests a backend accepted: any answer but an overload
 * rejection), and rejects a request with probability
 * `max(0, (requests − k × accepts) / (requests + 1))`. While the backends accept everything this
 * is 0; when they accept nothing it climbs towards 1, yet never reaches it, so a trickle of
 * requests still finds out when the backends recover.
 *
 * A request is counted when its fate is known: at once when the throttle rejects it
 * ({@link shouldReject}), when it completes otherwise ({@link completed}). Counting admitted
 * requests at admission would count a burst of calls sent before any reply came back as requests
 * with no accepts, and a closed-loop caller, whose locally rejected calls return at once and are
 * asked again, would then keep itself throttled for a whole window with healthy backends. A
 * fresh throttle never rejects. The window is a ring of 10 sub-buckets of `windowMs / 10` ms aligned to multiples
 * of `windowMs / 10` from time 0 (the current sub-bucket and the 9 before it). Pure and
 * synchronous, O(1) per call (O(10) when the window moves), no allocation except in
 * {@link snapshot}. Time is the `now` passed in (epoch ms); a `now` earlier than the latest one
 * seen, or not finite, counts as no time passing.
 * @throws FarcallError `invalid_argument`, reason `bad_option`, `details.option`
 *   `adaptiveThrottle.<field>`, from the constructor for an invalid option.
 */
export class AdaptiveThrottle {
  readonly #k: number;
  readonly #bucketMs: number;
  readonly #requests = new Float64Array(subBuckets);
  readonly #accepts = new Float64Array(subBuckets);
  #totalRequests = 0;
  #totalAccepts = 0;
  /** Index of the current sub-bucket in the arrays. */
  #slot = 0;
  /** Absolute number of the current sub-bucket, `floor(time / bucketMs)`. */
  #bucket = Number.NEGATIVE_INFINITY;
  /** The latest finite `now`. */
  #last = Number.NEGATIVE_INFINITY;
  /** Sum of the clock's steps back: the throttle's own time is `now + #skew`. */
  #skew = 0;

  /** @param options validated with {@link checkAdaptiveThrottleOptions} under the name `adaptiveThrottle`. */
  constructor(options: AdaptiveThrottleOptions = {}) {
    const o = checkAdaptiveThrottleOptions(options, "adaptiveThrottle");
    this.#k = o.k;
    this.#bucketMs = o.windowMs / subBuckets;
  }

  /**
   * Says whether to reject one request at `now`: true when `random` is below the rejection
   * probability of the current counts, and then the request is counted. An admitted request is
   * counted when it {@link completed}.
   * @param random a uniform number in [0, 1) (`Math.random()`; tests pass fixed values).
   */
  shouldReject(now: number, random: number): boolean {
    this.#roll(this.#clock(now));
    const requests = this.#totalRequests;
    const probability = (requests - this.#k * this.#totalAccepts) / (requests + 1);
    if (!(random < probability)) return false;
    const slot = this.#slot;
    this.#requests[slot] = (this.#requests[slot] as number) + 1;
    this.#totalRequests = requests + 1;
    return true;
  }

  /**
   * An admitted request completed at `now`: counted as a request, and as an accept when `accepted`
   * (a backend answered it, other than with an overload rejection).
   */
  completed(now: number, accepted: boolean): void {
    this.#roll(this.#clock(now));
    const slot = this.#slot;
    this.#requests[slot] = (this.#requests[slot] as number) + 1;
    this.#totalRequests++;
    if (!accepted) return;
    this.#accepts[slot] = (this.#accepts[slot] as number) + 1;
    this.#totalAccepts++;
  }

  /** The counts of the window at `now` and the next request's rejection probability; changes nothing. */
  snapshot(now: number): AdaptiveThrottleSnapshot {
    const at = (Number.isFinite(now) && now > this.#last ? now : this.#last) + this.#skew;
    const requests = this.#sum(this.#requests, this.#totalRequests, at);
    const accepts = this.#sum(this.#accepts, this.#totalAccepts, at);
    return Object.freeze({ requests, accepts, rejectProbability: Math.max(0, (requests - this.#k * accepts) / (requests + 1)) });
  }

  /** The throttle's own time at `now`, moving the clock. */
  #clock(now: number): number {
    if (Number.isFinite(now)) {
      if (now < this.#last) this.#skew += this.#last - now;
      this.#last = now;
    }
    return this.#last + this.#skew;
  }

  /** Makes the sub-bucket of own time `at` the current one, emptying those that left the window. */
  #roll(at: number): void {
    const bucket = Math.floor(at / this.#bucketMs);
    const steps = bucket - this.#bucket;
    if (!(steps > 0)) return;
    this.#bucket = bucket;
    if (steps >= subBuckets) {
      this.#requests.fill(0);
      this.#accepts.fill(0);
      this.#totalRequests = 0;
      this.#totalAccepts = 0;
      return;
    }
    for (let i = 0; i < steps; i++) {
      const slot = (this.#slot + 1) % subBuckets;
      this.#totalRequests -= this.#requests[slot] as number;
      this.#totalAccepts -= this.#accepts[slot] as number;
      this.#requests[slot] = 0;
      this.#accepts[slot] = 0;
      this.#slot = slot;
    }
  }

  /** The total of `counts` as it will be once the window has moved to own time `at`. */
  #sum(counts: Float64Array, total: number, at: number): number {
    const steps = Math.floor(at / this.#bucketMs) - this.#bucket;
    if (!(steps > 0)) return total;
    if (steps >= subBuckets) return 0;
    let sum = total;
    for (let i = 1; i <= steps; i++) sum -= counts[(this.#slot + i) % subBuckets] as number;
    return sum;
  }
}

/** The own data properties of `value`, which must be a plain object with keys among `known`. */
function optionFields(value: unknown, option: string, known: readonly string[]): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return badOption(option, `must be an object, got ${show(value)}`);
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) badOption(option, "must be a plain object");
  const fields: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) badOption(`${option}.${key}`, `unknown option (known: ${known.join(", ")})`);
    const descriptor = Object.getOwnPropertyDescriptor(value, key);
    if (descriptor === undefined || !("value" in descriptor)) badOption(`${option}.${key}`, "must be a data property");
    fields[key] = descriptor.value;
  }
  return fields;
}

/** `raw` as a number in [min, max]; `fallback` when undefined. */
function numberField(raw: unknown, name: string, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  if (typeof raw !== "number" || !Number.isFinite(raw) || raw < min || raw > max) badOption(name, `must be a number in [${min}, ${max}], got ${show(raw)}`);
  return raw;
}

/** A short description of an untrusted value for an error message. */
function show(value: unknown): string {
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return value === null ? "null" : Array.isArray(value) ? "an array" : typeof value;
}
