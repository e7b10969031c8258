import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { isSystemName, systemNames, type SystemName } from "./systems/index.js";

export interface BenchOptions {
  readonly systems: readonly SystemName[];
  readonly rounds: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly concurrencies: readonly number[];
  /** Upper bound on calls started in one measured window. */
  readonly maxCalls: number;
  readonly outPath: string;
  readonly quick: boolean;
}

export const usage = `Usage: node internal/bench/dist/src/main.js [options]
  --quick              2 rounds of 0.3 s warm-up + 0.7 s per cell (about a minute)
  --rounds N           rounds; systems are interleaved within each round (default 5; env BENCH_ROUNDS)
  --seconds S          measured seconds per cell (default 2; env BENCH_SECONDS)
  --warmup S           warm-up seconds per cell (default 0.5; env BENCH_WARMUP_SECONDS)
  --systems a,b        subset of ${systemNames.join(",")} (default all)
  --in-flight 1,16,256 calls kept in flight (default 1,16,256)
  --out PATH           markdown report (default internal/bench/results/latest.md)`;

function positiveNumber(text: string | undefined, what: string): number | undefined {
  if (text === undefined || text === "") return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${what} must be a positive number, got "${text}"`);
  return value;
}

export function parseOptions(argv: readonly string[], env: NodeJS.ProcessEnv): BenchOptions | "help" {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: "boolean", default: false },
      rounds: { type: "string" },
      seconds: { type: "string" },
      warmup: { type: "string" },
      systems: { type: "string" },
      "in-flight": { type: "string" },
      out: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) return "help";
  const quick = values.quick || env["BENCH_QUICK"] === "1";
  const rounds = positiveNumber(values.rounds ?? env["BENCH_ROUNDS"], "rounds") ?? (quick ? 2 : 5);
  const seconds = positiveNumber(values.seconds ?? env["BENCH_SECONDS"], "seconds") ?? (quick ? 0.7 : 2);
  const warmupSeconds =
    positiveNumber(values.warmup ?? env["BENCH_WARMUP_SECONDS"], "warmup") ?? (quick ? 0.3 : 0.5);

  const systems = (values.systems ?? systemNames.join(",")).split(",").map((name) => name.trim());
  for (const name of systems) {
    if (!isSystemName(name)) throw new Error(`unknown system "${name}"; known: ${systemNames.join(", ")}`);
  }
  const concurrencies = (values["in-flight"] ?? "1,16,256").split(",").map((text) => {
    const value = positiveNumber(text.trim(), "in-flight");
    if (value === undefined || !Number.isInteger(value)) throw new Error(`in-flight must be integers, got "${text}"`);
    return value;
  });

  return {
    systems: systems as SystemName[],
    rounds: Math.round(rounds),
    warmupMs: Math.round(warmupSeconds * 1000),
    durationMs: Math.round(seconds * 1000),
    concurrencies,
    maxCalls: 10_000_000,
    outPath: values.out ?? fileURLToPath(new URL("../../results/latest.md", import.meta.url)),
    quick,
  };
}
