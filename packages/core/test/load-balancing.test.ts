// Load balancing through the whole call path, in one process over the in-memory transport and
// registry: the balancers chosen by name, the call statistics the client records for them, and the
// adaptive balancer steering away from a provider that turns slow.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type Application, createApplication } from "../src/application.js";
import { withOptions } from "../src/client/stub.js";
import type { EndpointStatsTable } from "../src/cluster/endpoint-stats.js";
import type { LoadBalancer } from "../src/cluster/load-balancers/load-balancer.js";
import { weightedRandom } from "../src/cluster/load-balancers/weighted-random.js";
import { loadBalancerNames } from "../src/config/load-balancer-of.js";
import { createMemoryRegistryStore, memoryRegistry } from "../src/registry/memory-registry.js";
import type { Implementation } from "../src/server/service-table.js";
import type { Endpoint } from "../src/registry/endpoint.js";
import { memoryTransport } from "../src/transport/memory-transport.js";
import { assertBadOption } from "./assertions.js";
import { type User, Users, type UserService } from "./fixtures.js";

const apps: Application[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

function world() {
  const store = createMemoryRegistryStore();
  const transport = memoryTransport();
  const base = { transport, env: {}, handleSignals: false, graceMs: 2000, warmupMs: 0 } as const;
  return {
    async provider(name: string, impl: Partial<Implementation<UserService>> = {}) {
      const app = createApplication({ ...base, name, registry: memoryRegistry({ store }) });
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
  return {
    get: (_ctx, id): User => ({ id, name, age: 1, tags: [] }),
    insert: () => 1,
    fail: () => undefined,
    slow: async (ctx, ms) => {
      await sleep(ms, undefined, { signal: ctx.signal }).catch(() => undefined);
      return name;
    },
    echo: (_ctx, value) => value,
    notify: () => {},
    whoami: () => name,
    big: (_ctx, bytes) => "x".repeat(bytes),
  };
}

/** Runs `workers` loops of `call` until `calls` have been made or `ms` have passed; counts results. */
async function load(call: () => Promise<string>, workers: number, calls: number, ms: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  const until = Date.now() + ms;
  let started = 0;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (started < calls && Date.now() < until) {
        started++;
        const who = await call();
        counts.set(who, (counts.get(who) ?? 0) + 1);
      }
    }),
  );
  return counts;
}

