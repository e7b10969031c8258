import { monitorEventLoopDelay } from "node:perf_hooks";
import { badOption } from "../errors/farcall-error.js";

/**
 * Server-wide load shedding (`ServerOptions.loadShedding`). A request refused by it is
 * answered `resource_exhausted` with `details.reason` `"overloaded"` from its header alone: its body
 * is never decoded and nothing runs (a oneway request is dropped).
 */
export interface LoadSheddingOptions {
  /**
   * Calls running at once on the whole server, over all connections (a call waiting for its leaky
   * bucket turn counts). A request beyond it is answered `overloaded` with `retryAfterMs` 0 (a slot
   * frees as soon as any call finishes). Default: no server-wide cap.
   */
  readonly maxConcurrentCalls?: number;
  /**
   * Event-loop delay, in ms, above which the admission probability is cut: every `intervalMs` the
   * longest delay seen in that interval is compared with it. Default 50.
   */
  readonly targetDelayMs?: number;
  /**
   * Measurement period, in ms: the admission probability is adjusted once per interval. Also the
   * `retryAfterMs` sent with a request shed by probability. Default 100.
   */
  readonly intervalMs?: number;
  /** Uniform numbers in [0, 1) for the admission draws (tests pass a fixed or seeded one). Default `Math.random`. */
  readonly random?: () => number;
}

/** {@link LoadSheddingOptions} with defaults applied; frozen. */
export interface ResolvedLoadShedding {
  /** `Infinity` when there is no server-wide cap. */
  readonly maxConcurrentCalls: number;
  readonly targetDelayMs: number;
  readonly intervalMs: number;
  readonly random: () => number;
}

/** Default of {@link LoadSheddingOptions.targetDelayMs}, in ms. */
export const defaultTargetDelayMs = 50;
/** Default of {@link LoadSheddingOptions.intervalMs}, in ms. */
export const defaultLoadSheddingIntervalMs = 100;
/** The admission probability never falls below this: some requests always get through to show recovery. */
export const minAdmissionProbability = 0.05;
/** Multiplicative decrease applied to the admission probability after an interval over target. */
export const admissionDecreaseFactor = 0.75;
/** Additive increase applied to the admission probability after an interval at or under target. */
export const admissionIncreaseStep = 0.1;

/**
 * Validates and defaults load-shedding options once, at server construction.
 * @param name the options' name in error reasons (`details.option` is `${name}.<field>`). Default `"loadShedding"`.
 * @throws FarcallError `invalid_argument` (reason `bad_option`, `details.option` e.g.
 *   `loadShedding.intervalMs`) when the options are not an object, `maxConcurrentCalls` or `intervalMs` is not a positive integer,
 *   `targetDelayMs` is not a positive finite number or `random` is not a function.
 */
export function resolveLoadShedding(options: LoadSheddingOptions, name = "loadShedding"): ResolvedLoadShedding {
  if (typeof options !== "object" || options === null) badOption(name, "must be an object of load-shedding options");
  const max = options.maxConcurrentCalls;
  if (max !== undefined && (!Number.isSafeInteger(max) || max < 1)) badOption(`${name}.maxConcurrentCalls`, "must be a positive integer");
  const targetDelayMs = options.targetDelayMs ?? defaultTargetDelayMs;
  if (!Number.isFinite(targetDelayMs) || targetDelayMs <= 0) badOption(`${name}.targetDelayMs`, "must be a positive number of ms");
  const intervalMs = options.intervalMs ?? defaultLoadSheddingIntervalMs;
  if (!Number.isSafeInteger(intervalMs) || intervalMs < 1) badOption(`${name}.intervalMs`, "must be a positive integer of ms");
  const random = options.random ?? Math.random;
  if (typeof random !== "function") badOption(`${name}.random`, "must be a function");
  return Object.freeze({ maxConcurrentCalls: max ?? Infinity, targetDelayMs, intervalMs, random });
}

/**
 * Checks load-shedding options without keeping them, for a caller that validates its own options
 * at construction (the server resolves them again).
 * @throws FarcallError as {@link resolveLoadShedding}, naming the fields `${name}.<field>`.
 */
