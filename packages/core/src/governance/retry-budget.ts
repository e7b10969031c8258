import { optionFields, numberField } from "./option-fields.js";
import { WindowCounts } from "./window-counts.js";

const deposits = 0;
const retries = 1;

/** Options of {@link RetryBudget}. */
export interface RetryBudgetOptions {
  /** Retries allowed as a share of the original calls (deposits) of the last `ttlMs`; in [0, 1]. Default 0.2. */
  readonly percent?: number;
  /**
   * Retries allowed per second when that share is smaller (a floor, not an addition), so that a
   * client with few calls can still retry; in [0, 1e7]. Default 10.
   */
  readonly minPerSecond?: number;
  /** How long, in ms, a deposit or a retry counts; kept as 10 sub-buckets. In [1, 3600000]; default 10000. */
  readonly ttlMs?: number;
}

/**
 * Validates retry budget options that come as data (a config file, environment JSON, registry
 * rules: untrusted) and returns a frozen copy with every default filled in (ranges in
 * {@link RetryBudgetOptions}). `value` must be a plain object of own data properties with no other
 * keys; numbers must be JSON numbers.
 * @param option the name of the value in error messages and `details.option`, e.g. `retryBudget`:
 *   a bad field is reported as `retryBudget.percent`.
 * @throws FarcallError `invalid_argument`, reason `bad_option`, `details.option` naming the value
 *   or the field at fault.
 */
export function checkRetryBudgetOptions(value: unknown, option: string): Required<RetryBudgetOptions> {
  const fields = optionFields(value, option, ["percent", "minPerSecond", "ttlMs"]);
  return Object.freeze({
    percent: numberField(fields.percent, `${option}.percent`, 0.2, 0, 1),
    minPerSecond: numberField(fields.minPerSecond, `${option}.minPerSecond`, 10, 0, 1e7),
    ttlMs: numberField(fields.ttlMs, `${option}.ttlMs`, 10_000, 1, 3_600_000),
  });
}

/**
 * A retry budget (Envoy's and Finagle's, grpc's retry throttling in spirit): retries may add at
 * most `percent` to the load of original calls, or a small floor when that is more. Each original
 * call deposits ({@link deposit}); each retry asks ({@link tryWithdraw}) and is allowed while the
 * retries of the last `ttlMs` number fewer than
 * `max(percent × deposits of the last ttlMs, minPerSecond × ttlMs / 1000)`. So when every call
 * fails, retries stop at `percent` of the calls (for a client making more than
 * `minPerSecond / percent` calls per second; fewer calls may retry up to the floor) instead of
 * multiplying the load on a struggling provider. The floor is a minimum, as Envoy's
 * `min_retry_concurrency`, not an addition as Finagle's `minRetriesPerSec`: a busy client's
 * retries then stay within `percent` exactly.
 *
 * "The last `ttlMs`" is a ring of 10 sub-buckets of `ttlMs / 10` ms, aligned to multiples of
 * `ttlMs / 10` from time 0: the current sub-bucket and the 9 before it. Guarantee (property
 * tested): the retries allowed in any 10 consecutive sub-buckets number at most
 * `⌈max(percent × D, minPerSecond × ttlMs / 1000)⌉`, D being the deposits of those sub-buckets **and
 * of the 9 before them** (deposits up to 0.9 × ttlMs older than the window can pay for its first
 * retries: that is the bucket granularity).
 *
 * Pure and synchronous, O(1) per call (O(10) when the window moves), no allocation. Time is the
 * `now` passed in (epoch ms); a `now` earlier than the latest one seen, or not finite, counts as no
 * time passing.
 * @throws FarcallError `invalid_argument`, reason `bad_option`, `details.option`
 *   `retryBudget.<field>`, from the constructor for an invalid option.
 */
export class RetryBudget {
  readonly #percent: number;
  /** Retries allowed per window without deposits: `minPerSecond × ttlMs / 1000`. */
  readonly #floor: number;
  /** Series 0: deposits; 1: retries. */
  readonly #window: WindowCounts;
  #exhausted = 0;

  /** @param options validated with {@link checkRetryBudgetOptions} under the name `retryBudget`. */
  constructor(options: RetryBudgetOptions = {}) {
    const o = checkRetryBudgetOptions(options, "retryBudget");
    this.#percent = o.percent;
    this.#floor = (o.minPerSecond * o.ttlMs) / 1000;
    this.#window = new WindowCounts(o.ttlMs, 2);
  }

  /** Withdrawals refused since the budget was created. */
  get exhausted(): number {
    return this.#exhausted;
  }

  /** One original call (not a retry) at `now`. */
  deposit(now: number): void {
    this.#window.advance(now);
    this.#window.add(deposits);
  }

  /** Asks for one retry at `now`: true, and counted, when the budget allows it; false, and counted in {@link exhausted}, otherwise. */
  tryWithdraw(now: number): boolean {
    const window = this.#window;
    window.advance(now);
    if (!(window.total(retries) < Math.max(this.#percent * window.total(deposits), this.#floor))) {
      this.#exhausted++;
      return false;
    }
    window.add(retries);
    return true;
  }

  /**
   * Retries still allowed at `now`: `max(percent × deposits, floor) − retries` over the last `ttlMs`
   * (fractional; negative when deposits have left the window faster than retries). Changes nothing.
   */
  balance(now: number): number {
    const window = this.#window;
    const at = window.peek(now);
    return Math.max(this.#percent * window.totalAt(deposits, at), this.#floor) - window.totalAt(retries, at);
  }
}
