// A provider in its own process for the correctness fault tests (RELIABILITY.md T07, T13, T20):
// serves faults.Echo on 127.0.0.1:0, registered in the registry FARCALL_REGISTRY names, and
// records every request that reaches the implementation in CORRECTNESS_RECORD (one line each,
// written with writeSync before the method returns, so a kill -9 loses nothing already executed;
// see correctness-records.ts). Prints one JSON line {"port","pid","registeredAt"} once started.
//
// CORRECTNESS_MODE:
// - `plain`: both methods answer at once;
// - `faults` (T13): `append` meets faultOf(n): sleep CORRECTNESS_SLEEP_MS after executing (past
//   the consumer's deadline), destroy the connection right after executing, or right before;
// - `slow-writes` (T20): `append` takes CORRECTNESS_WRITE_MS (default 200) after executing.
// Every `closing` frame the server writes is recorded too (the transport decodes what it sends),
// and so is SIGTERM; SIGTERM then drains and ends the process (handleSignals), after
// CORRECTNESS_GRACE_MS at most (default: the application's 10 s).
import { openSync, writeSync } from "node:fs";
import { setTimeout as delay } from "node:timers/promises";
import { type CallContext, createApplication, FarcallError } from "@farcall/core";
import { FrameDecoder, FrameFlags, type Link, type Transport, tcpTransport } from "@farcall/core/extension";
import { arrivalLine, attemptMetadataKey, closingLine, faultOf, type Outcome, type ProviderMode, sigtermLine } from "./correctness-records.js";
import { FaultsEcho, type Served } from "./faults-echo.js";

const env = process.env;
const registry = env["FARCALL_REGISTRY"];
const recordPath = env["CORRECTNESS_RECORD"];
const mode = (env["CORRECTNESS_MODE"] ?? "plain") as ProviderMode;
if (registry === undefined || registry === "" || recordPath === undefined || !["plain", "faults", "slow-writes"].includes(mode)) {
  process.stderr.write("correctness-provider-process: needs FARCALL_REGISTRY, CORRECTNESS_RECORD and CORRECTNESS_MODE plain|faults|slow-writes\n");
  process.exit(2);
}
const sleepMs = Number(env["CORRECTNESS_SLEEP_MS"] ?? 1000);
const writeMs = Number(env["CORRECTNESS_WRITE_MS"] ?? 200);
const graceMs = env["CORRECTNESS_GRACE_MS"] === undefined ? undefined : Number(env["CORRECTNESS_GRACE_MS"]);

const record = openSync(recordPath, "a");
const write = (line: string): void => void writeSync(record, line);
// Installed before the application's own handler and `once` like it, so the signal the
// application re-raises after draining still ends the process.
process.once("SIGTERM", () => write(sigtermLine()));

/**
 * TCP whose accepted links are known by their consumer's `host:port` (so a handler can destroy the
 * connection its request came on) and whose outgoing bytes are decoded to record `closing` frames.
 */
function observedTransport(): { transport: Transport; destroy(remote: string): void } {
  const tcp = tcpTransport();
  const links = new Map<string, Link>();
  const observe = (link: Link): Link => {
    const decoder = new FrameDecoder();
    let decoding = true;
    links.set(link.remote, link);
    link.onClose(() => {
      if (links.get(link.remote) === link) links.delete(link.remote);
    });
    return {
      remote: link.remote,
      get bufferedBytes() {
        return link.bufferedBytes;
      },
      write(chunk) {
        if (decoding) {
          try {
            decoder.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength), (frame) => {
              if (frame.flags & FrameFlags.closing) write(closingLine(link.remote));
            });
          } catch {
            decoding = false; // never expected: the server writes well-formed frames
          }
        }
        return link.write(chunk);
      },
      end: () => link.end(),
      destroy: () => link.destroy(),
      onData: (listener) => link.onData(listener),
      onClose: (listener) => link.onClose(listener),
      onDrain: (listener) => link.onDrain(listener),
      pause: () => link.pause(),
      resume: () => link.resume(),
    };
  };
  return {
    transport: {
      connect: (address, signal) => tcp.connect(address, signal),
      listen: (address, onLink) => tcp.listen(address, (link) => onLink(observe(link))),
    },
    destroy: (remote) => links.get(remote)?.destroy(),
  };
}

const { transport, destroy } = observedTransport();
const app = createApplication({
  name: process.argv[2] ?? "correctness-provider",
  registry,
  host: "127.0.0.1",
  port: 0,
  warmupMs: 0,
  handleSignals: true,
  env: {},
  transport,
  ...(graceMs === undefined ? {} : { graceMs }),
});

function attemptOf(ctx: CallContext): number {
  const value = Number(ctx.metadata[attemptMetadataKey] ?? "-1");
  return Number.isInteger(value) ? value : -1;
}

function note(ctx: CallContext, outcome: Outcome, n: number): void {
  write(arrivalLine(outcome, ctx.method, n, attemptOf(ctx), ctx.remote));
}

async function append(ctx: CallContext, n: number): Promise<Served> {
  const served = { pid: process.pid, n };
  const fault = mode === "faults" ? faultOf(n) : "none";
  if (fault === "reset-before") {
    note(ctx, "reset-before", n);
    destroy(ctx.remote);
    throw new FarcallError("unavailable", "connection reset before execution (fault injected)");
  }
  note(ctx, fault === "sleep" ? "exec-sleep" : fault === "reset-after" ? "exec-reset" : "exec", n);
  if (fault === "reset-after") destroy(ctx.remote);
  else if (fault === "sleep") await delay(sleepMs);
  else if (mode === "slow-writes") await delay(writeMs);
  return served;
}

app.provide(FaultsEcho, {
  whoami: (ctx, n) => {
    note(ctx, "exec", n);
    return { pid: process.pid, n };
  },
  append,
});
await app.start();
process.stdout.write(`${JSON.stringify({ port: app.address?.port, pid: process.pid, registeredAt: Date.now() })}\n`);
