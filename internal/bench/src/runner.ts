import type { ChildProcess } from "node:child_process";
import { forkChild, stopChild } from "./children.js";
import { ask, type ClientReply, type ClientRequest, type ServerReply } from "./ipc.js";
import type { BenchOptions } from "./options.js";
import { payloadKinds, type PayloadKind } from "./payloads.js";
import type { Sample } from "./report.js";
import type { SystemName } from "./systems/index.js";

const serverScript = new URL("./server-process.js", import.meta.url);
const clientScript = new URL("./client-process.js", import.meta.url);
const startTimeoutMs = 20_000;
const stopGraceMs = 2_000;

/** Raised when a system's server or client cannot start at all: the system is skipped from then on. */
export class SystemUnavailableError extends Error {
  override readonly name = "SystemUnavailableError";
}

export interface CellOutcome {
  kind: PayloadKind;
  concurrency: number;
  sample: Sample | undefined;
  /** Set when calls failed; the sample is dropped then. */
  problem: string | undefined;
}

/**
 * One round of one system: a fresh server child and client child, a warm-up of both
 * processes, every payload kind at every concurrency (warm-up, then the measured window),
 * then both children stopped and killed by PID.
 */
export async function runSystemRound(
  system: SystemName,
  options: BenchOptions,
  onCell: (outcome: CellOutcome) => void,
): Promise<void> {
  let server: ChildProcess | undefined;
  let client: ChildProcess | undefined;
  try {
    server = forkChild(serverScript, [system]);
    client = forkChild(clientScript, [system]);
    let port: number;
    try {
      const [ready] = await Promise.all([
        ask<ServerReply>(server, undefined, startTimeoutMs),
        ask<ClientReply>(client, undefined, startTimeoutMs),
      ]);
      if (ready.type !== "ready") throw new Error(`unexpected server reply ${ready.type}`);
      port = ready.port;
    } catch (error) {
      throw new SystemUnavailableError(error instanceof Error ? error.message : String(error), { cause: error });
    }
    await warmProcesses(client, port, options);
    for (const kind of payloadKinds) {
      for (const concurrency of options.concurrencies) {
        onCell(await runCell(server, client, port, kind, concurrency, options));
      }
    }
  } finally {
    const stops: Promise<void>[] = [];
    for (const child of [client, server]) if (child !== undefined) stops.push(stopChild(child, stopGraceMs));
    await Promise.all(stops);
  }
}

/**
 * Fresh processes JIT-compile on their first calls (grpc-js needs about a second): load both
 * payloads once before any cell.
 */
async function warmProcesses(client: ChildProcess, port: number, options: BenchOptions): Promise<void> {
  const concurrency = 16;
  const durationMs = processWarmupMs(options);
  await askClient(client, { type: "open", port, concurrency }, startTimeoutMs);
  try {
    for (const kind of payloadKinds) {
      const run = { type: "run", kind, concurrency, durationMs, maxCalls: options.maxCalls } as const;
      await askClient(client, run, durationMs + 60_000);
    }
  } finally {
    await askClient(client, { type: "close" }, startTimeoutMs);
  }
}

/** Warm-up per payload kind of a fresh client and server. */
export function processWarmupMs(options: BenchOptions): number {
  return Math.max(1000, 2 * options.warmupMs);
}

async function serverCpuUs(server: ChildProcess): Promise<number> {
  const reply = await ask<ServerReply>(server, { type: "cpu" }, startTimeoutMs);
  if (reply.type !== "cpu") throw new Error(`unexpected server reply ${reply.type}`);
  return reply.usage.user + reply.usage.system;
}

function askClient(client: ChildProcess, request: ClientRequest, timeoutMs: number): Promise<ClientReply> {
  return ask<ClientReply>(client, request, timeoutMs);
}

async function runCell(
  server: ChildProcess,
  client: ChildProcess,
  port: number,
  kind: PayloadKind,
  concurrency: number,
  options: BenchOptions,
): Promise<CellOutcome> {
  const runTimeoutMs = Math.max(options.warmupMs, options.durationMs) + 60_000;
  await askClient(client, { type: "open", port, concurrency }, startTimeoutMs);
  try {
    const run = { type: "run", kind, concurrency, maxCalls: options.maxCalls } as const;
    await askClient(client, { ...run, durationMs: options.warmupMs }, runTimeoutMs);
    const serverCpuBeforeUs = await serverCpuUs(server);
    const reply = await askClient(client, { ...run, durationMs: options.durationMs }, runTimeoutMs);
    const serverCpuAfterUs = await serverCpuUs(server);
    if (reply.type !== "ran") throw new Error(`unexpected client reply ${reply.type}`);
    const { result } = reply;
    if (result.errors > 0 || result.calls === 0) {
      return {
        kind,
        concurrency,
        sample: undefined,
        problem: `${String(result.errors)} failed calls of ${String(result.calls + result.errors)}: ${result.firstError ?? "no call completed"}`,
      };
    }
    const serverUs = serverCpuAfterUs - serverCpuBeforeUs;
    const sample: Sample = {
      callsPerSecond: (result.calls * 1000) / result.elapsedMs,
      p50Us: result.p50Us,
      p99Us: result.p99Us,
      callsPerCpuSecond: (result.calls * 1e6) / (result.clientCpuUs + serverUs),
      clientCpuUsPerCall: result.clientCpuUs / result.calls,
      serverCpuUsPerCall: serverUs / result.calls,
    };
    return { kind, concurrency, sample, problem: undefined };
  } finally {
    await askClient(client, { type: "close" }, startTimeoutMs);
  }
}
