// A provider in its own process for the governance fault tests (RELIABILITY.md T09-T12, T14):
// serves faults.Echo on 127.0.0.1:0, registered in the registry its setup names, with a behaviour
// the parent switches at runtime over IPC (extra latency, failing calls, CPU work per call), and
// counters the parent reads over IPC: requests that arrived (decoded from the incoming bytes, so
// requests the server's protection refused count too) and executions with their arrival time.
// Sends {"type":"ready",port,pid,registeredAt} once start() has resolved; ends when the parent
// disconnects (or is killed by it).
import { performance } from "node:perf_hooks";
import { setImmediate as yieldToLoop, setTimeout as delay } from "node:timers/promises";
import { type ApplicationOptions, type CallContext, createApplication, FarcallError, type ProvideOptions } from "@farcall/core";
import { FrameDecoder, FrameFlags, type Link, type Transport, tcpTransport } from "@farcall/core/extension";
import { FaultsEcho, type Served } from "./faults-echo.js";

/** What every call meets; the parent changes it with a `behave` message. */
export interface Behaviour {
  /** Time in ms added before the call answers (a timer: the provider stays idle). */
  readonly latencyMs: number;
  /**
   * `none`; `all`: every call answers `unavailable`; `ratio30`: calls 0, 1 and 2 of every 10
   * since the switch answer `unavailable` (exactly 30 %, never more than 3 in a row).
   */
  readonly failure: "none" | "all" | "ratio30";
  /** CPU time in ms burnt per call in a busy loop: a provider whose capacity is its CPU. */
  readonly cpuMs: number;
  /**
   * Yield to the event loop before the work, so the requests of one read are all admitted before
   * any runs: the server's concurrency caps then see them in flight together.
   */
  readonly yieldFirst: boolean;
}

/** How the parent starts the provider (JSON in the environment variable GOVERNANCE_SETUP). */
export interface ProviderSetup {
  /** Registry address (`zookeeper://…`). */
  readonly registry: string;
  readonly name: string;
  readonly loadShedding?: ApplicationOptions["loadShedding"];
  /** Limits of the provided service (rate limit, concurrency cap). */
  readonly provide?: Pick<ProvideOptions, "rateLimit" | "maxConcurrent">;
  readonly behaviour?: Partial<Behaviour>;
}

/** Counters since the provider started. */
export interface ProviderCounts {
  /** Requests decoded from the incoming bytes: executed or refused by the server's protection. */
  readonly received: number;
  /** Calls that reached the implementation. */
  readonly executed: number;
  /** Executions answered `unavailable` by the failure mode. */
  readonly failed: number;
  readonly rssBytes: number;
  /** CPU time this process has used (user + system), µs: its capacity on a shared machine. */
  readonly cpuUs: number;
}

/** The executions kept since the last `log` message (at most {@link maxLogged}). */
export interface ExecutionLog {
  /** Arrival at the implementation, epoch ms (`performance.timeOrigin + performance.now()`). */
  readonly at: number[];
  /** Whether each one was answered `unavailable`. */
  readonly failed: boolean[];
  /** Executions not kept because the log was full. */
  readonly dropped: number;
}

/** A request of the parent; the reply carries the same `id`. */
export type ControlRequest =
  | { readonly id: number; readonly type: "behave"; readonly behaviour: Partial<Behaviour> }
  | { readonly id: number; readonly type: "counts" }
  | { readonly id: number; readonly type: "log" };

export type ControlReply =
  | { readonly type: "ready"; readonly port: number; readonly pid: number; readonly registeredAt: number }
  | { readonly type: "reply"; readonly id: number; readonly counts?: ProviderCounts; readonly log?: ExecutionLog };

/** Executions kept between two `log` messages. */
const maxLogged = 200_000;

const defaults: Behaviour = Object.freeze({ latencyMs: 0, failure: "none", cpuMs: 0, yieldFirst: false });

function send(message: ControlReply): void {
  process.send?.(message);
}

