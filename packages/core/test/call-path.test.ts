// The whole call path in one process: stub → interceptors → failover → balancer → connection →
// server → implementation, over the in-memory transport and registry (no sockets).
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type Application, createApplication } from "../src/application.js";
import type { Interceptor } from "../src/call/call.js";
import { withOptions } from "../src/client/stub.js";
import { FarcallError } from "../src/errors/farcall-error.js";
import { createMemoryRegistryStore, memoryRegistry } from "../src/registry/memory-registry.js";
import { memoryTransport } from "../src/transport/memory-transport.js";
import { type User, Users, type UserService } from "./fixtures.js";
import type { Implementation } from "../src/server/service-table.js";

const apps: Application[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

function world() {
  const store = createMemoryRegistryStore();
  const transport = memoryTransport();
  const base = { transport, env: {}, handleSignals: false, graceMs: 1000, warmupMs: 0 } as const;
  return {
    async provider(name: string, impl: Partial<Implementation<UserService>> = {}, extra: Record<string, unknown> = {}) {
      const app = createApplication({ ...base, name, registry: memoryRegistry({ store }), ...extra });
      apps.push(app);
      app.provide(Users, { ...implementation(name), ...impl });
      await app.start();
      return app;
    },
    consumer(extra: Record<string, unknown> = {}) {
      const app = createApplication({ ...base, name: "consumer", registry: memoryRegistry({ store }), ...extra });
      apps.push(app);
      return app;
    },
  };
}

function implementation(name: string): Implementation<UserService> {
  const users = new Map<string, User>();
  return {
    get: (_ctx, id) => users.get(id),
    insert: async (_ctx, user) => {
      users.set(user.id, user);
      return users.size;
    },
    fail: (_ctx, message) => {
      throw new RangeError(message);
    },
    slow: async (ctx, ms) => {
      await sleep(ms, undefined, { signal: ctx.signal }).catch(() => undefined);
      return ctx.signal.aborted ? "aborted" : "done";
    },
    echo: (_ctx, value) => value,
    notify: () => {},
    whoami: () => name,
    big: (_ctx, bytes) => "x".repeat(bytes),
  };
}

describe("call path (in-process)", () => {
  it("calls a provider as if it were local, with types that survive the wire", async () => {
    const w = world();
    await w.provider("p1");
    const users = w.consumer().client(Users);
    const born = new Date("1990-01-02T03:04:05.678Z");
    assert.equal(await users.insert({ id: "1", name: "Ada", age: 36, tags: ["a", "b", "c"], born }), 1);
    const got = await users.get("1");
    assert.deepEqual(got, { id: "1", name: "Ada", age: 36, tags: ["a", "b", "c"], born });
    assert.ok(got?.born instanceof Date);
    assert.equal(await users.get("missing"), undefined);
    const value = { n: 10n ** 15n, m: new Map<unknown, unknown>([[1, "x"]]), s: new Set([1, 2]), u: undefined, z: null };
    assert.deepEqual(await users.echo(value), value);
  });

  it("delivers a provider exception as `application` with its name and message", async () => {
    const w = world();
    await w.provider("p1");
    const users = w.consumer().client(Users);
    const error = await users.fail("boom").catch((e: unknown) => e);
    assert.ok(error instanceof FarcallError);
    assert.equal(error.code, "application");
    assert.equal(error.message, "boom");
    assert.equal(error.details["name"], "RangeError");
    assert.equal(error.details["remoteStack"], undefined, "no stack unless includeStack");
  });

  it("sends the stack only when includeStack is on", async () => {
    const w = world();
    await w.provider("p1", {}, { includeStack: true });
    const error = (await w.consumer().client(Users).fail("boom").catch((e: unknown) => e)) as FarcallError;
    assert.match(String(error.details["remoteStack"]), /RangeError: boom/);
  });

  it("fails with deadline_exceeded at the call's timeout and aborts the provider's signal", async () => {
    const w = world();
    await w.provider("p1");
    const users = withOptions(w.consumer().client(Users), { timeoutMs: 50 });
    const started = Date.now();
    const error = (await users.slow(2000).catch((e: unknown) => e)) as FarcallError;
    assert.equal(error.code, "deadline_exceeded");
    assert.ok(Date.now() - started < 1000);
  });

  it("cancels a call with its AbortSignal", async () => {
    const w = world();
    await w.provider("p1");
    const controller = new AbortController();
    const users = withOptions(w.consumer().client(Users), { signal: controller.signal });
    const pending = users.slow(5000);
    setTimeout(() => controller.abort(), 20);
    const error = (await pending.catch((e: unknown) => e)) as FarcallError;
    assert.equal(error.code, "canceled");
  });

  it("passes metadata to the provider's context", async () => {
    const w = world();
    let seen: unknown;
    await w.provider("p1", { whoami: (ctx) => ((seen = ctx.metadata["tenant"]), "p1") });
    await withOptions(w.consumer().client(Users), { metadata: { tenant: "acme" } }).whoami();
    assert.equal(seen, "acme");
  });

  it("runs oneway calls without waiting for a reply", async () => {
    const w = world();
    let got = "";
    await w.provider("p1", { notify: (_ctx, event) => void (got = event) });
    assert.equal(await w.consumer().client(Users).notify("hello"), undefined);
    for (let i = 0; i < 100 && got === ""; i++) await sleep(5);
    assert.equal(got, "hello");
  });

  it("answers unimplemented for a service nobody provides here", async () => {
    const w = world();
    const p = await w.provider("p1");
    const consumer = w.consumer({ registry: `direct://${p.address?.host}:${p.address?.port}` });
    const { defineService } = await import("../src/contract/define-service.js");
    const Other = defineService<{ x(): void }>("test.Other", { version: "1.0.0", methods: { x: {} } });
    const error = (await consumer.client(Other).x().catch((e: unknown) => e)) as FarcallError;
    assert.equal(error.code, "unimplemented", error.message);
  });

  it("spreads calls over providers and fails over when one goes away", async () => {
    const w = world();
    await w.provider("p1");
    const p2 = await w.provider("p2");
    const users = w.consumer({ loadBalancer: "roundRobin" }).client(Users);
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) seen.add(await users.whoami());
    assert.deepEqual([...seen].sort(), ["p1", "p2"]);
    await p2.close();
    for (let i = 0; i < 20; i++) assert.equal(await users.whoami(), "p1");
  });

  it("runs per-call interceptors once and per-attempt interceptors per attempt", async () => {
    const w = world();
    await w.provider("p1");
    const log: string[] = [];
    const tap = (label: string): Interceptor => (next) => (call) => {
      log.push(`${label}:${call.ref.method}:${call.attempt}`);
      return next(call);
    };
    const users = w.consumer({ interceptors: [tap("call")], attemptInterceptors: [tap("attempt")] }).client(Users);
    await users.whoami();
    assert.deepEqual(log, ["call:whoami:0", "attempt:whoami:0"]);
  });

  it("reports unavailable when no provider exists", async () => {
    const w = world();
    const users = withOptions(w.consumer().client(Users), { timeoutMs: 200 });
    const error = (await users.whoami().catch((e: unknown) => e)) as FarcallError;
    assert.equal(error.code, "unavailable");
    assert.equal(error.sent, false);
  });
});
