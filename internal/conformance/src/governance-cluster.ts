// Harness of the governance fault tests (RELIABILITY.md T09-T12, T14): provider processes whose
// behaviour is switched over IPC (governance-provider-process.ts), registered in a ZooKeeper
// namespace of one case, a consumer application in this process with the case's governance
// options, an open-loop load that records every call, and the figures the tests report.
import assert from "node:assert/strict";
import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import type { TestContext } from "node:test";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { type Application, type ApplicationOptions, type ClientOptions, createApplication, FarcallError, type Registry, type Stub } from "@farcall/core";
import { zookeeperRegistry } from "@farcall/registry-zookeeper";
import { FaultsEcho, type FaultsEchoService, type Served } from "./faults-echo.js";
import type { Behaviour, ControlReply, ControlRequest, ExecutionLog, ProviderCounts, ProviderSetup } from "./governance-provider-process.js";
import { PacedLoad } from "./paced-load.js";
import { until } from "./until.js";
import type { ZookeeperServer } from "./zookeeper-server.js";

/** Epoch ms with sub-millisecond resolution, comparable with the provider processes' log times. */
export function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

/** A running provider process and its IPC control. */
export interface GovernanceProvider {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
  /** `host:port` as the consumer's snapshot names it. */
  readonly address: string;
  readonly child: ChildProcess;
  /** Switches what its calls meet (fields not given keep their value; the failure pattern restarts). */
  behave(behaviour: Partial<Behaviour>): Promise<void>;
  counts(): Promise<ProviderCounts>;
  /** The executions since the previous `log()` (or the start); clears them. */
  log(): Promise<ExecutionLog>;
  /** SIGKILLs it and waits (bounded) for its exit. Idempotent. */
  kill(): Promise<void>;
}

/** Every child spawned here and not yet seen exiting, for {@link killGovernanceProviders}. */
const live = new Set<ChildProcess>();
const controlTimeoutMs = 10_000;

function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

async function killChild(child: ChildProcess): Promise<void> {
  if (!running(child) || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  process.kill(child.pid, "SIGKILL");
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, 5000)))]);
  clearTimeout(timer);
}

/** SIGKILLs every provider spawned here that still runs, each by its pid; for `after`. */
export async function killGovernanceProviders(): Promise<void> {
  await Promise.all([...live].map((child) => killChild(child)));
}

