import type { ChildProcess } from "node:child_process";
import type { PayloadKind } from "./payloads.js";

/** CPU time in microseconds, as `process.cpuUsage()` reports it. */
export interface CpuUsage {
  user: number;
  system: number;
}

/** What one load run measured inside the client process. */
export interface LoadResult {
  calls: number;
  errors: number;
  firstError: string | undefined;
  elapsedMs: number;
  p50Us: number;
  p99Us: number;
  clientCpuUs: number;
}

export type ServerRequest = { type: "cpu" } | { type: "stop" };
export type ServerReply =
  | { type: "ready"; port: number }
  | { type: "cpu"; usage: CpuUsage }
  | { type: "stopped" }
  | { type: "failed"; message: string };

export type ClientRequest =
  | { type: "open"; port: number; concurrency: number }
  | { type: "run"; kind: PayloadKind; concurrency: number; durationMs: number; maxCalls: number }
  | { type: "close" }
  | { type: "stop" };
export type ClientReply =
  | { type: "ready" }
  | { type: "opened" }
  | { type: "ran"; result: LoadResult }
  | { type: "closed" }
  | { type: "stopped" }
  | { type: "failed"; message: string };

/**
 * Sends `request` (if any) to a child and resolves with its next reply. Children answer one
 * request at a time, so the next message is the reply. A `failed` reply, the child's exit or
 * the timeout reject.
 */
export function ask<Reply extends { type: string }>(
  child: ChildProcess,
  request: object | undefined,
  timeoutMs: number,
): Promise<Exclude<Reply, { type: "failed" }>> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer);
      child.off("message", onMessage);
      child.off("exit", onExit);
    };
    const onMessage = (reply: Reply): void => {
      cleanup();
      if (reply.type === "failed") reject(new Error((reply as unknown as { message: string }).message));
      else resolve(reply as Exclude<Reply, { type: "failed" }>);
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      cleanup();
      reject(new Error(`child ${String(child.pid)} exited (${String(code ?? signal)})`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`child ${String(child.pid)} did not answer within ${String(timeoutMs)} ms`));
    }, timeoutMs);
    child.on("message", onMessage);
    child.once("exit", onExit);
    if (request !== undefined) {
      child.send(request, (error) => {
        if (error === null) return;
        cleanup();
        reject(error);
      });
    }
  });
}

/** Replies from inside a child; the orchestrator is the only peer. */
export function reply(message: ServerReply | ClientReply): void {
  process.send?.(message);
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
