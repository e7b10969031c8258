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
    // A steady 2 ms: latency noise on the memory transport must not outweigh the load factor.
    whoami: () => new Promise<string>((resolve) => setTimeout(() => resolve(name), 2)),
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
  // Warm up through a round-robin client of the same application (same connections, same load
  // records) until every reporting provider's first report (one interval after it started) has
  // ridden back on a reply: a provider the balancer avoids sends no replies, so no reports.
  const warm = consumer.client(Users, { loadBalancer: "roundRobin" });
  const reporting = Object.values(loads).filter((l) => l !== false).length;
  for (let i = 0; i < 500; i++) {
    await warm.whoami();
    const reported = consumer.governance().services[0]?.providers.filter((p) => p.reportedLoad !== undefined).length ?? 0;
    if (reported === reporting && i >= 20) break;
  }
  for (let round = 0; round < calls / 4; round++) {
    const names = await Promise.all([users.whoami(), users.whoami(), users.whoami(), users.whoami()]);
    for (const name of names) counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

describe("provider-reported load", () => {
  // shortestResponse rather than adaptive: its average, unlike adaptive's peak, is not thrown by a
  // single timer hiccup on a loaded machine, so the load factor is what decides.
  it("steers the balancer away from a provider reporting 90 % busy", async () => {
    const counts = await share({ busy: { intervalMs: 100, sample: () => ({ busy: 0.9, memory: 0.1 }) }, idle: { intervalMs: 100, sample: () => ({ busy: 0, memory: 0.1 }) } }, "shortestResponse", 800);
    const busy = counts.get("busy") ?? 0;
    assert.ok(busy < 800 * 0.1, `the busy provider got ${busy} of 800 calls`);
  });

  it("without reports the same providers share the calls", async () => {
    const counts = await share({ busy: false, idle: false }, "shortestResponse", 800);
    const busy = counts.get("busy") ?? 0;
    assert.ok(busy > 800 * 0.3, `the provider got ${busy} of 800 calls`);
  });

  it("shows each provider's last report in the governance snapshot", async () => {
    await share({ busy: { intervalMs: 100, sample: () => ({ busy: 0.9, memory: 0.1 }) }, idle: false }, "adaptive", 40);
    const consumer = apps.at(-1) as Application;
    const providers = consumer.governance().services[0]?.providers ?? [];
    const reported = providers.map((p) => p.reportedLoad?.busy).sort();
    assert.deepEqual(reported, [0.9, undefined]);
  });

  it("sends no report before a provider has measured one whole interval (an instant reads as 100 % busy)", async () => {
    const store = createMemoryRegistryStore();
    const transport = memoryTransport();
    const base = { transport, env: {}, handleSignals: false, warmupMs: 0 } as const;
    const provider = createApplication({ ...base, name: "fresh", registry: memoryRegistry({ store }), loadReport: { intervalMs: 60_000 } });
    apps.push(provider);
    provider.provide(Users, impl("fresh"));
    await provider.start();
    const consumer = createApplication({ ...base, name: "consumer", loadBalancer: "adaptive", registry: memoryRegistry({ store }) });
    apps.push(consumer);
    const users = consumer.client(Users);
    for (let i = 0; i < 5; i++) await users.whoami();
    assert.equal(consumer.governance().services[0]?.providers[0]?.reportedLoad, undefined);
  });
});