describe("load balancing (in-process)", () => {
  it("adaptive: a provider that turns 500 ms slow gets under 10 % of the calls that follow", async () => {
    // Real timers here: the slowness must be real for the client to measure it. Bounded: at most
    // 1500 calls or 3 s of load, the slow provider holding a call for 500 ms at a time.
    const w = world();
    let slow = false;
    await w.provider("p1");
    await w.provider("p2");
    await w.provider("p3", {
      whoami: async () => {
        if (slow) await sleep(500);
        return "p3";
      },
    });
    const users = w.consumer({ loadBalancer: "adaptive" }).client(Users);
    const warm = await load(() => users.whoami(), 8, 600, 3000);
    // A provider never measured is tried as soon as it is drawn: each one has a history before p3 slows.
    for (const p of ["p1", "p2", "p3"]) assert.ok((warm.get(p) ?? 0) > 0, `while all are fast each is used: ${JSON.stringify([...warm])}`);
    slow = true;
    const started = Date.now();
    const after = await load(() => users.whoami(), 8, 1500, 3000);
    const total = [...after.values()].reduce((a, b) => a + b, 0);
    const share = (after.get("p3") ?? 0) / total;
    assert.ok(total >= 300, `enough calls to judge: ${total}`);
    assert.ok(share < 0.1, `p3 took ${(share * 100).toFixed(1)} % of ${total} calls: ${JSON.stringify([...after])}`);
    assert.ok(Date.now() - started < 10_000);
  });

  it("leastActive: calls go elsewhere while a provider is busy", async () => {
    const w = world();
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const held = async (name: string): Promise<string> => {
      await gate;
      return name;
    };
    await w.provider("p1", { slow: () => held("p1") });
    await w.provider("p2", { slow: () => held("p2") });
    const users = w.consumer({ loadBalancer: "leastActive" }).client(Users);
    await Promise.all([users.whoami(), users.whoami()]); // both connected
    const busy = users.slow(0);
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) seen.add(await users.whoami());
    release();
    const busyOne = await busy;
    assert.equal(seen.size, 1);
    assert.ok(!seen.has(busyOne), `the busy provider ${busyOne} took none of the other calls`);
  });

  it("consistentHash on a metadata key keeps each user on one provider, and spreads users", async () => {
    const w = world();
    await w.provider("p1");
    await w.provider("p2");
    await w.provider("p3");
    const users = w.consumer().client(Users, { loadBalancer: "consistentHash", hashKey: { metadata: "userId" } });
    const home = new Map<string, string>();
    for (let round = 0; round < 3; round++) {
      for (let u = 0; u < 30; u++) {
        const who = await withOptions(users, { metadata: { userId: `u${u}` } }).whoami();
        if (round === 0) home.set(`u${u}`, who);
        else assert.equal(who, home.get(`u${u}`), `u${u} stays on ${home.get(`u${u}`)}`);
      }
    }
    assert.equal(new Set(home.values()).size, 3);
    const byArgument = w.consumer({ loadBalancer: "consistentHash" }).client(Users);
    const first = (await byArgument.get("user-7"))?.name;
    for (let i = 0; i < 5; i++) assert.equal((await byArgument.get("user-7"))?.name, first, "default key: the first argument");
  });

  it("records call statistics only for balancers that read them: in flight from the pick, latency, outcome", async () => {
    const w = world();
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    await w.provider("p1", {
      whoami: async () => {
        await gate;
        return "p1";
      },
    });
    let passedTable: EndpointStatsTable | undefined;
    const tableOf = (): EndpointStatsTable | undefined => passedTable;
    let picked: Endpoint | undefined;
    const inner = weightedRandom();
    const reading: LoadBalancer = {
      name: "reading",
      needsStats: true,
      pick(endpoints, call, now, stats) {
        passedTable = stats;
        picked = inner.pick(endpoints, call, now);
        return picked;
      },
    };
    const users = w.consumer().client(Users, { loadBalancer: reading });
    await users.get("connect first");
    const table = tableOf() ?? assert.fail("the client passes its table to a balancer that reads it");
    const stats = table.get(picked ?? assert.fail());
    assert.deepEqual([stats.inFlight, stats.successes], [0, 1]);
    const held = users.whoami();
    assert.equal(stats.inFlight, 1, "in flight from the pick");
    await sleep(60);
    release();
    await held;
    assert.deepEqual([stats.inFlight, stats.successes], [0, 2]);
    assert.ok(stats.peakMs() >= 50 && stats.peakMs() < 10_000, `latency ${stats.peakMs()} ms`);
    await users.fail("thrown").catch(() => undefined);
    assert.deepEqual([stats.successes, stats.failures], [3, 0], "an application error is an answer");
    await withOptions(users, { timeoutMs: 30 }).slow(500).catch(() => undefined);
    assert.deepEqual([stats.successes, stats.failures, stats.inFlight], [3, 1, 0], "a deadline is a failure");
    await users.notify("event");
    assert.deepEqual([stats.successes, stats.inFlight], [3, 0], "oneway calls are not counted");
    let passed: unknown = "not called";
    const plain: LoadBalancer = {
      name: "plain",
      pick(endpoints, call, now, stats) {
        passed = stats;
        return inner.pick(endpoints, call, now);
      },
    };
    await w.consumer().client(Users, { loadBalancer: plain }).whoami();
    assert.equal(passed, undefined, "no statistics for a balancer that does not read them");
  });

  it("takes every balancer by name, in code, from FARCALL_LOAD_BALANCER and from cluster.loadBalancer", async () => {
    const w = world();
    await w.provider("p1");
    const dir = mkdtempSync(join(tmpdir(), "farcall-lb-"));
    try {
      for (const name of loadBalancerNames) {
        const file = join(dir, `${name}.properties`);
        writeFileSync(file, `cluster.loadBalancer=${name}\n`);
        for (const extra of [{ loadBalancer: name }, { env: { FARCALL_LOAD_BALANCER: name } }, { configFile: file }]) {
          const users = w.consumer(extra).client(Users);
          assert.equal(await users.whoami(), "p1", `${name} via ${JSON.stringify(extra)}`);
        }
        assert.equal(await w.consumer().client(Users, { loadBalancer: name }).whoami(), "p1");
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("rejects an unknown balancer name or a malformed hashKey with bad_option", () => {
    const base = { env: {}, registry: "memory", handleSignals: false } as const;
    assertBadOption(() => createApplication({ ...base, loadBalancer: "leastactive" as "leastActive" }), "loadBalancer");
    assertBadOption(() => createApplication({ ...base, env: { FARCALL_LOAD_BALANCER: "p2c" } }), "FARCALL_LOAD_BALANCER (environment)");
    const app = createApplication(base);
    apps.push(app);
    assertBadOption(() => app.client(Users, { loadBalancer: "fastest" as "adaptive" }), "loadBalancer");
    assertBadOption(() => app.client(Users, { loadBalancer: {} as LoadBalancer }), "loadBalancer");
    assertBadOption(() => app.client(Users, { loadBalancer: "consistentHash", hashKey: { argument: -1 } }), "hashKey");
    assertBadOption(() => app.client(Users, { hashKey: { metadata: "" } }), "hashKey");
  });
});
