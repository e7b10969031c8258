// Shared by the governance-*.test.ts files: real providers and consumers built with
// createApplication over the in-memory transport and registry (no sockets), providers whose
// behaviour a test switches while calls run, and counters of what each provider executed.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { type Application, createApplication } from "../src/application.js";
import type { ApplicationOptions } from "../src/application-options.js";
import type { ProvideOptions } from "../src/application-options.js";
import type { ProviderSnapshot } from "../src/cluster/service-governance.js";
import { type Code, FarcallError } from "../src/errors/farcall-error.js";
import { createMemoryRegistryStore, type MemoryRegistryStore, memoryRegistry } from "../src/registry/memory-registry.js";
import type { Implementation } from "../src/server/service-table.js";
import { memoryTransport } from "../src/transport/memory-transport.js";
import type { Transport } from "../src/transport/transport.js";
import { type User, Users, type UserService } from "./fixtures.js";

export type Method = keyof UserService;

/** A provider of `Users` whose answers a test controls, counting the calls it executes. */
export class Provider {
  /** Calls executed (the implementation entered), per method. */
  readonly runs = new Map<Method, number>();
  /** Per method (or `*` for all): the code every call of it is answered with. */
  readonly #failures = new Map<Method | "*", Code>();
  #gate: Promise<void> | undefined;
  #open: () => void = () => {};

  constructor(
    readonly name: string,
    readonly app: Application,
  ) {}

  /** `host:port`, as routing rules and the governance snapshot name it. */
  get address(): string {
    const a = this.app.address ?? assert.fail(`${this.name} is not listening`);
    return `${a.host}:${a.port}`;
  }

  get port(): number {
    return (this.app.address ?? assert.fail(`${this.name} is not listening`)).port;
  }

  /** Calls of `method` executed so far (every method when omitted). */
  count(method?: Method): number {
    if (method !== undefined) return this.runs.get(method) ?? 0;
    let n = 0;
    for (const v of this.runs.values()) n += v;
    return n;
  }

  /** From now on, calls of `methods` (all when none given) throw a FarcallError with `code`. */
  fail(code: Code, ...methods: Method[]): void {
    if (methods.length === 0) this.#failures.set("*", code);
    for (const m of methods) this.#failures.set(m, code);
  }

  /** From now on, every call succeeds. */
  heal(): void {
    this.#failures.clear();
  }

  /** From now on, calls wait (after being counted) until {@link release}. */
  hold(): void {
    this.#gate ??= new Promise<void>((resolve) => (this.#open = resolve));
  }

  /** Lets the held calls go on; later calls no longer wait. */
  release(): void {
    this.#gate = undefined;
    this.#open();
  }

  /** Counts the call, waits at the gate, then fails or succeeds as set. */
  async enter(method: Method): Promise<void> {
    this.runs.set(method, this.count(method) + 1);
    const gate = this.#gate;
    if (gate !== undefined) await gate;
    const code = this.#failures.get(method) ?? this.#failures.get("*");
    if (code !== undefined) throw new FarcallError(code, `${this.name} answers ${code}`, { details: { provider: this.name } });
  }

  implementation(): Implementation<UserService> {
    const name = this.name;
    return {
      get: async (_ctx, id): Promise<User> => (await this.enter("get"), { id, name, age: 1, tags: [] }),
      insert: async () => (await this.enter("insert"), 1),
      fail: async () => await this.enter("fail"),
      slow: async (ctx, ms) => {
        await this.enter("slow");
        await sleep(ms, undefined, { signal: ctx.signal }).catch(() => undefined);
        return name;
      },
      echo: async (_ctx, value) => (await this.enter("echo"), value),
      notify: async () => await this.enter("notify"),
      whoami: async () => (await this.enter("whoami"), name),
      big: async (_ctx, bytes) => (await this.enter("big"), "x".repeat(bytes)),
    };
  }
}

export interface World {
  readonly store: MemoryRegistryStore;
  readonly transport: Transport;
  /** Starts a provider of `Users` named `name` (its `whoami` answers the name). */
  provider(name: string, options?: { app?: ApplicationOptions; provide?: ProvideOptions }): Promise<Provider>;
  /** A consumer application (not started: it provides nothing). */
  consumer(options?: ApplicationOptions): Application;
  /** Closes every application of the world. */
  close(): Promise<void>;
}

/** A world of applications sharing one in-memory registry store and transport. */
export function world(): World {
  const store = createMemoryRegistryStore();
  const transport = memoryTransport();
  const apps: Application[] = [];
  const base = { transport, env: {}, handleSignals: false, graceMs: 500, warmupMs: 0 } as const;
  return {
    store,
    transport,
    async provider(name, options = {}) {
      const app = createApplication({ ...base, name, registry: memoryRegistry({ store }), ...options.app });
      apps.push(app);
      const provider = new Provider(name, app);
      app.provide(Users, provider.implementation(), options.provide);
      await app.start();
      return provider;
    },
    consumer(options = {}) {
      const app = createApplication({ ...base, name: "consumer", registry: memoryRegistry({ store }), ...options });
      apps.push(app);
      return app;
    },
    async close() {
      await Promise.all(apps.splice(0).map((a) => a.close()));
    },
  };
}

/** The consumer's snapshot of the provider at `address`, undefined when it has none. */
export function findProvider(app: Application, address: string): ProviderSnapshot | undefined {
  for (const service of app.governance().services) {
    for (const p of service.providers) if (p.address === address) return p;
  }
  return undefined;
}

/** The consumer's snapshot of the provider at `address` (fails the test when it has none). */
export function providerState(app: Application, address: string): ProviderSnapshot {
  return findProvider(app, address) ?? assert.fail(`no provider ${address} in the governance snapshot`);
}

/** The error a call rejected with (fails the test when it resolved). */
export async function failure(call: Promise<unknown>): Promise<FarcallError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof FarcallError, `a FarcallError, got ${String(error)}`);
    return error;
  }
  return assert.fail("the call succeeded");
}

/** True when `promise` has settled before a macrotask (setImmediate) could run: nothing waited for I/O. */
export async function settlesBeforeIo(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return settled;
}

/** Waits (20 ms at a time, at most `ms`) until `done()` holds; fails the test otherwise. */
export async function until(done: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!done()) {
    if (Date.now() > end) assert.fail(`never happened within ${ms} ms: ${what}`);
    await sleep(20);
  }
}

/** Waits, one event-loop turn at a time (bounded), until `done()` holds. */
export async function untilTurns(done: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (done()) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.fail(`never happened: ${what}`);
}

/** Collects `process` warnings with `code` while the test runs; `stop()` removes the listener. */
export function warnings(code: string): { readonly seen: Error[]; stop(): void } {
  const seen: Error[] = [];
  const listener = (warning: Error & { code?: string }): void => {
    if (warning.code === code) seen.push(warning);
  };
  process.on("warning", listener);
  return { seen, stop: () => process.off("warning", listener) };
}
