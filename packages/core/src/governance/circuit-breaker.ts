import { debuglog } from "node:util";
import { badOption } from "../errors/farcall-error.js";
import type { BreakerState } from "./limiter.js";

const debug = debuglog("farcall:governance");

/** Sub-buckets of the statistics window. */
const subBuckets = 10;
const maxDurationMs = 3_600_000;

/** What opens a circuit breaker, judged on the calls of its window. */
export type CircuitBreakerStrategy = "errorRatio" | "errorCount" | "slowCallRatio";

/** Options of {@link CircuitBreaker}. Durations in ms. */
export interface CircuitBreakerOptions {
  /**
   * `errorRatio`: errors / calls ≥ `threshold`; `errorCount`: errors ≥ `threshold`;
   * `slowCallRatio`: slow calls / calls ≥ `threshold`. Default `errorRatio`.
   */
  readonly strategy?: CircuitBreakerStrategy;
  /**
   * For the ratio strategies a ratio in (0, 1], default 0.5; for `errorCount` an integer in
   * [1, 1e9], default 5.
   */
  readonly threshold?: number;
  /** A call that took longer than this, in ms, is slow (errors included). In (0, 3600000]; default 1000. */
  readonly slowCallMs?: number;
  /** Calls in the window before the breaker may open; an integer in [1, 1e9]. Default 10. */
  readonly minCalls?: number;
  /** The statistics window in ms, kept as 10 sub-buckets of `windowMs / 10`. In [1, 3600000]; default 10000. */
  readonly windowMs?: number;
  /** Time in ms the breaker stays open before it lets probes through. In [1, 3600000]; default 10000. */
  readonly openMs?: number;
  /** Probes admitted while half-open; an integer in [1, 1000]. Default 1. */
  readonly halfOpenCalls?: number;
}

/** Called synchronously on every state change, exactly once per transition, in order. */
export type BreakerStateListener = (from: BreakerState, to: BreakerState, now: number) => void;

/** What {@link CircuitBreaker.snapshot} reports. */
export interface CircuitBreakerSnapshot {
  readonly state: BreakerState;
  /** Results recorded in the window (only while closed; cleared when it closes again). */
  readonly calls: number;
  readonly errors: number;
  readonly slowCalls: number;
  /** `now` at which the breaker last opened; present while open or half-open. */
  readonly openedAt?: number;
  /** How many times it has opened since it was created. */
  readonly timesOpened: number;
}

/**
 * Validates circuit breaker options that come as data (a config file, environment JSON, registry
 * rules: untrusted) and returns a frozen copy with every default filled in (see
 * {@link CircuitBreakerOptions} for the ranges). `value` must be a plain object of own data
 * properties with no other keys; numbers must be JSON numbers.
 * @param option the name of the value in error messages and `details.option`, e.g.
 *   `circuitBreaker`: a bad field is reported as `circuitBreaker.threshold`.
 * @throws FarcallError `invalid_argument`, reason `bad_option`, `details.option` naming the value
 *   or the field at fault.
 */
export function checkCircuitBreakerOptions(value: unknown, option: string): Required<CircuitBreakerOptions> {
  const fields = optionFields(value, option, ["strategy", "threshold", "slowCallMs", "minCalls", "windowMs", "openMs", "halfOpenCalls"]);
  const strategy = fields.strategy === undefined ? "errorRatio" : fields.strategy;
  if (strategy !== "errorRatio" && strategy !== "errorCount" && strategy !== "slowCallRatio") {
    return badOption(`${option}.strategy`, `must be errorRatio, errorCount or slowCallRatio, got ${show(strategy)}`);
  }
  let threshold: number;
  if (strategy === "errorCount") {
    threshold = numberField(fields.threshold, `${option}.threshold`, 5, 1, 1e9, true);
  } else {
    const raw = fields.threshold === undefined ? 0.5 : fields.threshold;
    if (typeof raw !== "number" || !(raw > 0 && raw <= 1)) badOption(`${option}.threshold`, `must be a ratio in (0, 1], got ${show(raw)}`);
    threshold = raw;
  }
  const slowCallMs = numberField(fields.slowCallMs, `${option}.slowCallMs`, 1000, 0, maxDurationMs, false);
  if (slowCallMs === 0) badOption(`${option}.slowCallMs`, "must be more than 0 ms");
  return Object.freeze({
    strategy,
    threshold,
    slowCallMs,
    minCalls: numberField(fields.minCalls, `${option}.minCalls`, 10, 1, 1e9, true),
    windowMs: numberField(fields.windowMs, `${option}.windowMs`, 10_000, 1, maxDurationMs, false),
    openMs: numberField(fields.openMs, `${option}.openMs`, 10_000, 1, maxDurationMs, false),
    halfOpenCalls: numberField(fields.halfOpenCalls, `${option}.halfOpenCalls`, 1, 1, 1000, true),
  });
}

