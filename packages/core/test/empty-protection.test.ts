// Empty-push protection end to end, in one process (memory registry and transport): a registry
// that suddenly lists no provider does not cut a consumer off from providers it is connected to;
// a provider that really leaves (`closing`, or a dropped connection) is removed at once.
import assert from "node:assert/strict";
import { afterEach, describe, it, type TestContext } from "node:test";
import { setImmediate as nextTurn } from "node:timers/promises";
import { type Application, createApplication } from "../src/application.js";
import { FarcallError } from "../src/errors/farcall-error.js";
import { createMemoryRegistryStore, memoryRegistry, type MemoryRegistryStore } from "../src/registry/memory-registry.js";
import type { Registration, Registry, WatchOptions } from "../src/registry/registry.js";
import { memoryTransport } from "../src/transport/memory-transport.js";
import type { Link, Transport } from "../src/transport/transport.js";
import { Users } from "./fixtures.js";

const apps: Application[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

/** A registry over `store` that hands the test the registrations made and the watches opened through it. */
function recordingRegistry(store: MemoryRegistryStore) {
  const inner = memoryRegistry({ store });
  const registrations: Registration[] = [];
  const watches: Array<WatchOptions | undefined> = [];
  const registry: Registry = {
    kind: inner.kind,
    async register(endpoint) {
      const registration = await inner.register(endpoint);
      registrations.push(registration);
      return registration;
    },
    watch(service, onChange, options) {
      watches.push(options);
      return inner.watch(service, onChange, options);
    },
    close: () => inner.close(),
  };
  return { registry, registrations, watches };
}

/** A transport whose accepted (provider-side) links the test can drop, as a crash or a network cut would. */
function droppableTransport(inner: Transport): { transport: Transport; drop: () => void } {
  const accepted: Link[] = [];
  return {
    transport: {
      connect: (address, signal) => inner.connect(address, signal),
      listen: (address, onLink) =>
        inner.listen(address, (link) => {
          accepted.push(link);
          onLink(link);
        }),
    },
    drop: () => {
      for (const link of accepted.splice(0)) link.destroy();
    },
  };
}

/** One provider and one consumer sharing a memory registry store and a memory network. */
async function world(t: TestContext, consumerOptions: Record<string, unknown> = {}) {
  const warnings = t.mock.method(process, "emitWarning", () => {});
  const store = createMemoryRegistryStore();
  const network = droppableTransport(memoryTransport());
  const base = { transport: network.transport, env: {}, handleSignals: false, graceMs: 1000, warmupMs: 0 } as const;
  const { registry, registrations } = recordingRegistry(store);
  const provider = createApplication({ ...base, name: "provider", registry });
  apps.push(provider);
  provider.provide(Users, {
    get: () => undefined,
    insert: () => Promise.resolve(0),
    fail: () => {},
    slow: () => Promise.resolve("done"),
    echo: (_ctx, value) => value,
    notify: () => {},
    whoami: () => "provider",
    big: () => "",
  });
  await provider.start();
  const watcher = recordingRegistry(store);
  const consumer = createApplication({ ...base, name: "consumer", registry: watcher.registry, ...consumerOptions });
  apps.push(consumer);
  const users = consumer.client(Users);
  assert.deepEqual(watcher.watches, [{ application: "consumer" }], "the consumer watches under its application name");
  return {
    provider,
    users,
    drop: network.drop,
    /** Removes the provider from the registry without it closing, and lets the push reach the consumer. */
    async unregister(): Promise<void> {
      await Promise.all(registrations.map((r) => r.unregister()));
      assert.deepEqual(store.endpoints(Users.name), [], "the registry lists no provider");
      await nextTurn();
    },
    emptyPushWarnings: () => warnings.mock.calls.filter((call) => (call.arguments[1] as { code?: string } | undefined)?.code === "FARCALL_EMPTY_PUSH").length,
  };
}

/** Asserts the call fails with `unavailable`, `sent: false`, because no provider is left to pick. */
async function assertNoProvider(call: Promise<unknown>): Promise<void> {
  const error = await call.then(
    () => assert.fail("the call succeeded"),
    (e: unknown) => e,
  );
  assert.ok(error instanceof FarcallError, String(error));
  assert.equal(error.code, "unavailable");
  assert.equal(error.sent, false);
  assert.match(error.message, /no available provider/);
}

describe("empty-push protection (in-process)", () => {
  it("keeps calling a connected provider the registry stopped listing, until it sends closing", async (t) => {
    const w = await world(t);
    assert.equal(await w.users.whoami(), "provider");
    // Fake setTimeout from here on, for the warning delay only (calls use the timing wheel).
    t.mock.timers.enable({ apis: ["setTimeout"] });
    await w.unregister();
    for (let i = 0; i < 5; i++) assert.equal(await w.users.whoami(), "provider");
    assert.equal(w.emptyPushWarnings(), 0, "not before the warning delay");
    t.mock.timers.tick(1000);
    assert.equal(w.emptyPushWarnings(), 1);
    t.mock.timers.reset();
    await w.provider.close(); // sends `closing`
    await assertNoProvider(w.users.whoami());
    assert.equal(w.emptyPushWarnings(), 1);
  });

  it("removes a kept provider as soon as its connection drops, even though it could reconnect", async (t) => {
    const w = await world(t);
    assert.equal(await w.users.whoami(), "provider");
    await w.unregister();
    assert.equal(await w.users.whoami(), "provider");
    w.drop();
    for (let i = 0; i < 10; i++) await nextTurn();
    await assertNoProvider(w.users.whoami());
  });

  for (const [name, options] of [
    ["emptyProtection: false", { emptyProtection: false }],
    ["FARCALL_EMPTY_PROTECTION=false", { env: { FARCALL_EMPTY_PROTECTION: "false" } }],
  ] as const) {
    it(`takes the empty list as it is with ${name}`, async (t) => {
      const w = await world(t, options);
      assert.equal(await w.users.whoami(), "provider");
      await w.unregister();
      await assertNoProvider(w.users.whoami());
      assert.equal(w.emptyPushWarnings(), 0);
    });
  }
});