/** TCP whose accepted links count the request frames they receive. */
function countingTransport(onRequest: () => void): Transport {
  const tcp = tcpTransport();
  const counted = (link: Link): Link => {
    const decoder = new FrameDecoder();
    let decoding = true;
    let listening = false;
    return {
      remote: link.remote,
      get bufferedBytes() {
        return link.bufferedBytes;
      },
      write: (chunk) => link.write(chunk),
      end: () => link.end(),
      destroy: () => link.destroy(),
      onData: (listener) => {
        const count = !listening;
        listening = true;
        link.onData((chunk) => {
          if (count && decoding) {
            try {
              decoder.push(chunk, (frame) => {
                if ((frame.flags & (FrameFlags.response | FrameFlags.heartbeat)) === 0) onRequest();
              });
            } catch {
              decoding = false; // the server rejects a malformed stream itself
            }
          }
          listener(chunk);
        });
      },
      onClose: (listener) => link.onClose(listener),
      onDrain: (listener) => link.onDrain(listener),
      pause: () => link.pause(),
      resume: () => link.resume(),
    };
  };
  return {
    connect: (address, signal) => tcp.connect(address, signal),
    listen: (address, onLink) => tcp.listen(address, (link) => onLink(counted(link))),
  };
}

function now(): number {
  return performance.timeOrigin + performance.now();
}

function burn(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // busy: the provider's capacity is its CPU
  }
}

const raw = process.env["GOVERNANCE_SETUP"];
if (raw === undefined || process.send === undefined) {
  process.stderr.write("governance-provider-process: needs GOVERNANCE_SETUP and an IPC channel\n");
  process.exit(2);
}
const setup = JSON.parse(raw) as ProviderSetup;
let behaviour: Behaviour = { ...defaults, ...setup.behaviour };
let sinceSwitch = 0;
let received = 0;
let executed = 0;
let failed = 0;
let log = { at: [] as number[], failed: [] as boolean[], dropped: 0 };

async function serve(n: number): Promise<Served> {
  const b = behaviour;
  const at = now();
  const seq = sinceSwitch++;
  const fails = b.failure === "all" || (b.failure === "ratio30" && seq % 10 < 3);
  executed++;
  if (fails) failed++;
  if (log.at.length < maxLogged) {
    log.at.push(at);
    log.failed.push(fails);
  } else {
    log.dropped++;
  }
  if (b.yieldFirst) await yieldToLoop();
  if (b.cpuMs > 0) burn(b.cpuMs);
  if (b.latencyMs > 0) await delay(b.latencyMs);
  if (fails) throw new FarcallError("unavailable", `provider ${setup.name} is set to fail (governance fault test)`);
  return { pid: process.pid, n };
}

const app = createApplication({
  name: setup.name,
  registry: setup.registry,
  host: "127.0.0.1",
  port: 0,
  warmupMs: 0,
  handleSignals: false,
  env: {},
  transport: countingTransport(() => void received++),
  ...(setup.loadShedding === undefined ? {} : { loadShedding: setup.loadShedding }),
});
app.provide(
  FaultsEcho,
  {
    whoami: (_ctx: CallContext, n: number) => serve(n),
    append: (_ctx: CallContext, n: number) => serve(n),
  },
  setup.provide ?? {},
);

process.on("message", (message: ControlRequest) => {
  switch (message.type) {
    case "behave":
      behaviour = { ...behaviour, ...message.behaviour };
      sinceSwitch = 0;
      send({ type: "reply", id: message.id });
      return;
    case "counts":
      const cpu = process.cpuUsage();
      send({ type: "reply", id: message.id, counts: { received, executed, failed, rssBytes: process.memoryUsage().rss, cpuUs: cpu.user + cpu.system } });
      return;
    case "log": {
      const kept: ExecutionLog = log;
      log = { at: [], failed: [], dropped: 0 };
      send({ type: "reply", id: message.id, log: kept });
      return;
    }
  }
});
// The parent owns this process: when it goes, so does this one (the ZooKeeper session expires).
process.on("disconnect", () => process.exit(0));

await app.start();
const port = app.address?.port;
if (port === undefined) throw new Error("the provider has no address after start()");
send({ type: "ready", port, pid: process.pid, registeredAt: Date.now() });