/**
 * A circuit breaker (resilience4j's and Sentinel's state machine) for one resource, e.g. one
 * provider or one method. Pure and synchronous: no timers; time is the `now` passed in (epoch ms).
 * A `now` earlier than the latest one seen (a clock stepped back), or not finite, counts as no time
 * passing: the window and the open time neither jump nor stall by the size of the step.
 *
 * - **closed**: every call is admitted; each result (`onSuccess`, `onError`) is recorded in the
 *   window, then the breaker opens when the window holds at least `minCalls` calls and the
 *   strategy's test passes (a slow call is one slower than `slowCallMs`, success or error).
 * - **open**: nothing is admitted until `openMs` has passed since it opened; the first
 *   `tryAcquire` after that turns it half-open (the listener fires) and is admitted as a probe.
 *   Results arriving while open (calls admitted before it opened) are ignored.
 * - **halfOpen**: exactly `halfOpenCalls` probes are admitted in all, then nothing until they
 *   report. A probe error (for `slowCallRatio` also a slow probe) opens it again, `openMs`
 *   counting anew; when all `halfOpenCalls` probes have succeeded it closes with an empty window.
 *   `onIgnored` (a probe that ended neither way, e.g. canceled) gives a probe permit back.
 *   Results are not matched to permits: while probes are out, any result counts as a probe's;
 *   with none out, results are ignored.
 *
 * The listener runs synchronously inside the call that caused the transition, after the state has
 * changed; one that throws is logged (`NODE_DEBUG=farcall:governance`) and otherwise ignored.
 * O(1) per call (O(10) when the window moves), no allocation except in {@link snapshot}.
 *
 * @throws FarcallError `invalid_argument`, reason `bad_option`, `details.option`
 *   `circuitBreaker.<field>`, from the constructor for an invalid option.
 */
export class CircuitBreaker {
  readonly #strategy: CircuitBreakerStrategy;
  readonly #threshold: number;
  readonly #slowCallMs: number;
  readonly #minCalls: number;
  readonly #bucketMs: number;
  readonly #openMs: number;
  readonly #halfOpenCalls: number;
  readonly #onStateChange: BreakerStateListener | undefined;
  #state: BreakerState = "closed";
  readonly #calls = new Float64Array(subBuckets);
  readonly #errors = new Float64Array(subBuckets);
  readonly #slow = new Float64Array(subBuckets);
  #totalCalls = 0;
  #totalErrors = 0;
  #totalSlow = 0;
  /** Index of the current sub-bucket in the arrays. */
  #slot = 0;
  /** Absolute number of the current sub-bucket, `floor(time / bucketMs)`. */
  #bucket = Number.NEGATIVE_INFINITY;
  /** The latest finite `now`. */
  #last = Number.NEGATIVE_INFINITY;
  /** Sum of the clock's steps back: the breaker's own time is `now + #skew`. */
  #skew = 0;
  #openedAt: number | undefined;
  /** Own time at which it last opened. */
  #openedAtOwn = 0;
  #timesOpened = 0;
  /** Half-open: probe permits taken (minus those given back), probes not reported, probes succeeded. */
  #probes = 0;
  #pending = 0;
  #succeeded = 0;

  /**
   * @param options validated with {@link checkCircuitBreakerOptions} under the name `circuitBreaker`.
   * @param onStateChange told of every transition, with the `now` of the call that caused it.
   */
  constructor(options: CircuitBreakerOptions = {}, onStateChange?: BreakerStateListener) {
    const o = checkCircuitBreakerOptions(options, "circuitBreaker");
    this.#strategy = o.strategy;
    this.#threshold = o.threshold;
    this.#slowCallMs = o.slowCallMs;
    this.#minCalls = o.minCalls;
    this.#bucketMs = o.windowMs / subBuckets;
    this.#openMs = o.openMs;
    this.#halfOpenCalls = o.halfOpenCalls;
    this.#onStateChange = onStateChange;
  }

