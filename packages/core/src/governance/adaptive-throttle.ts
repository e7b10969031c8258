import { optionFields, numberField } from "./option-fields.js";
import { WindowCounts } from "./window-counts.js";

const requests = 0;
const accepts = 1;

/** Options of {@link AdaptiveThrottle}. */
export interface AdaptiveThrottleOptions {
  /**
   * The multiplier K: the client starts rejecting once its requests exceed K × the requests the
   * backends accepted. Lower is more aggressive (1.1), higher lets more through to the backends
   * (SRE book: 2). A number in [1, 1000]; default 2.
   */
  readonly k?: number;
  /**
   * The window in ms over which requests and accepts are counted, kept as 10 sub-buckets. In
   * [1, 3600000]; default 5000. After a step down from 3 × overload the throttle stops refusing
   * about 2/3 of a window later (when the window's requests fall below k × its accepts): about
   * 3.5 s at 5 s. The SRE book counts over 2 minutes, which keeps refusing calls for over a minute
   * after the providers recover.
   */
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
    windowMs: numberField(fields.windowMs, `${option}.windowMs`, 5_000, 1, 3_600_000),
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
  /** Series 0: requests; 1: accepts. */
  readonly #window: WindowCounts;

  /** @param options validated with {@link checkAdaptiveThrottleOptions} under the name `adaptiveThrottle`. */
  constructor(options: AdaptiveThrottleOptions = {}) {
    const o = checkAdaptiveThrottleOptions(options, "adaptiveThrottle");
    this.#k = o.k;
    this.#window = new WindowCounts(o.windowMs, 2);
  }

  /**
   * Says whether to reject one request at `now`: true when `random` is below the rejection
   * probability of the current counts, and then the request is counted. An admitted request is
   * counted when it {@link completed}.
   * @param random a uniform number in [0, 1) (`Math.random()`; tests pass fixed values).
   */
  shouldReject(now: number, random: number): boolean {
    const window = this.#window;
    window.advance(now);
    const total = window.total(requests);
    const probability = (total - this.#k * window.total(accepts)) / (total + 1);
    if (!(random < probability)) return false;
    window.add(requests);
    return true;
  }

  /**
   * An admitted request completed at `now`: counted as a request, and as an accept when `accepted`
   * (a backend answered it, other than with an overload rejection).
   */
  completed(now: number, accepted: boolean): void {
    const window = this.#window;
    window.advance(now);
    window.add(requests);
    if (accepted) window.add(accepts);
  }

  /** The counts of the window at `now` and the next request's rejection probability; changes nothing. */
  snapshot(now: number): AdaptiveThrottleSnapshot {
    const window = this.#window;
    const at = window.peek(now);
    const total = window.totalAt(requests, at);
    const accepted = window.totalAt(accepts, at);
    return Object.freeze({ requests: total, accepts: accepted, rejectProbability: Math.max(0, (total - this.#k * accepted) / (total + 1)) });
  }
}