export function checkLoadSheddingOptions(options: unknown, name = "loadShedding"): LoadSheddingOptions {
  if (Array.isArray(options)) badOption(name, "must be an object of load-shedding options");
  if (typeof options === "object" && options !== null) {
    for (const key of Object.keys(options)) {
      if (!["maxConcurrentCalls", "targetDelayMs", "intervalMs", "random"].includes(key)) badOption(`${name}.${key}`, "unknown load-shedding option");
    }
  }
  resolveLoadShedding(options as LoadSheddingOptions, name);
  return options as LoadSheddingOptions;
}

/** Options of {@link LoadShedder}. */
export interface LoadShedderOptions {
  /** Delay in ms above which the admission probability is cut. */
  readonly targetDelayMs: number;
  /** Period in ms of {@link LoadShedder.start}'s timer. */
  readonly intervalMs: number;
  /** The event-loop delay in ms measured since its previous call; called once per interval. */
  readonly measureDelayMs: () => number;
  /** Uniform numbers in [0, 1). Default `Math.random`. */
  readonly random?: () => number;
}

/**
 * Event-loop-delay admission control (AIMD on an admission probability p, starting at 1). Once per
 * interval ({@link tick}) the measured delay is compared with the target: above it,
 * p ← max(0.05, p × 0.75); otherwise p ← min(1, p + 0.1). Each request is admitted with probability
 * p ({@link admit}). Pure logic: the measurement, the randomness and the timer's driver are
 * injected, so tests call {@link tick} with chosen delays. Owned by the server, which calls
 * {@link start} when it listens and {@link stop} when it closes.
 */
export class LoadShedder {
  readonly #options: LoadShedderOptions;
  readonly #random: () => number;
  #probability = 1;
  #shed = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: LoadShedderOptions) {
    this.#options = options;
    this.#random = options.random ?? Math.random;
  }

  /** The probability, in [0.05, 1], with which a request is admitted now. */
  get admissionProbability(): number {
    return this.#probability;
  }

  /** Requests refused by {@link admit} so far. */
  get shedCount(): number {
    return this.#shed;
  }

  /** Whether to admit one request; counts it when refused. Draws no random number while p is 1. */
  admit(): boolean {
    const p = this.#probability;
    if (p >= 1 || this.#random() < p) return true;
    this.#shed++;
    return false;
  }

  /** One interval has passed: measures the event-loop delay and adjusts the admission probability. */
  tick(): void {
    const delayMs = this.#options.measureDelayMs();
    const p = this.#probability;
    this.#probability = delayMs > this.#options.targetDelayMs ? Math.max(minAdmissionProbability, p * admissionDecreaseFactor) : Math.min(1, p + admissionIncreaseStep);
  }

  /** Starts the unref'd interval timer that calls {@link tick}. Does nothing when started. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.tick(), this.#options.intervalMs);
    this.#timer.unref();
  }

  /** Stops the timer. Idempotent; the probability keeps its last value. */
  stop(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/** A source of event-loop delay readings; {@link close} releases what it holds. */
export interface EventLoopDelayMeter {
  /** The longest event-loop delay in ms since the previous read (or since creation); 0 with no sample. Resets. */
  measureDelayMs(): number;
  /** Stops measuring. Idempotent. */
  close(): void;
}

/**
 * An {@link EventLoopDelayMeter} over `perf_hooks.monitorEventLoopDelay`, which samples the loop
 * every `resolutionMs` (default 10) and records how long each sample took to come round. A reading
 * is the maximum of the interval less the resolution itself. The maximum rather than the p99: one
 * interval of 100 ms holds about ten samples, too few for a p99 to differ from the maximum, and
 * the maximum is how long a request that arrived in the interval may have waited for the loop,
 * which is what `targetDelayMs` bounds. Node records nothing before the histogram's second sample,
 * so a stall in the first `resolutionMs` after creation goes unseen.
 */
export function eventLoopDelayMeter(resolutionMs = 10): EventLoopDelayMeter {
  const histogram = monitorEventLoopDelay({ resolution: resolutionMs });
  histogram.enable();
  let closed = false;
  return {
    measureDelayMs(): number {
      const maxMs = histogram.max / 1e6;
      histogram.reset();
      return Math.max(0, maxMs - resolutionMs);
    },
    close(): void {
      if (closed) return;
      closed = true;
      histogram.disable();
    },
  };
}
