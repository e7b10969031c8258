import { badOption } from "../errors/farcall-error.js";

/** Sub-buckets of the ttl window. */
const subBuckets = 10;

/** Options of {@link RetryBudget}. */
export interface RetryBudgetOptions {
  /** Retries allowed as a share of the original calls (deposits) of the last `ttlMs`; in [0, 1]. Default 0.2. */
  readonly percent?: number;
  /**
   * Retries allowed per second on top of that share, so that a client with few calls can still
   * retry; in [0, 1e7]. Default 10.
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
 * A retry budget (Finagle's, and grpc's retry throttling in spirit): retries may add at most
 * `percent` to the load of original calls, plus a small floor. Each original call deposits
 * ({@link deposit}); each retry asks ({@link tryWithdraw}) and is allowed while the retries of the
 * last `ttlMs` number fewer than `percent × deposits of the last ttlMs + minPerSecond × ttlMs / 1000`.
 * So when every call fails, retries stop at about `percent` of the calls instead of multiplying
 * the load on a struggling provider.
 *
 * "The last `ttlMs`" is a ring of 10 sub-buckets of `ttlMs / 10` ms, aligned to multiples of
 * `ttlMs / 10` from time 0: the current sub-bucket and the 9 before it. Guarantee (property
 * tested): the retries allowed in any 10 consecutive sub-buckets number at most
 * `⌈percent × D + minPerSecond × ttlMs / 1000⌉`, D being the deposits of those sub-buckets **and
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
  readonly #bucketMs: number;
  readonly #deposits = new Float64Array(subBuckets);
  readonly #retries = new Float64Array(subBuckets);
  #totalDeposits = 0;
  #totalRetries = 0;
  /** Index of the current sub-bucket in the arrays. */
  #slot = 0;
  /** Absolute number of the current sub-bucket, `floor(time / bucketMs)`. */
  #bucket = Number.NEGATIVE_INFINITY;
  /** The latest finite `now`. */
  #last = Number.NEGATIVE_INFINITY;
  /** Sum of the clock's steps back: the budget's own time is `now + #skew`. */
  #skew = 0;
  #exhausted = 0;

  /** @param options validated with {@link checkRetryBudgetOptions} under the name `retryBudget`. */
  constructor(options: RetryBudgetOptions = {}) {
    const o = checkRetryBudgetOptions(options, "retryBudget");
    this.#percent = o.percent;
    this.#floor = (o.minPerSecond * o.ttlMs) / 1000;
    this.#bucketMs = o.ttlMs / subBuckets;
  }

  /** Withdrawals refused since the budget was created. */
  get exhausted(): number {
    return this.#exhausted;
  }

  /** One original call (not a retry) at `now`. */
  deposit(now: number): void {
    this.#roll(this.#clock(now));
    const slot = this.#slot;
    this.#deposits[slot] = (this.#deposits[slot] as number) + 1;
    this.#totalDeposits++;
  }

  /** Asks for one retry at `now`: true, and counted, when the budget allows it; false, and counted in {@link exhausted}, otherwise. */
  tryWithdraw(now: number): boolean {
    this.#roll(this.#clock(now));
    if (!(this.#totalRetries < this.#percent * this.#totalDeposits + this.#floor)) {
      this.#exhausted++;
      return false;
    }
    const slot = this.#slot;
    this.#retries[slot] = (this.#retries[slot] as number) + 1;
    this.#totalRetries++;
    return true;
  }

  /**
   * Retries still allowed at `now`: `percent × deposits + floor − retries` over the last `ttlMs`
   * (fractional; negative when deposits have left the window faster than retries). Changes nothing.
   */
  balance(now: number): number {
    const at = (Number.isFinite(now) && now > this.#last ? now : this.#last) + this.#skew;
    return this.#percent * this.#sum(this.#deposits, this.#totalDeposits, at) + this.#floor - this.#sum(this.#retries, this.#totalRetries, at);
  }

  /** The budget's own time at `now`, moving the clock. */
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
      this.#deposits.fill(0);
      this.#retries.fill(0);
      this.#totalDeposits = 0;
      this.#totalRetries = 0;
      return;
    }
    for (let i = 0; i < steps; i++) {
      const slot = (this.#slot + 1) % subBuckets;
      this.#totalDeposits -= this.#deposits[slot] as number;
      this.#totalRetries -= this.#retries[slot] as number;
      this.#deposits[slot] = 0;
      this.#retries[slot] = 0;
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
