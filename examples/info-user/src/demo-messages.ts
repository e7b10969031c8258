// What the demo's child processes report to the demo (over the IPC channel `fork` opens), and the
// one helper they send with. Run on their own, the children print the same messages as JSON lines.
import type { Code } from "@farcall/core";

/** The consumer's phases, in order: the seed's two bursts, then steady traffic across the shutdown. */
export const phases = ["insert", "getAll", "steady"] as const;
export type Phase = (typeof phases)[number];

/** One call the consumer made. */
export interface CallRecord {
  readonly phase: Phase;
  readonly method: string;
  /** Epoch ms when the call started (`Date.now()`; the demo compares it with its SIGTERM time). */
  readonly startedAt: number;
  readonly latencyMs: number;
  /** `"ok"`, or the `FarcallError` code the call failed with. */
  readonly outcome: "ok" | Code;
  /** Application name of the provider that answered (the last one picked); `""` when none was. */
  readonly provider: string;
}

export type ProviderMessage =
  | { readonly type: "listening"; readonly name: string; readonly pid: number; readonly host: string; readonly port: number }
  | {
      readonly type: "stopped";
      readonly name: string;
      readonly pid: number;
      /** Calls this provider executed, by method. */
      readonly served: Readonly<Record<string, number>>;
      /** From the signal to the end of `app.close()`: unregister, announce, drain, release. */
      readonly closeMs: number;
    };

export type ConsumerMessage =
  | { readonly type: "phase"; readonly phase: Phase; readonly state: "started" | "done" }
  | {
      readonly type: "results";
      readonly name: string;
      readonly calls: readonly CallRecord[];
      /** Distinct user ids in all getAllUser replies of the seed's burst (each provider holds a share). */
      readonly usersSeenByGetAll: number;
    };

/** Sends `message` to the parent (or prints it as a JSON line without one); resolves once handed over. */
export function report(message: ProviderMessage | ConsumerMessage): Promise<void> {
  const send = process.send?.bind(process);
  if (send === undefined || !process.connected) {
    process.stdout.write(`${JSON.stringify(message)}\n`);
    return Promise.resolve();
  }
  // A parent that went away meanwhile is not an error worth more than losing the message.
  return new Promise((resolve) => send(message, undefined, {}, () => resolve()));
}

/** Runs `onLost` when the parent that forked this process goes away, so no child outlives a demo. */
export function onParentLost(onLost: () => void): void {
  if (process.send !== undefined) process.once("disconnect", onLost);
}
