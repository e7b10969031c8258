import { performance, type EventLoopUtilization } from "node:perf_hooks";
import { getHeapStatistics } from "node:v8";
import { badOption, type Metadata } from "../errors/farcall-error.js";
import { formatLoad, type LoadSample, loadMetadataKey } from "../protocol/binary/provider-load.js";

/** Options of a provider's load reports (`ApplicationOptions.loadReport`). */
export interface LoadReportOptions {
  /** How often the load is sampled, and at most how often one connection carries a report, in ms. Default 1000 (100..60000). */
  readonly intervalMs?: number;
  /**
   * The load to report. Default: the event-loop utilisation since the previous sample (the share
   * of time the process's thread was busy running code) and the V8 heap in use over its limit.
   * A provider whose work runs elsewhere (worker threads, a child process) can report that instead.
   */
  readonly sample?: () => LoadSample;
}

/** Default {@link LoadReportOptions.intervalMs}. */
export const defaultLoadReportIntervalMs = 1000;

/**
 * Checks load-report options.
 * @throws FarcallError `invalid_argument` (`bad_option`) naming `${name}.<field>`.
 */
export function checkLoadReportOptions(value: unknown, name = "loadReport"): LoadReportOptions {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return badOption(name, "must be true, false or an object { intervalMs, sample }");
  const o = value as Record<string, unknown>;
  for (const key of Object.keys(o)) if (key !== "intervalMs" && key !== "sample") badOption(`${name}.${key}`, "unknown load-report option");
  const interval = o["intervalMs"];
  if (interval !== undefined && (typeof interval !== "number" || !Number.isInteger(interval) || interval < 100 || interval > 60_000)) {
    badOption(`${name}.intervalMs`, "must be an integer number of ms in 100..60000");
  }
  if (o["sample"] !== undefined && typeof o["sample"] !== "function") badOption(`${name}.sample`, "must be a function returning { busy, memory }");
  return value as LoadReportOptions;
}

/**
 * Samples the provider's load every interval and holds the reply metadata that carries it
 * (`farcall-load`, see `protocol/binary/provider-load.ts`). The server adds that metadata to at
 * most one successful reply per connection per interval. Owned by the server: started when it
 * listens, stopped when it closes; its timer does not keep the process alive.
 */
export class LoadReporter {
  readonly intervalMs: number;
  /** The latest report as reply metadata; undefined before the first sample (one interval after `start`). */
  metadata: Metadata | undefined;
  readonly #sample: () => LoadSample;
  #timer: NodeJS.Timeout | undefined;
  #elu: EventLoopUtilization | undefined;

  constructor(options: LoadReportOptions = {}) {
    this.intervalMs = options.intervalMs ?? defaultLoadReportIntervalMs;
    this.#sample = options.sample ?? (() => this.#defaultSample());
  }

  start(): void {
    if (this.#timer !== undefined) return;
    this.#elu = performance.eventLoopUtilization();
    this.#timer = setInterval(() => this.tick(), this.intervalMs);
    this.#timer.unref();
  }

  /** Takes one sample now (the timer calls it every interval). A throwing sampler keeps the previous report. */
  tick(): void {
    let sample: LoadSample;
    try {
      sample = this.#sample();
    } catch {
      return;
    }
    this.metadata = Object.freeze({ [loadMetadataKey]: formatLoad(sample) });
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #defaultSample(): LoadSample {
    const now = performance.eventLoopUtilization();
    const busy = this.#elu === undefined ? now.utilization : performance.eventLoopUtilization(now, this.#elu).utilization;
    this.#elu = now;
    const heap = getHeapStatistics();
    return { busy, memory: heap.heap_size_limit > 0 ? heap.used_heap_size / heap.heap_size_limit : 0 };
  }
}
