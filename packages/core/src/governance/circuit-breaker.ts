import { debuglog } from "node:util";
import { badOption } from "../errors/farcall-error.js";
import type { BreakerState } from "./limiter.js";
import { optionFields, numberField, show } from "./option-fields.js";
import { WindowCounts } from "./window-counts.js";

const debug = debuglog("farcall:governance");

/** Series of the statistics window. */
const calls = 0;
const errors = 1;
const slowCalls = 2;
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
  readonly #openMs: number;
  readonly #halfOpenCalls: number;
  readonly #onStateChange: BreakerStateListener | undefined;
  #state: BreakerState = "closed";
  /** Series 0: calls; 1: errors; 2: slow calls. Its own time is the breaker's. */
  readonly #window: WindowCounts;
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
    this.#window = new WindowCounts(o.windowMs, 3);
    this.#openMs = o.openMs;
    this.#halfOpenCalls = o.halfOpenCalls;
    this.#onStateChange = onStateChange;
  }

  /** Whether a call may go ahead at `now`; counts a probe when half-open. See the class. */
  tryAcquire(now: number): boolean {
    const at = this.#window.time(now);
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
    this.#window.time(now);
    if (this.#state === "halfOpen" && this.#pending > 0) {
      this.#pending--;
      this.#probes--;
    }
  }

  /** The state at `now`, reporting `halfOpen` once `openMs` has passed; changes nothing, fires nothing. */
  state(now: number): BreakerState {
    if (this.#state === "open" && this.#window.peek(now) - this.#openedAtOwn >= this.#openMs) return "halfOpen";
    return this.#state;
  }

  /** The state and the window's counts at `now`; changes nothing. */
  snapshot(now: number): CircuitBreakerSnapshot {
    const window = this.#window;
    const at = window.peek(now);
    const state = this.state(now);
    const snapshot = {
      state,
      calls: window.totalAt(calls, at),
      errors: window.totalAt(errors, at),
      slowCalls: window.totalAt(slowCalls, at),
      timesOpened: this.#timesOpened,
    };
    return Object.freeze(state === "closed" || this.#openedAt === undefined ? snapshot : { ...snapshot, openedAt: this.#openedAt });
  }

  #record(now: number, latencyMs: number, error: boolean): void {
    const window = this.#window;
    const at = window.time(now);
    const slow = latencyMs > this.#slowCallMs;
    if (this.#state === "closed") {
      window.roll(at);
      window.add(calls);
      if (error) window.add(errors);
      if (slow) window.add(slowCalls);
      if (this.#tripped()) this.#open(now, at);
    } else if (this.#state === "halfOpen" && this.#pending > 0) {
      this.#pending--;
      if (error || (slow && this.#strategy === "slowCallRatio")) {
        this.#open(now, at);
      } else if (++this.#succeeded >= this.#halfOpenCalls) {
        this.#window.clear();
        this.#enter("closed", now);
      }
    }
  }

  #tripped(): boolean {
    const window = this.#window;
    const total = window.total(calls);
    if (total < this.#minCalls) return false;
    switch (this.#strategy) {
      case "errorRatio":
        return window.total(errors) / total >= this.#threshold;
      case "errorCount":
        return window.total(errors) >= this.#threshold;
      case "slowCallRatio":
        return window.total(slowCalls) / total >= this.#threshold;
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





}
