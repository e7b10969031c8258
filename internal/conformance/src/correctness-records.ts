// What a correctness provider process (correctness-provider-process.ts) writes and the tests read:
// one line per request that reached the implementation, per `closing` frame written and per
// SIGTERM, each with the provider's clock (`Date.now()`, the same machine clock as the test's).
// Shared by both sides so the format lives in one place.
import { readFile } from "node:fs/promises";

/** Metadata key carrying the attempt number (0 for the first) of a call, set by the consumer's attempt interceptor. */
export const attemptMetadataKey = "x-correctness-attempt";

/**
 * What a provider did with one request that reached the implementation:
 * - `exec`: executed and answered;
 * - `exec-sleep`: executed, then held the reply past the consumer's deadline;
 * - `exec-reset`: executed, then destroyed the connection the request came on (no reply);
 * - `reset-before`: destroyed the connection without executing.
 */
export type Outcome = "exec" | "exec-sleep" | "exec-reset" | "reset-before";

/** Fault modes of a provider: none, T13's faults by request id, or 200 ms writes (T20). */
export type ProviderMode = "plain" | "faults" | "slow-writes";

/**
 * T13's fault for request `n`, a pure function of `n` so that a retry of a request meets the same
 * fault on any provider: 5 % `sleep`, 1 % `reset-after`, 1 % `reset-before`, the rest `none`.
 */
export function faultOf(n: number): "none" | "sleep" | "reset-after" | "reset-before" {
  const bucket = Math.imul(n + 1, 2654435761) >>> 0;
  const percent = bucket % 100;
  if (percent < 5) return "sleep";
  if (percent === 5) return "reset-after";
  if (percent === 6) return "reset-before";
  return "none";
}

/** One request as a provider recorded it. */
export interface Arrival {
  readonly at: number;
  readonly outcome: Outcome;
  readonly method: string;
  readonly n: number;
  /** The consumer's attempt number, -1 when the request carried none. */
  readonly attempt: number;
  /** The consumer's end of the connection, `host:port`. */
  readonly remote: string;
}

/** Everything one provider process recorded. */
export interface ProviderRecord {
  readonly arrivals: Arrival[];
  /** Times a `closing` frame was handed to a connection's socket, by the consumer's `host:port`. */
  readonly closings: { readonly at: number; readonly remote: string }[];
  /** When the process received SIGTERM, if it did. */
  readonly sigtermAt: number | undefined;
}

/** The line of a request. */
export function arrivalLine(outcome: Outcome, method: string, n: number, attempt: number, remote: string): string {
  return `${Date.now()} ${outcome} ${method} ${n} ${attempt} ${remote}\n`;
}

/** The line of a `closing` frame written towards `remote`. */
export function closingLine(remote: string): string {
  return `${Date.now()} closing ${remote}\n`;
}

/** The line of SIGTERM. */
export function sigtermLine(): string {
  return `${Date.now()} sigterm\n`;
}

const outcomes: ReadonlySet<string> = new Set(["exec", "exec-sleep", "exec-reset", "reset-before"]);

/** Parses a record file; a truncated last line (a process killed mid-write) is ignored. */
export async function readRecord(path: string): Promise<ProviderRecord> {
  const text = await readFile(path, "utf8");
  const record: ProviderRecord = { arrivals: [], closings: [], sigtermAt: undefined };
  let sigtermAt: number | undefined;
  for (const line of text.split("\n")) {
    const fields = line.split(" ");
    const at = Number(fields[0]);
    if (!Number.isFinite(at)) continue;
    const kind = fields[1] ?? "";
    if (outcomes.has(kind) && fields.length === 6) {
      record.arrivals.push({ at, outcome: kind as Outcome, method: fields[2] ?? "", n: Number(fields[3]), attempt: Number(fields[4]), remote: fields[5] ?? "" });
    } else if (kind === "closing" && fields.length === 3) {
      record.closings.push({ at, remote: fields[2] ?? "" });
    } else if (kind === "sigterm") {
      sigtermAt ??= at;
    }
  }
  return { ...record, sigtermAt };
}

/** Whether an outcome executed the method. */
export function executed(outcome: Outcome): boolean {
  return outcome !== "reset-before";
}
