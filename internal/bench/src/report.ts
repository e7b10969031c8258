import type { PayloadKind } from "./payloads.js";
import type { SystemName } from "./systems/index.js";

/** One cell's figures from one round. */
export interface Sample {
  callsPerSecond: number;
  p50Us: number;
  p99Us: number;
  callsPerCpuSecond: number;
  clientCpuUsPerCall: number;
  serverCpuUsPerCall: number;
}

export interface Cell {
  kind: PayloadKind;
  concurrency: number;
  system: SystemName;
}

export function cellKey({ kind, concurrency, system }: Cell): string {
  return `${kind}/${String(concurrency)}/${system}`;
}

/** Samples per cell across rounds. */
export type Results = Map<string, Sample[]>;

export function median(values: readonly number[]): number {
  const sorted = values.filter((value) => Number.isFinite(value)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

export function formatRate(value: number): string {
  if (!Number.isFinite(value)) return "—";
  if (value >= 100_000) return `${(value / 1000).toFixed(0)}k`;
  if (value >= 10_000) return `${(value / 1000).toFixed(1)}k`;
  if (value >= 1000) return `${(value / 1000).toFixed(2)}k`;
  return value.toFixed(0);
}

export function formatLatency(us: number): string {
  if (!Number.isFinite(us)) return "—";
  if (us >= 10_000) return `${(us / 1000).toFixed(1)} ms`;
  if (us >= 1000) return `${(us / 1000).toFixed(2)} ms`;
  return `${us.toFixed(0)} µs`;
}

function formatRatio(value: number, base: number): string {
  return Number.isFinite(value) && Number.isFinite(base) && base > 0 ? `${(value / base).toFixed(2)}x` : "—";
}

const kindLabel: Record<PayloadKind, string> = { small: "small (~100 B)", large: "1 KiB" };

function medianOf(samples: readonly Sample[], field: keyof Sample): number {
  return median(samples.map((sample) => sample[field]));
}

export interface ReportContext {
  systems: readonly SystemName[];
  kinds: readonly PayloadKind[];
  concurrencies: readonly number[];
  results: Results;
}

/** The markdown table: medians across rounds, ratios to the raw echo and to grpc-js. */
export function renderTable({ systems, kinds, concurrencies, results }: ReportContext): string {
  const lines = [
    "| payload | in flight | system | calls/s | range | vs raw | vs grpc | p50 | p99 | calls per CPU-s | vs raw | vs grpc | CPU µs/call client + server |",
    "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const kind of kinds) {
    for (const concurrency of concurrencies) {
      const samplesOf = (system: SystemName): Sample[] => results.get(cellKey({ kind, concurrency, system })) ?? [];
      const rawRate = medianOf(samplesOf("raw"), "callsPerSecond");
      const grpcRate = medianOf(samplesOf("grpc"), "callsPerSecond");
      const rawEfficiency = medianOf(samplesOf("raw"), "callsPerCpuSecond");
      const grpcEfficiency = medianOf(samplesOf("grpc"), "callsPerCpuSecond");
      for (const system of systems) {
        const samples = samplesOf(system);
        if (samples.length === 0) continue;
        const rates = samples.map((sample) => sample.callsPerSecond);
        const rate = medianOf(samples, "callsPerSecond");
        const efficiency = medianOf(samples, "callsPerCpuSecond");
        const clientCpu = medianOf(samples, "clientCpuUsPerCall");
        const serverCpu = medianOf(samples, "serverCpuUsPerCall");
        lines.push(
          `| ${kindLabel[kind]} | ${String(concurrency)} | ${system} | ${formatRate(rate)} | ` +
            `${formatRate(Math.min(...rates))}–${formatRate(Math.max(...rates))} | ` +
            `${formatRatio(rate, rawRate)} | ${formatRatio(rate, grpcRate)} | ` +
            `${formatLatency(medianOf(samples, "p50Us"))} | ${formatLatency(medianOf(samples, "p99Us"))} | ` +
            `${formatRate(efficiency)} | ${formatRatio(efficiency, rawEfficiency)} | ` +
            `${formatRatio(efficiency, grpcEfficiency)} | ` +
            `${clientCpu.toFixed(1)} + ${serverCpu.toFixed(1)} |`,
        );
      }
    }
  }
  return lines.join("\n");
}

/**
 * The cost governance adds: `farcall-governed` against `farcall-direct` in each payload and
 * in-flight cell where both ran, as CPU µs per call (client + server) and calls/s, from the medians
 * and paired by round (each round runs both back to back, so a round's ratio cancels most of the
 * machine's drift), and from each system's cheapest round. Empty when either system was not run.
 */
export function renderGovernanceCost({ kinds, concurrencies, results }: ReportContext): string[] {
  const lines: string[] = [];
  const cpuOf = (s: Sample): number => s.clientCpuUsPerCall + s.serverCpuUsPerCall;
  for (const kind of kinds) {
    for (const concurrency of concurrencies) {
      const direct = results.get(cellKey({ kind, concurrency, system: "farcall-direct" })) ?? [];
      const governed = results.get(cellKey({ kind, concurrency, system: "farcall-governed" })) ?? [];
      if (direct.length === 0 || governed.length === 0) continue;
      const median = (values: number[]): number => {
        const sorted = [...values].sort((a, b) => a - b);
        const mid = sorted.length >> 1;
        return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
      };
      const pairs = Math.min(direct.length, governed.length);
      const paired: number[] = [];
      for (let i = 0; i < pairs; i++) paired.push(cpuOf(governed[i] as Sample) / cpuOf(direct[i] as Sample) - 1);
      const cpuChange = median(governed.map(cpuOf)) / median(direct.map(cpuOf)) - 1;
      // Other work on the machine only ever adds CPU time (stolen time counts as the process's own
      // in a VM), so each system's least disturbed round is the closest to its own cost.
      const bestChange = Math.min(...governed.map(cpuOf)) / Math.min(...direct.map(cpuOf)) - 1;
      const rateChange = median(governed.map((s) => s.callsPerSecond)) / median(direct.map((s) => s.callsPerSecond)) - 1;
      const pct = (x: number): string => `${x >= 0 ? "+" : "−"}${Math.abs(x * 100).toFixed(1)} %`;
      lines.push(
        `- ${kindLabel[kind]}, ${String(concurrency)} in flight: governed vs direct, CPU per call ${pct(cpuChange)} (medians), ` +
          `${pct(median(paired))} (median of ${String(pairs)} rounds paired: ${paired.map(pct).join(", ")}), ${pct(bestChange)} (each system's cheapest round); calls/s ${pct(rateChange)}`,
      );
    }
  }
  return lines;
}
