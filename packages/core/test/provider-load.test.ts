// Provider-reported load through the whole call path: a provider's load report rides on its
// replies (metadata farcall-load) and the adaptive balancer multiplies it into that provider's cost.
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { type Application, createApplication } from "../src/application.js";
import { createMemoryRegistryStore, memoryRegistry } from "../src/registry/memory-registry.js";
import type { LoadReportOptions } from "../src/server/load-reporter.js";
import { memoryTransport } from "../src/transport/memory-transport.js";
import { Users, type UserService } from "./fixtures.js";
import type { Implementation } from "../src/server/service-table.js";

const apps: Application[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

function impl(name: string): Implementation<UserService> {
  return {
    get: (_ctx, id) => ({ id, name, age: 1, tags: [] }),
    insert: () => 1,
    fail: () => undefined,
    slow: () => name,
    echo: (_ctx, value) => value,
    notify: () => {},
    whoami: () => name,
    big: (_ctx, bytes) => "x".repeat(bytes),
  } as Implementation<UserService>;
}

/** Two providers reporting the given loads, a consumer using `loadBalancer`; returns calls per provider out of `calls`. */
async function share(loads: { busy: LoadReportOptions | false; idle: LoadReportOptions | false }, loadBalancer: string, calls: number): Promise<Map<string, number>> {
  const store = createMemoryRegistryStore();
  const transport = memoryTransport();
  const base = { transport, env: {}, handleSignals: false, warmupMs: 0, registry: memoryRegistry({ store }) } as const;
  for (const [name, loadReport] of Object.entries(loads)) {
    const app = createApplication({ ...base, name, loadReport, registry: memoryRegistry({ store }) });
    apps.push(app);
    app.provide(Users, impl(name));
    await app.start();
  }
  const consumer = createApplication({ ...base, name: "consumer", loadBalancer: loadBalancer as "adaptive", registry: memoryRegistry({ store }) });
  apps.push(consumer);
  const users = consumer.client(Users);
  const counts = new Map<string, number>();
  // Warm up: every connection's first reply carries the provider's report.
  for (let i = 0; i < 20; i++) await users.whoami();
  for (let round = 0; round < calls / 4; round++) {
    const names = await Promise.all([users.whoami(), users.whoami(), users.whoami(), users.whoami()]);
    for (const name of names) counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

describe("provider-reported load", () => {
  it("steers the adaptive balancer away from a provider reporting 90 % busy", async () => {
    const counts = await share({ busy: { sample: () => ({ busy: 0.9, memory: 0.1 }) }, idle: { sample: () => ({ busy: 0, memory: 0.1 }) } }, "adaptive", 800);
    const busy = counts.get("busy") ?? 0;
    // Typically a few calls; the margin absorbs latency noise (a GC pause inflating the other's estimate).
    assert.ok(busy < 800 * 0.3, `the busy provider got ${busy} of 800 calls`);
  });

  it("without reports the same providers share the calls", async () => {
    const counts = await share({ busy: false, idle: false }, "adaptive", 800);
    const busy = counts.get("busy") ?? 0;
    assert.ok(busy > 800 * 0.3, `the provider got ${busy} of 800 calls`);
  });

  it("shows each provider's last report in the governance snapshot", async () => {
    await share({ busy: { sample: () => ({ busy: 0.9, memory: 0.1 }) }, idle: false }, "adaptive", 40);
    const consumer = apps.at(-1) as Application;
    const providers = consumer.governance().services[0]?.providers ?? [];
    const reported = providers.map((p) => p.reportedLoad?.busy).sort();
    assert.deepEqual(reported, [0.9, undefined]);
  });
});