/** Forks a provider process and waits, at most `timeoutMs`, until it has registered. */
export async function spawnGovernanceProvider(setup: ProviderSetup, timeoutMs = 20_000): Promise<GovernanceProvider> {
  const script = fileURLToPath(new URL("./governance-provider-process.js", import.meta.url));
  const child = fork(script, [setup.name], {
    env: { ...process.env, GOVERNANCE_SETUP: JSON.stringify(setup) },
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  live.add(child);
  child.once("exit", () => live.delete(child));
  const waiting = new Map<number, { resolve: (reply: ControlReply & { type: "reply" }) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }>();
  let nextId = 1;
  let ready: ((reply: ControlReply & { type: "ready" }) => void) | undefined;
  child.on("message", (message: ControlReply) => {
    if (message.type === "ready") return ready?.(message);
    const pending = waiting.get(message.id);
    if (pending === undefined) return;
    waiting.delete(message.id);
    clearTimeout(pending.timer);
    pending.resolve(message);
  });
  child.once("exit", (code, signal) => {
    for (const pending of waiting.values()) {
      clearTimeout(pending.timer);
      pending.reject(new Error(`provider ${setup.name} exited (${signal ?? code}) before replying`));
    }
    waiting.clear();
  });
  const request = (message: ControlRequest extends infer R ? (R extends { id: number } ? Omit<R, "id"> : never) : never): Promise<ControlReply & { type: "reply" }> =>
    new Promise((resolve, reject) => {
      if (!running(child) || !child.connected) return reject(new Error(`provider ${setup.name} is not running`));
      const id = nextId++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error(`provider ${setup.name} did not answer ${message.type} within ${controlTimeoutMs} ms`));
      }, controlTimeoutMs);
      waiting.set(id, { resolve, reject, timer });
      child.send({ ...message, id } as ControlRequest);
    });
  let timer: NodeJS.Timeout | undefined;
  try {
    const started = await new Promise<ControlReply & { type: "ready" }>((resolve, reject) => {
      ready = resolve;
      timer = setTimeout(() => reject(new Error(`provider ${setup.name} did not register within ${timeoutMs} ms`)), timeoutMs);
      child.once("exit", (code, signal) => reject(new Error(`provider ${setup.name} exited (${signal ?? code}) before registering`)));
    });
    if (started.pid !== child.pid) throw new Error(`provider ${setup.name} reported pid ${started.pid}, spawned ${child.pid}`);
    return {
      name: setup.name,
      pid: started.pid,
      port: started.port,
      address: `127.0.0.1:${started.port}`,
      child,
      behave: async (behaviour) => void (await request({ type: "behave", behaviour })),
      counts: async () => (await request({ type: "counts" })).counts as ProviderCounts,
      log: async () => (await request({ type: "log" })).log as ExecutionLog,
      kill: () => killChild(child),
    };
  } catch (error) {
    await killChild(child);
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** How the consumer sees one provider (`app.governance()`; the snapshot types are not exported by name). */
export type ProviderView = ReturnType<Application["governance"]>["services"][number]["providers"][number];

/** One case: providers in a fresh ZooKeeper namespace, and a consumer with the case's options. */
export interface GovernanceCase {
  readonly providers: readonly GovernanceProvider[];
  readonly app: Application;
  readonly echo: Stub<FaultsEchoService>;
  /** The consumer's view of each provider of faults.Echo now, in `providers` order. */
  snapshot(): ProviderView[];
  /** An open-loop load on `whoami` of `echo` (default the case's consumer), stopped with the case at the latest. */
  load(ratePerS: number, maxDurationMs: number, maxInFlight?: number, echo?: Stub<FaultsEchoService>): RecordedLoad;
  /** Another consumer application on the same providers (closed with the case), once it lists them all. */
  consumer(options: ApplicationOptions, client?: ClientOptions): Promise<{ readonly app: Application; readonly echo: Stub<FaultsEchoService> }>;
}

/** Options of {@link withGovernanceCase}. */
export interface GovernanceCaseOptions {
  readonly zk: ZookeeperServer;
  /** One setup per provider process (the registry is filled in). */
  readonly providers: readonly Omit<ProviderSetup, "registry">[];
  /** Governance options of the consumer application (a function: options naming the providers, e.g. routes). */
  readonly consumer?: ApplicationOptions | ((providers: readonly GovernanceProvider[]) => ApplicationOptions);
  readonly client?: ClientOptions | ((providers: readonly GovernanceProvider[]) => ClientOptions);
  /** Providers the consumer must have served from before the body runs (default: all). */
  readonly warm?: readonly number[];
}

const sessionTimeoutMs = 4000;

/**
 * Runs `body` against new provider processes and a new consumer, then cleans up: stops the loads,
 * closes the consumer and its registry, SIGKILLs the providers.
 */
export async function withGovernanceCase(options: GovernanceCaseOptions, body: (c: GovernanceCase) => Promise<void>): Promise<void> {
  const { zk } = options;
  const namespace = `farcall-governance-${randomBytes(4).toString("hex")}`;
  const address = `zookeeper://${zk.connect}/${namespace}?sessionTimeoutMs=${sessionTimeoutMs}`;
  const providers: GovernanceProvider[] = [];
  const loads: RecordedLoad[] = [];
  const consumers: { app: Application; registry: Registry }[] = [];
  let registry: Registry | undefined;
  let app: Application | undefined;
  try {
    const spawned = await Promise.allSettled(options.providers.map((setup) => spawnGovernanceProvider({ ...setup, registry: address })));
    for (const s of spawned) if (s.status === "fulfilled") providers.push(s.value);
    const failed = spawned.find((s) => s.status === "rejected");
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
    registry = zookeeperRegistry({ connect: zk.connect, root: `/${namespace}`, sessionTimeoutMs, cacheDir: false });
    const consumerOptions = typeof options.consumer === "function" ? options.consumer(providers) : options.consumer;
    app = createApplication({ name: "governance-consumer", registry, handleSignals: false, env: {}, warmupMs: 0, ...consumerOptions });
    const consumer = app;
    const echo = consumer.client(FaultsEcho, (typeof options.client === "function" ? options.client(providers) : options.client) ?? {});
    const byPid = new Map(providers.map((p, i) => [p.pid, i]));
    const snapshot = (): ProviderView[] => {
      const service = consumer.governance().services.find((s) => s.service === FaultsEcho.name);
      const list = service?.providers ?? [];
      return providers.map((p) => list.find((s) => s.address === p.address)).filter((s): s is ProviderView => s !== undefined);
    };
    const listed = await until(() => snapshot().length === providers.length, 10_000, 20);
    assert.ok(listed !== undefined, `the consumer did not list the ${providers.length} providers within 10 s`);
    const warm = options.warm ?? providers.map((_, i) => i);
    const seen = new Set<number>();
    const warmedAt = await until(
      async () => {
        const served = await Promise.allSettled(Array.from({ length: 8 }, (_, n) => echo.whoami(n)));
        for (const s of served) if (s.status === "fulfilled") seen.add(byPid.get(s.value.pid) ?? -1);
        return warm.every((i) => seen.has(i));
      },
      10_000,
      10,
    );
    assert.ok(warmedAt !== undefined, `the consumer was not served by providers ${warm.join(", ")} within 10 s (served by ${[...seen].join(", ")})`);
    await body({
      providers,
      app: consumer,
      echo,
      snapshot,
      load: (ratePerS, maxDurationMs, maxInFlight = 256, stub = echo) => {
        const load = new RecordedLoad((n) => stub.whoami(n), ratePerS, maxDurationMs, maxInFlight);
        loads.push(load);
        return load;
      },
      consumer: async (appOptions, client = {}) => {
        const extraRegistry = zookeeperRegistry({ connect: zk.connect, root: `/${namespace}`, sessionTimeoutMs, cacheDir: false });
        const extra = createApplication({ name: "governance-consumer", registry: extraRegistry, handleSignals: false, env: {}, warmupMs: 0, ...appOptions });
        consumers.push({ app: extra, registry: extraRegistry });
        const stub = extra.client(FaultsEcho, client);
        const listsAll = (): boolean => (extra.governance().services.find((s) => s.service === FaultsEcho.name)?.providers.length ?? 0) === providers.length;
        assert.ok((await until(listsAll, 10_000, 20)) !== undefined, `a second consumer did not list the ${providers.length} providers within 10 s`);
        return { app: extra, echo: stub };
      },
    });
  } finally {
    const errors: unknown[] = [];
    const attempt = async (work: () => Promise<unknown> | unknown): Promise<void> => {
      try {
        await work();
      } catch (error) {
        errors.push(error);
      }
    };
    await attempt(() => Promise.all(loads.map((l) => l.stop())));
    for (const extra of consumers) {
      await attempt(() => extra.app.close());
      await attempt(() => extra.registry.close());
    }
    await attempt(() => app?.close());
    await attempt(() => registry?.close());
    await attempt(() => Promise.all(providers.map((p) => p.kill())));
    if (errors.length > 0) console.error("governance case cleanup:", ...errors);
  }
}

/** One call of a {@link RecordedLoad}: when it was issued and settled (epoch ms), who served it or how it failed. */
export interface CallRecord {
  readonly start: number;
  readonly end: number;
  /** The serving provider's pid; 0 for a failed call. */
  readonly pid: number;
  /** `""` for a success, else the error's code. */
  readonly code: string;
  /** The error's `details.reason`, if a string. */
  readonly reason: string | undefined;
}

/** An open-loop load ({@link PacedLoad}) on one call that records every call. */
export class RecordedLoad {
  readonly records: CallRecord[] = [];
  readonly paced: PacedLoad;

  constructor(call: (n: number) => Promise<Served>, ratePerS: number, maxDurationMs: number, maxInFlight: number) {
    const records = this.records;
    const recorded = (n: number): Promise<Served> => {
      const start = epochNow();
      return call(n).then(
        (served) => {
          records.push({ start, end: epochNow(), pid: served.pid, code: "", reason: undefined });
          return served;
        },
        (error: unknown) => {
          const e = FarcallError.from(error);
          const reason = e.details["reason"];
          records.push({ start, end: epochNow(), pid: 0, code: e.code, reason: typeof reason === "string" ? reason : undefined });
          throw error;
        },
      );
    };
    this.paced = new PacedLoad([{ method: "whoami", call: recorded }], { ratePerS, tickMs: 5, maxDurationMs, maxInFlight });
  }

  /** Stops issuing and waits for the calls in flight. */
  async stop(): Promise<this> {
    await this.paced.stop();
    return this;
  }

  /** The calls issued in [from, to) (epoch ms). */
  between(from: number, to: number): CallRecord[] {
    return this.records.filter((r) => r.start >= from && r.start < to);
  }
}

/**
 * A closed loop: `workers` callers each calling again as soon as their previous call settles,
 * for `durationMs` (and at most `maxCalls` calls in all). Resolves with the calls' records.
 */
export async function closedLoop(call: (n: number) => Promise<Served>, workers: number, durationMs: number, maxCalls = 1_000_000): Promise<CallRecord[]> {
  const records: CallRecord[] = [];
  const end = Date.now() + durationMs;
  let issued = 0;
  const worker = async (): Promise<void> => {
    while (Date.now() < end && issued < maxCalls) {
      const n = issued++;
      const start = epochNow();
      try {
        const served = await call(n);
        records.push({ start, end: epochNow(), pid: served.pid, code: "", reason: undefined });
      } catch (error) {
        const e = FarcallError.from(error);
        const reason = e.details["reason"];
        records.push({ start, end: epochNow(), pid: 0, code: e.code, reason: typeof reason === "string" ? reason : undefined });
      }
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
  return records;
}

/** The `q`-quantile (0..1) of `values` (nearest rank); NaN when empty. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

/** `value` with `digits` decimals, for diagnostics. */
export function fixed(value: number, digits = 1): string {
  return Number.isFinite(value) ? value.toFixed(digits) : String(value);
}

/** Acceptance bars of one test: violations collected and asserted at once, figures as TAP diagnostics. */
export function bars(t: TestContext) {
  const problems: string[] = [];
  return {
    check(ok: boolean, message: string): void {
      if (!ok) problems.push(message);
    },
    note(message: string): void {
      t.diagnostic(message);
    },
    done(): void {
      assert.deepEqual(problems, [], `${problems.length} acceptance bar(s) missed:\n- ${problems.join("\n- ")}`);
    },
  };
}
