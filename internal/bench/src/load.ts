import type { LoadResult } from "./ipc.js";
import type { Payload } from "./payloads.js";
import type { EchoCall } from "./system.js";

/** Latencies beyond this many per run are not recorded (~2M calls; 16 MiB, allocated once). */
const latencyCapacity = 1 << 21;
const latenciesMs = new Float64Array(latencyCapacity);

/** Errors after which a run gives up: a broken system should not spin for the whole window. */
const maxErrors = 1000;

export interface LoadOptions {
  call: EchoCall;
  value: Payload;
  /** Calls kept in flight for the whole run. */
  concurrency: number;
  durationMs: number;
  /** Upper bound on calls started, whatever the duration. */
  maxCalls: number;
}

/**
 * Keeps exactly `concurrency` calls in flight until `durationMs` has passed or `maxCalls`
 * calls have started, then waits for the calls in flight. Throughput is completed calls
 * over the whole elapsed time, drain included.
 */
export async function runLoad(options: LoadOptions): Promise<Omit<LoadResult, "clientCpuUs">> {
  const { call, value, concurrency, maxCalls } = options;
  const startMs = performance.now();
  const deadlineMs = startMs + options.durationMs;
  let started = 0;
  let completed = 0;
  let recorded = 0;
  let errors = 0;
  let firstError: string | undefined;

  const worker = async (): Promise<void> => {
    for (;;) {
      const callStartMs = performance.now();
      if (callStartMs >= deadlineMs || started >= maxCalls || errors >= maxErrors) return;
      started++;
      try {
        await call(value);
      } catch (error) {
        errors++;
        firstError ??= error instanceof Error ? error.message : String(error);
        continue;
      }
      const latencyMs = performance.now() - callStartMs;
      if (recorded < latencyCapacity) latenciesMs[recorded++] = latencyMs;
      completed++;
    }
  };
  const workers: Promise<void>[] = [];
  for (let index = 0; index < concurrency; index++) workers.push(worker());
  await Promise.all(workers);
  const elapsedMs = performance.now() - startMs;

  const sorted = latenciesMs.subarray(0, recorded).sort();
  return {
    calls: completed,
    errors,
    firstError,
    elapsedMs,
    p50Us: percentile(sorted, 0.5) * 1000,
    p99Us: percentile(sorted, 0.99) * 1000,
  };
}

function percentile(sorted: Float64Array, quantile: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(quantile * sorted.length))] ?? Number.NaN;
}
