// The harness of the correctness fault tests (correctness-faults.test.ts): provider processes that
// record every request they execute (correctness-provider-process.ts), one consumer application in
// this process whose every call and attempt is logged, and the analysis both sides feed.
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Application, createApplication, FarcallError, type Interceptor, type Registry, type Stub } from "@farcall/core";
import { FrameDecoder, FrameFlags, type Link, type Transport, tcpTransport } from "@farcall/core/extension";
import { zookeeperRegistry } from "@farcall/registry-zookeeper";
import { attemptMetadataKey, type ProviderMode, type ProviderRecord, readRecord } from "./correctness-records.js";
import { FaultsEcho, type FaultsEchoService, type Served } from "./faults-echo.js";
import type { LoadCall } from "./paced-load.js";
import { awaitExit, killAll, type ProviderProcess, signal, spawnReporting } from "./processes.js";
import { TimedWatch } from "./timed-watch.js";
import { until } from "./until.js";
import type { ZookeeperServer } from "./zookeeper-server.js";

/** A running correctness provider and where it records. */
export interface CorrectnessProvider extends ProviderProcess {
  readonly recordPath: string;
  readonly address: string;
}

/**
 * Spawns a correctness provider registered through `registry` and waits, at most `timeoutMs`, for
 * its JSON line; a child that does not report in time is SIGKILLed.
 */
async function spawnProvider(name: string, registry: string, recordPath: string, env: Record<string, string>, timeoutMs = 20_000): Promise<CorrectnessProvider> {
  const started = await spawnReporting(new URL("./correctness-provider-process.js", import.meta.url), name, { ...env, FARCALL_REGISTRY: registry, CORRECTNESS_RECORD: recordPath }, timeoutMs);
  return { ...started, recordPath, address: `127.0.0.1:${started.port}` };
}

/** SIGKILLs every provider spawned here that still runs, each by its pid, and waits (5 s at most). */
export const killCorrectnessProviders = killAll;

/** One attempt of a call as the consumer's attempt interceptor saw it. */
export interface AttemptLog {
  readonly attempt: number;
  readonly startedAt: number;
  settledAt: number;
  /** The pid that answered, for a success. */
  pid?: number;
  /** For a failure: code, whether the request left (`sent`) and the provider (`details.address`). */
  error?: { readonly code: string; readonly sent: boolean; readonly address: string | undefined; readonly message: string };
}

/** One call as the caller saw it, with its attempts. */
export interface CallLog {
  readonly n: number;
  readonly method: "whoami" | "append";
  readonly issuedAt: number;
  settledAt: number;
  /** Pid of the provider that served it; undefined for a failure. */
  pid?: number;
  error?: { readonly code: string; readonly sent: boolean; readonly address: string | undefined; readonly message: string };
  readonly attempts: AttemptLog[];
}

function describeError(error: unknown): NonNullable<CallLog["error"]> {
  const e = FarcallError.from(error);
  const address = e.details["address"];
  return { code: e.code, sent: e.sent, address: typeof address === "string" ? address : undefined, message: e.message };
}

/** Every call and attempt of the consumer, by request id (the calls' only argument). */
export class CallLedger {
  readonly calls = new Map<number, CallLog>();

  /** The attempt interceptor: logs each attempt and tells the provider its number in metadata. */
  readonly interceptor: Interceptor = (next) => (call) => {
    const n = call.args[0];
    const log = typeof n === "number" ? this.calls.get(n) : undefined;
    const entry: AttemptLog = { attempt: call.attempt, startedAt: Date.now(), settledAt: 0 };
    log?.attempts.push(entry);
    return next({ ...call, metadata: { ...call.metadata, [attemptMetadataKey]: String(call.attempt) } }).then(
      (reply) => {
        entry.settledAt = Date.now();
        entry.pid = (reply.value as Served | undefined)?.pid ?? -1;
        return reply;
      },
      (error: unknown) => {
        entry.settledAt = Date.now();
        entry.error = describeError(error);
        throw error;
      },
    );
  };

  /** A call of `method` for a paced load, logged from issue to outcome. */
  loadCall(method: "whoami" | "append", stub: Stub<FaultsEchoService>): LoadCall {
    return {
      method,
      call: (n) => {
        const log: CallLog = { n, method, issuedAt: Date.now(), settledAt: 0, attempts: [] };
        this.calls.set(n, log);
        return stub[method](n).then(
          (served) => {
            log.settledAt = Date.now();
            log.pid = served.pid;
            return served;
          },
          (error: unknown) => {
            log.settledAt = Date.now();
            log.error = describeError(error);
            throw error;
          },
        );
      },
    };
  }
}

/**
 * TCP for the consumer that records, per provider address, when the first `closing` frame was
 * read from it (decoding a copy of what the connection reads; the connection is not disturbed).
 */
export function closingWatchingTransport(): { transport: Transport; closingReadAt: Map<string, number> } {
  const tcp = tcpTransport();
  const closingReadAt = new Map<string, number>();
  const observe = (link: Link): Link => {
    const decoder = new FrameDecoder();
    let decoding = true;
    return {
      remote: link.remote,
      get bufferedBytes() {
        return link.bufferedBytes;
      },
      write: (chunk) => link.write(chunk),
      end: () => link.end(),
      destroy: () => link.destroy(),
      onData: (listener) =>
        link.onData((chunk) => {
          if (decoding) {
            try {
              decoder.push(chunk, (frame) => {
                if (frame.flags & FrameFlags.closing && !closingReadAt.has(link.remote)) closingReadAt.set(link.remote, Date.now());
              });
            } catch {
              decoding = false; // a malformed stream is the connection's business, not this observer's
            }
          }
          listener(chunk);
        }),
      onClose: (listener) => link.onClose(listener),
      onDrain: (listener) => link.onDrain(listener),
      pause: () => link.pause(),
      resume: () => link.resume(),
    };
  };
  return {
    transport: {
      connect: async (address, abort) => observe(await tcp.connect(address, abort)),
      listen: (address, onLink) => tcp.listen(address, onLink),
    },
    closingReadAt,
  };
}

