/**
 * `npm run bench`: farcall against a raw TCP echo, fastify + undici and grpc-js. Client and
 * server run in separate child processes on 127.0.0.1; systems are interleaved within every
 * round; the table reports medians across rounds. See `--help`.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { cpus, loadavg } from "node:os";
import { dirname } from "node:path";
import { installChildCleanup } from "./children.js";
import { errorMessage } from "./ipc.js";
import { parseOptions, usage, type BenchOptions } from "./options.js";
import { payloadKinds } from "./payloads.js";
import { cellKey, formatLatency, formatRate, renderGovernanceCost, renderTable, type Results } from "./report.js";
import { processWarmupMs, runSystemRound, SystemUnavailableError } from "./runner.js";
import type { SystemName } from "./systems/index.js";

async function main(): Promise<void> {
  const parsed = parseOptions(process.argv.slice(2), process.env);
  if (parsed === "help") {
    console.log(usage);
    return;
  }
  const options: BenchOptions = parsed;
  installChildCleanup();

  const cellsPerRound = options.systems.length * payloadKinds.length * options.concurrencies.length;
  const processWarmupsPerRound = options.systems.length * payloadKinds.length;
  const estimateS =
    (options.rounds * (cellsPerRound * (options.warmupMs + options.durationMs) + processWarmupsPerRound * processWarmupMs(options))) /
    1000;
  console.log(
    `farcall bench: ${options.systems.join(", ")}; ${String(options.rounds)} rounds; ` +
      `${String(options.warmupMs)} ms warm-up + ${String(options.durationMs)} ms per cell; ` +
      `in flight ${options.concurrencies.join(", ")}; about ${estimateS.toFixed(0)} s of load`,
  );

  const results: Results = new Map();
  const unavailable = new Map<SystemName, string>();
  const problems: string[] = [];
  const startedAt = new Date();
  const loadAtStart = loadavg()[0] ?? Number.NaN;

  for (let round = 0; round < options.rounds; round++) {
    // Rotate the order each round so no system always runs first or last.
    const order = options.systems.map((_, index) => options.systems[(index + round) % options.systems.length]);
    for (const system of order) {
      if (system === undefined || unavailable.has(system)) continue;
      try {
        await runSystemRound(system, options, ({ kind, concurrency, sample, problem }) => {
          const label = `round ${String(round + 1)}/${String(options.rounds)} ${system} ${kind} x${String(concurrency)}`;
          if (sample === undefined) {
            const note = `${label}: ${problem ?? "no sample"}`;
            problems.push(note);
            console.log(note);
            return;
          }
          const key = cellKey({ kind, concurrency, system });
          results.set(key, [...(results.get(key) ?? []), sample]);
          console.log(
            `${label}: ${formatRate(sample.callsPerSecond)} calls/s, p50 ${formatLatency(sample.p50Us)}, ` +
              `p99 ${formatLatency(sample.p99Us)}, ${formatRate(sample.callsPerCpuSecond)} calls per CPU-s`,
          );
        });
      } catch (error) {
        if (error instanceof SystemUnavailableError) {
          unavailable.set(system, error.message);
          console.log(`${system}: not available: ${error.message}`);
        } else {
          const note = `round ${String(round + 1)} ${system}: ${errorMessage(error)}`;
          problems.push(note);
          console.log(note);
        }
      }
    }
  }

  const table = renderTable({ systems: options.systems, kinds: payloadKinds, concurrencies: options.concurrencies, results });
  const cpu = cpus();
  const notes = [
    ...[...unavailable].map(([system, reason]) => `- ${system}: not available: ${reason}`),
    ...problems.map((problem) => `- ${problem}`),
  ];
  const report = [
    `# farcall bench ${options.quick ? "(quick) " : ""}${startedAt.toISOString()}`,
    "",
    `Node ${process.version}, ${String(cpu.length)} x ${cpu[0]?.model ?? "unknown CPU"}; client and server in separate ` +
      `processes on 127.0.0.1; ${String(options.rounds)} rounds interleaving the systems, ` +
      `${String(options.warmupMs)} ms warm-up + ${String(options.durationMs)} ms measured per cell; medians across rounds ` +
      `(range: min–max calls/s). Calls per CPU-s = calls / (client + server CPU seconds in the measured window). ` +
      `1-minute load average ${loadAtStart.toFixed(2)} at start, ${(loadavg()[0] ?? Number.NaN).toFixed(2)} at end: ` +
      `above ~1 other work shared the cores, and calls/s suffers more than calls per CPU-s.`,
    "",
    table,
    ...((governance) => (governance.length > 0 ? ["", "Governance cost (the full governed path against the direct one):", ...governance] : []))(
      renderGovernanceCost({ systems: options.systems, kinds: payloadKinds, concurrencies: options.concurrencies, results }),
    ),
    ...(notes.length > 0 ? ["", "Notes:", ...notes] : []),
    "",
  ].join("\n");

  console.log(`\n${report}`);
  await mkdir(dirname(options.outPath), { recursive: true });
  await writeFile(options.outPath, report);
  await writeFile(options.outPath.replace(/\.md$/, "") + ".json", JSON.stringify(Object.fromEntries(results), null, 2));
  console.log(`written to ${options.outPath}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
