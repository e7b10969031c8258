// Turns what the demo collected into the readable summary it prints. Pure: no processes, no I/O.
import type { CallRecord } from "./demo-messages.js";

/** What one provider told the demo when it stopped, and how its process ended. */
export interface ProviderOutcome {
  readonly name: string;
  readonly pid: number;
  readonly served: Readonly<Record<string, number>>;
  /** From the signal to the end of the provider's `app.close()`. */
  readonly closeMs: number;
  /** From the signal to the process's exit, as the demo saw it. */
  readonly exitMs: number;
  readonly exitCode: number | null;
}

export interface DemoFacts {
  readonly calls: readonly CallRecord[];
  /** Epoch ms when provider 1 got SIGTERM. */
  readonly sigtermAt: number;
  readonly stopped: ProviderOutcome;
  readonly providers: readonly ProviderOutcome[];
  readonly usersInserted: number;
  readonly usersSeenByGetAll: number;
  readonly durationMs: number;
}

export interface DemoSummary {
  readonly text: string;
  readonly failed: number;
}

/** The nearest-rank percentile `p` (0..100) of ascending `sorted`; 0 when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] as number;
}

function row(label: string, calls: readonly CallRecord[]): string {
  const latencies = calls.map((c) => c.latencyMs).sort((a, b) => a - b);
  const failed = calls.filter((c) => c.outcome !== "ok").length;
  const ms = (v: number): string => v.toFixed(2).padStart(8);
  return `  ${label.padEnd(26)}${String(calls.length).padStart(6)}${String(failed).padStart(8)}${ms(percentile(latencies, 50))}${ms(percentile(latencies, 99))}${ms(latencies.at(-1) ?? 0)}`;
}

function countBy<T>(items: readonly T[], key: (item: T) => string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return counts;
}

function sum(record: Readonly<Record<string, number>>): number {
  return Object.values(record).reduce((a, b) => a + b, 0);
}

/** Builds the summary; `failed` is the number of calls that did not succeed. */
export function summarize(facts: DemoFacts): DemoSummary {
  const { calls, sigtermAt } = facts;
  const failures = calls.filter((c) => c.outcome !== "ok");
  const steady = calls.filter((c) => c.phase === "steady");
  const lines = [
    "",
    "== summary ==",
    `  ${"phase".padEnd(26)}${"calls".padStart(6)}${"failed".padStart(8)}${"p50 ms".padStart(8)}${"p99 ms".padStart(8)}${"max ms".padStart(8)}`,
    row("insert (100 concurrent)", calls.filter((c) => c.phase === "insert")),
    row("getAll (1000 concurrent)", calls.filter((c) => c.phase === "getAll")),
    row("steady", steady),
    row("  before SIGTERM", steady.filter((c) => c.startedAt < sigtermAt)),
    row("  from SIGTERM on", steady.filter((c) => c.startedAt >= sigtermAt)),
    row("all", calls),
    "",
    "calls per method:",
    ...[...countBy(calls, (c) => c.method)].map(([method, n]) => `  ${method.padEnd(20)}${String(n).padStart(6)}`),
    "",
    "calls served per provider (consumer's view / provider's own count):",
  ];
  const seen = countBy(calls.filter((c) => c.outcome === "ok"), (c) => c.provider);
  for (const provider of facts.providers) {
    const afterSigterm = steady.filter((c) => c.outcome === "ok" && c.provider === provider.name && c.startedAt >= sigtermAt).length;
    lines.push(`  ${provider.name} served ${seen.get(provider.name) ?? 0} / ${sum(provider.served)} calls (${afterSigterm} of them started after provider 1's SIGTERM)`);
  }
  const counted = facts.providers.reduce((n, p) => n + sum(p.served), 0);
  const succeeded = calls.length - failures.length;
  lines.push(
    `  providers executed ${counted} calls for ${succeeded} successful ones${counted === succeeded ? " (no call ran twice or went unanswered)" : ` (${counted - succeeded} executions without a successful reply)`}`,
    "",
    `getAllUser burst: the replies held ${facts.usersSeenByGetAll} of the ${facts.usersInserted} inserted users (each provider keeps its own in-memory map, as the seed's HashMap)`,
  );
  const s = facts.stopped;
  const graceful = s.exitCode === 0;
  lines.push(
    `graceful shutdown: ${s.name} (pid ${s.pid}) got SIGTERM, drained and closed in ${s.closeMs} ms, exited with code ${s.exitCode} ${s.exitMs} ms after the signal${graceful ? "" : " (NOT graceful)"}`,
  );
  if (failures.length > 0) {
    lines.push("failures by code and method:");
    for (const [key, n] of countBy(failures, (c) => `${c.outcome} ${c.method} (${c.phase})`)) lines.push(`  ${key}: ${n}`);
  }
  lines.push(
    "",
    `total calls: ${calls.length}, failed calls: ${failures.length}, demo time: ${(facts.durationMs / 1000).toFixed(1)} s`,
    failures.length === 0 ? "RESULT: PASS (zero failed calls)" : `RESULT: FAIL (${failures.length} failed calls)`,
  );
  return { text: lines.join("\n"), failed: failures.length };
}
