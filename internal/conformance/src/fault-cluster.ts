import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Application, createApplication, type Registry, type Stub } from "@farcall/core";
import { FaultsEcho, type FaultsEchoService } from "./faults-echo.js";
import { type LoadCall, PacedLoad } from "./paced-load.js";
import { killProvider, type ProviderProcess, spawnProvider } from "./processes.js";
import { TimedWatch } from "./timed-watch.js";
import { until } from "./until.js";

/**
 * The registry under test, for fault tests that do not depend on its kind: a server that can be
 * halted (an outage, data kept) and started again, and registries in a namespace of one case.
 */
export interface FaultTarget {
  readonly server: { start(): Promise<void>; halt(): Promise<void> };
  /** The registry address (`FARCALL_REGISTRY`) of `namespace`, for provider processes. */
  address(namespace: string): string;
  /** A consumer's registry instance in `namespace`, with its cache file in `cacheDir`. */
  registry(namespace: string, cacheDir: string): Registry;
}

/** Provider processes, one consumer application in this process, and a watch on its registry. */
export interface Cluster {
  /** The namespace of this case alone (a ZooKeeper root, an etcd or Redis key prefix). */
  readonly namespace: string;
  /** The address the providers register through. */
  readonly address: string;
  /** The consumer registry's cache directory (the `cacheDir` option). */
  readonly cacheDir: string;
  /** The consumer's registry instance; `watch` is a second watch on it. */
  readonly registry: Registry;
  readonly app: Application;
  readonly echo: Stub<FaultsEchoService>;
  /** Sees the lists the consumer's directory sees, each with its arrival time. */
  readonly watch: TimedWatch;
  /** Every provider spawned for this case, dead ones included. */
  readonly providers: ProviderProcess[];
  /** A fresh consumer registry on the same root and cache directory as the consumer's. */
  consumerRegistry(): Registry;
  /** Spawns one more provider (cleaned up with the case). */
  spawn(name: string): Promise<ProviderProcess>;
  /** An open-loop load on the consumer at `ratePerS` (bounded to `maxDurationMs`). */
  load(calls: readonly ("whoami" | "append")[], ratePerS?: number, maxDurationMs?: number): PacedLoad;
  /** Waits at most `timeoutMs` until each of `providers` has served a call of `load`. */
  servedByAll(load: PacedLoad, providers: readonly ProviderProcess[], timeoutMs: number): Promise<boolean>;
  /** Runs at cleanup, before the consumer closes (last registered first). */
  defer(cleanup: () => Promise<unknown> | unknown): void;
}

/** Options of {@link withCluster}. */
export interface ClusterOptions {
  readonly target: FaultTarget;
  readonly providers: number;
}

/**
 * Runs `body` against a new cluster, then cleans everything up: stops any load still running,
 * restarts the server if the body left it halted (so closing sessions is quick), runs deferred
 * cleanups, closes the consumer and its registry, SIGKILLs the providers and deletes the cache
 * directory.
 */
export async function withCluster(options: ClusterOptions, body: (cluster: Cluster) => Promise<void>): Promise<void> {
  const { target } = options;
  const namespace = `farcall-faults-${randomBytes(4).toString("hex")}`;
  const address = target.address(namespace);
  const cacheDir = await mkdtemp(join(tmpdir(), "farcall-faults-cache-"));
  const consumerRegistry = (): Registry => target.registry(namespace, cacheDir);
  const registry = consumerRegistry();
  const app = createApplication({ name: "faults-consumer", registry, handleSignals: false, env: {}, warmupMs: 0 });
  const providers: ProviderProcess[] = [];
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  const loads: PacedLoad[] = [];
  const watch = new TimedWatch(registry, FaultsEcho.name, "faults-consumer");
  const echo = app.client(FaultsEcho);
  const calls: Record<"whoami" | "append", LoadCall> = {
    whoami: { method: "whoami", call: (n) => echo.whoami(n) },
    append: { method: "append", call: (n) => echo.append(n) },
  };
  const spawn = async (name: string): Promise<ProviderProcess> => {
    const provider = await spawnProvider(name, address);
    providers.push(provider);
    return provider;
  };
  const cluster: Cluster = {
    namespace,
    address,
    cacheDir,
    registry,
    app,
    echo,
    watch,
    providers,
    consumerRegistry,
    spawn,
    load: (kinds, ratePerS = 2000, maxDurationMs = 60_000) => {
      const load = new PacedLoad(kinds.map((k) => calls[k]), { ratePerS, tickMs: 5, maxDurationMs, maxInFlight: 1024 });
      loads.push(load);
      return load;
    },
    servedByAll: async (load, some, timeoutMs) =>
      (await until(() => some.every((p) => load.firstReplyFrom(p.pid) !== undefined), timeoutMs)) !== undefined,
    defer: (cleanup) => void cleanups.push(cleanup),
  };
  try {
    await Promise.all(Array.from({ length: options.providers }, (_, i) => spawn(`p${i + 1}`)));
    const t0 = Date.now();
    const ports = providers.map((p) => p.port);
    if ((await until(() => watch.listsExactly(ports), 10_000)) === undefined) {
      throw new Error(`the consumer's watch did not list providers ${ports.join(",")} within 10 s: ${watch.history(t0)}`);
    }
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
    // A body that failed midway may have left its load running (stop() is idempotent).
    await attempt(() => Promise.all(loads.map((l) => l.stop())));
    await attempt(() => target.server.start());
    for (const cleanup of cleanups.reverse()) await attempt(cleanup);
    watch.unwatch();
    await attempt(() => app.close());
    await attempt(() => registry.close());
    await attempt(() => Promise.all(providers.map((p) => killProvider(p))));
    await attempt(() => rm(cacheDir, { recursive: true, force: true }));
    if (errors.length > 0) console.error("fault cluster cleanup:", ...errors);
  }
}