/** Providers, a consumer whose calls are all logged, and a watch on its registry. */
export interface CorrectnessCluster {
  readonly namespace: string;
  /** The registry address providers register through. */
  readonly address: string;
  readonly registry: Registry;
  readonly app: Application;
  readonly echo: Stub<FaultsEchoService>;
  readonly ledger: CallLedger;
  /** When the consumer first read `closing` from each provider address. */
  readonly closingReadAt: ReadonlyMap<string, number>;
  readonly watch: TimedWatch;
  /** Every provider spawned for this case, dead ones included. */
  readonly providers: CorrectnessProvider[];
  /** Spawns one more provider in `mode` (cleaned up with the case). */
  spawn(name: string, mode: ProviderMode, env?: Record<string, string>): Promise<CorrectnessProvider>;
  /** A fresh registry on the case's root (closed with the case), e.g. to register endpoints by hand. */
  extraRegistry(): Registry;
  /** Every provider's record, read now. */
  records(): Promise<Map<CorrectnessProvider, ProviderRecord>>;
}

/** Options of {@link withCorrectnessCluster}. */
export interface CorrectnessClusterOptions {
  readonly zk: ZookeeperServer;
  readonly sessionTimeoutMs: number;
  readonly providers: number;
  readonly mode: ProviderMode;
  /** Extra environment of every provider (CORRECTNESS_SLEEP_MS, …). */
  readonly env?: Record<string, string>;
}

/**
 * Runs `body` against a new cluster in a namespace of its own, then cleans everything up: closes
 * the consumer and the registries, SIGKILLs the providers (each by pid) and deletes the records.
 */
export async function withCorrectnessCluster(options: CorrectnessClusterOptions, body: (cluster: CorrectnessCluster) => Promise<void>): Promise<void> {
  const { zk, sessionTimeoutMs } = options;
  const namespace = `farcall-correctness-${randomBytes(4).toString("hex")}`;
  const address = `zookeeper://${zk.connect}/${namespace}?sessionTimeoutMs=${sessionTimeoutMs}`;
  const dir = await mkdtemp(join(tmpdir(), "farcall-correctness-"));
  const registries: Registry[] = [];
  const newRegistry = (): Registry => {
    const registry = zookeeperRegistry({ connect: zk.connect, root: `/${namespace}`, sessionTimeoutMs, cacheDir: false });
    registries.push(registry);
    return registry;
  };
  const registry = newRegistry();
  const ledger = new CallLedger();
  const { transport, closingReadAt } = closingWatchingTransport();
  const app = createApplication({
    name: "correctness-consumer",
    registry,
    handleSignals: false,
    env: {},
    warmupMs: 0,
    transport,
    attemptInterceptors: [ledger.interceptor],
  });
  const watch = new TimedWatch(registry, FaultsEcho.name, "correctness-consumer");
  const providers: CorrectnessProvider[] = [];
  const spawnOne = async (name: string, mode: ProviderMode, env: Record<string, string> = {}): Promise<CorrectnessProvider> => {
    const provider = await spawnProvider(name, address, join(dir, `${name}-${providers.length}.log`), { ...options.env, ...env, CORRECTNESS_MODE: mode });
    providers.push(provider);
    return provider;
  };
  const cluster: CorrectnessCluster = {
    namespace,
    address,
    registry,
    app,
    echo: app.client(FaultsEcho),
    ledger,
    closingReadAt,
    watch,
    providers,
    spawn: spawnOne,
    extraRegistry: newRegistry,
    records: async () => new Map(await Promise.all(providers.map(async (p) => [p, await readRecord(p.recordPath)] as const))),
  };
  try {
    for (let i = 1; i <= options.providers; i++) await spawnOne(`p${i}`, options.mode);
    const ports = providers.map((p) => p.port);
    if ((await until(() => watch.listsExactly(ports), 10_000)) === undefined) throw new Error(`the consumer's watch did not list ${ports.join(",")} within 10 s`);
    await body(cluster);
  } finally {
    const errors: unknown[] = [];
    const attempt = async (work: () => Promise<unknown> | unknown): Promise<void> => {
      try {
        await work();
      } catch (error) {
        errors.push(error);
      }
    };
    watch.unwatch();
    await attempt(() => app.close());
    await attempt(() => Promise.all(registries.map((r) => r.close())));
    await attempt(() => Promise.all(providers.map(async (p) => {
      signal(p.child, "SIGKILL");
      await awaitExit(p, 5000);
    })));
    await attempt(() => rm(dir, { recursive: true, force: true }));
    if (errors.length > 0) console.error("correctness cluster cleanup:", ...errors);
  }
}

/** The `q`-quantile (0..1) of `values`, nearest rank; NaN for none. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

/** `p50/p99/max` of latencies in ms, for diagnostics. */
export function latencySummary(values: readonly number[]): string {
  return `p50 ${quantile(values, 0.5)} ms, p99 ${quantile(values, 0.99)} ms, max ${quantile(values, 1)} ms over ${values.length} calls`;
}