  /** Whether a call may go ahead at `now`; counts a probe when half-open. See the class. */
  tryAcquire(now: number): boolean {
    const at = this.#clock(now);
    if (this.#state === "open") {
      if (!(at - this.#openedAtOwn >= this.#openMs)) return false;
      this.#probes = 0;
      this.#pending = 0;
      this.#succeeded = 0;
      this.#enter("halfOpen", now);
    }
    // Read again: a listener may have reported a result, and moved the state, meanwhile.
    const state: BreakerState = this.#state;
    if (state !== "halfOpen") return state === "closed";
    if (this.#probes >= this.#halfOpenCalls) return false;
    this.#probes++;
    this.#pending++;
    return true;
  }

  /** An admitted call succeeded after `latencyMs` (slow when above `slowCallMs`). */
  onSuccess(now: number, latencyMs: number): void {
    this.#record(now, latencyMs, false);
  }

  /** An admitted call failed in a way that counts against the resource, after `latencyMs`. */
  onError(now: number, latencyMs: number): void {
    this.#record(now, latencyMs, true);
  }

  /** An admitted call ended neither way (e.g. canceled): not recorded; a half-open probe permit is given back. */
  onIgnored(now: number): void {
    this.#clock(now);
    if (this.#state === "halfOpen" && this.#pending > 0) {
      this.#pending--;
      this.#probes--;
    }
  }

  /** The state at `now`, reporting `halfOpen` once `openMs` has passed; changes nothing, fires nothing. */
  state(now: number): BreakerState {
    if (this.#state === "open" && this.#peek(now) - this.#openedAtOwn >= this.#openMs) return "halfOpen";
    return this.#state;
  }

  /** The state and the window's counts at `now`; changes nothing. */
  snapshot(now: number): CircuitBreakerSnapshot {
    const at = this.#peek(now);
    const state = this.state(now);
    const snapshot = {
      state,
      calls: this.#sum(this.#calls, this.#totalCalls, at),
      errors: this.#sum(this.#errors, this.#totalErrors, at),
      slowCalls: this.#sum(this.#slow, this.#totalSlow, at),
      timesOpened: this.#timesOpened,
    };
    return Object.freeze(state === "closed" || this.#openedAt === undefined ? snapshot : { ...snapshot, openedAt: this.#openedAt });
  }

  #record(now: number, latencyMs: number, error: boolean): void {
    const at = this.#clock(now);
    const slow = latencyMs > this.#slowCallMs;
    if (this.#state === "closed") {
      this.#roll(at);
      const slot = this.#slot;
      this.#calls[slot] = (this.#calls[slot] as number) + 1;
      this.#totalCalls++;
      if (error) {
        this.#errors[slot] = (this.#errors[slot] as number) + 1;
        this.#totalErrors++;
      }
      if (slow) {
        this.#slow[slot] = (this.#slow[slot] as number) + 1;
        this.#totalSlow++;
      }
      if (this.#tripped()) this.#open(now, at);
    } else if (this.#state === "halfOpen" && this.#pending > 0) {
      this.#pending--;
      if (error || (slow && this.#strategy === "slowCallRatio")) {
        this.#open(now, at);
      } else if (++this.#succeeded >= this.#halfOpenCalls) {
        this.#clear();
        this.#enter("closed", now);
      }
    }
  }

  #tripped(): boolean {
    const calls = this.#totalCalls;
    if (calls < this.#minCalls) return false;
    switch (this.#strategy) {
      case "errorRatio":
        return this.#totalErrors / calls >= this.#threshold;
      case "errorCount":
        return this.#totalErrors >= this.#threshold;
      case "slowCallRatio":
        return this.#totalSlow / calls >= this.#threshold;
    }
  }

  #open(now: number, at: number): void {
    this.#openedAt = now;
    this.#openedAtOwn = at;
    this.#timesOpened++;
    this.#enter("open", now);
  }

  #enter(to: BreakerState, now: number): void {
    const from = this.#state;
    this.#state = to;
    const listener = this.#onStateChange;
    if (listener === undefined) return;
    try {
      listener(from, to, now);
    } catch (error) {
      debug("circuit breaker state listener threw: %o", error);
    }
  }

  /** The breaker's own time at `now`, moving the clock. */
  #clock(now: number): number {
    if (Number.isFinite(now)) {
      if (now < this.#last) this.#skew += this.#last - now;
      this.#last = now;
    }
    return this.#last + this.#skew;
  }

  /** The breaker's own time at `now`, without moving the clock. */
  #peek(now: number): number {
    return (Number.isFinite(now) && now > this.#last ? now : this.#last) + this.#skew;
  }

  /** Makes the sub-bucket of own time `at` the current one, emptying those that left the window. */
  #roll(at: number): void {
    const bucket = Math.floor(at / this.#bucketMs);
    const steps = bucket - this.#bucket;
    if (!(steps > 0)) return;
    this.#bucket = bucket;
    if (steps >= subBuckets) {
      this.#clear();
      return;
    }
    for (let i = 0; i < steps; i++) {
      const slot = (this.#slot + 1) % subBuckets;
      this.#totalCalls -= this.#calls[slot] as number;
      this.#totalErrors -= this.#errors[slot] as number;
      this.#totalSlow -= this.#slow[slot] as number;
      this.#calls[slot] = 0;
      this.#errors[slot] = 0;
      this.#slow[slot] = 0;
      this.#slot = slot;
    }
  }

  #clear(): void {
    this.#calls.fill(0);
    this.#errors.fill(0);
    this.#slow.fill(0);
    this.#totalCalls = 0;
    this.#totalErrors = 0;
    this.#totalSlow = 0;
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

/** `raw` as a number in [min, max] (an integer when `integer`); `fallback` when undefined. */
function numberField(raw: unknown, name: string, fallback: number, min: number, max: number, integer: boolean): number {
  if (raw === undefined) return fallback;
  if (typeof raw !== "number" || !Number.isFinite(raw) || raw < min || raw > max || (integer && !Number.isInteger(raw))) {
    badOption(name, `must be ${integer ? "an integer" : "a number"} in [${min}, ${max}], got ${show(raw)}`);
  }
  return raw;
}

/** A short description of an untrusted value for an error message. */
function show(value: unknown): string {
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return value === null ? "null" : Array.isArray(value) ? "an array" : typeof value;
}
