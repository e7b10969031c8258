// Multi-process acceptance tests of the Redis registry on a real server (RELIABILITY.md T07,
// T15, T16a, T18): provider processes, a consumer in this process, and Redis halted, restarted
// with and without its data, flapping, and edited by hand. Real time is the subject here; bars are
// the acceptance bars only, each measured from timestamps taken where the event happens (kill,
// restart, deletion).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it, type TestContext } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { createApplication, withOptions } from "@farcall/core";
import { sampleEndpoint } from "@farcall/core/testing";
import { redisRegistry } from "@farcall/registry-redis";
import { type Cluster, type FaultTarget, withCluster } from "./fault-cluster.js";
import { FaultsEcho } from "./faults-echo.js";
import { killAll, killProvider } from "./processes.js";
import { RedisServer } from "./redis-server.js";
import { minimum, ResourceCounter } from "./resource-counts.js";
import { TimedWatch } from "./timed-watch.js";
import { until } from "./until.js";

// Short timings, the same in every process: reports every 500 ms, unlisted 2 s after the last
// report, a sweep call every 250 ms, versions polled every 500 ms.
const timings = { heartbeatMs: 500, expireAfterMs: 2000, sweepMs: 250, pollMs: 500 } as const;
const query = Object.entries(timings).map(([k, v]) => `${k}=${v}`).join("&");
/** A dead provider is unlisted at most expireAfterMs + sweepMs after its last report (plus the pass that reads it). */
const goneBarMs = timings.expireAfterMs + timings.sweepMs + 1000;
// The server keeps its data across a halt (append-only file), as a production server with
// persistence does; `wipe()` gives the other kind of restart, an empty server.
const server = new RedisServer("faults");
const target: FaultTarget = {
  server,
  address: (namespace) => `${server.url}/0?prefix=${namespace}&${query}`,
  registry: (namespace, cacheDir) => redisRegistry({ port: server.port, prefix: namespace, ...timings, cacheDir }),
};
const cluster = (providers: number, body: (c: Cluster) => Promise<void>): Promise<void> => withCluster({ target, providers }, body);

/** The documented keys of faults.Echo in the case's prefix. */
function echoKeys(c: Cluster) {
  const base = `${c.namespace}:{${FaultsEcho.name}}:`;
  return { providers: `${base}providers`, endpoints: `${base}endpoints`, version: `${base}version`, global: `${c.namespace}:version`, channel: `${c.namespace}:changes` };
}

/** Violations of acceptance bars, reported all at once (so one run tells the whole story). */
function bars(t: TestContext) {
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

/** Time of the first delivery at or after `since` for which `test` holds. */
function deliveredAt(c: Cluster, since: number, test: (ports: number[]) => boolean): number | undefined {
  return c.watch.deliveries.find((d) => d.at >= since && test(d.endpoints.map((e) => e.port)))?.at;
}

/** How many providers Redis lists for faults.Echo (0 while it is down). */
async function listed(c: Cluster): Promise<number> {
  const redis = await server.client().catch(() => undefined);
  if (redis === undefined) return 0;
  try {
    return await redis.zcard(echoKeys(c).providers);
  } catch {
    return 0;
  } finally {
    redis.disconnect();
  }
}

before(() => server.start(), { timeout: 300_000 });
after(async () => {
  await killAll();
  await server.stop();
});

describe("Redis registry under faults, across processes", { concurrency: 1 }, () => {
  it(`a. (T07) kill -9 of one of three providers at 2,000 calls/s: no failed idempotent call, unlisted within expireAfterMs + sweepMs + 1 s, a restarted provider served within 2 s`, { timeout: 90_000 }, (t) =>
    cluster(3, async (c) => {
      const b = bars(t);
      const load = c.load(["whoami"]);
      assert.ok(await c.servedByAll(load, c.providers, 10_000), `not every provider served within 10 s: ${load.describe()}`);
      // Past the sweepers' first-contact grace (a fresh prefix), so the sweep runs as in steady state.
      await delay(timings.expireAfterMs);
      const victim = c.providers[1];
      assert.ok(victim);
      const killAt = Date.now();
      await killProvider(victim);
      await until(() => !c.watch.lists(victim.port), goneBarMs + 5000);
      const goneAt = deliveredAt(c, killAt, (ports) => !ports.includes(victim.port));
      b.note(`killed provider's endpoint left the consumer's watch ${goneAt === undefined ? "never" : `${goneAt - killAt} ms`} after kill -9`);
      b.check(goneAt !== undefined && goneAt - killAt <= goneBarMs, `endpoint of the killed provider not gone within ${goneBarMs} ms (${goneAt === undefined ? "still listed" : `${goneAt - killAt} ms`}); watch: ${c.watch.history(killAt)}`);

      const fresh = await c.spawn("p2-restarted");
      await until(() => load.firstReplyFrom(fresh.pid) !== undefined, 10_000);
      const firstReply = load.firstReplyFrom(fresh.pid);
      b.note(`restarted provider's first reply ${firstReply === undefined ? "never" : `${firstReply - fresh.registeredAt} ms`} after it registered`);
      b.check(firstReply !== undefined && firstReply - fresh.registeredAt <= 2000, `restarted provider got no traffic within 2000 ms of registering (${firstReply === undefined ? "none in 10 s" : `${firstReply - fresh.registeredAt} ms`})`);
      await delay(1000);
      await load.stop();
      b.note(load.describe());
      b.check(load.failures.length === 0, `failed idempotent calls: ${load.summary()}`);
      b.check(load.ok > 1000, `the load barely ran: ${load.describe()}`);
      b.done();
    }));

  for (const restart of ["with its data", "empty"] as const) {
    it(`b. (T15) Redis down 2 × expireAfterMs under load, back ${restart}: no failed call, ${restart === "empty" ? "everything registered again" : "no spurious deregistration"}, a cold consumer served from the cache file within 1 s`, { timeout: 90_000 }, (t) =>
      cluster(3, async (c) => {
        const b = bars(t);
        const ports = c.providers.map((p) => p.port);
        const load = c.load(["whoami", "append"]);
        assert.ok(await c.servedByAll(load, c.providers, 10_000), `not every provider served within 10 s: ${load.describe()}`);
        const fullFrom = c.watch.deliveries.findIndex((d) => ports.every((p) => d.endpoints.some((e) => e.port === p)));
        await delay(timings.expireAfterMs);
        const haltAt = Date.now();
        await server.halt();
        await delay(500);

        const coldRegistry = c.consumerRegistry();
        const createdAt = Date.now();
        const cold = createApplication({ name: "faults-cold-consumer", registry: coldRegistry, handleSignals: false, env: {}, warmupMs: 0 });
        const coldWatch = new TimedWatch(coldRegistry, FaultsEcho.name, "faults-cold-consumer");
        c.defer(async () => {
          coldWatch.unwatch();
          await cold.close();
          await coldRegistry.close();
        });
        try {
          await withOptions(cold.client(FaultsEcho), { timeoutMs: 3000 }).whoami(-1);
          const coldMs = Date.now() - createdAt;
          b.note(`cold consumer's first call served ${coldMs} ms after it was created, Redis down`);
          b.check(coldMs <= 1000, `cold consumer's first call took ${coldMs} ms (bar 1000 ms)`);
        } catch (error) {
          const e = error as { code?: string; message?: string };
          b.check(false, `cold consumer's first call failed after ${Date.now() - createdAt} ms with Redis down: ${e.code}: ${e.message}`);
        }

        await delay(Math.max(0, haltAt + 2 * timings.expireAfterMs - Date.now()));
        if (restart === "empty") await server.wipe();
        else await server.start();
        const upAt = Date.now();
        b.note(`Redis was down ${upAt - haltAt} ms and came back ${restart}`);
        // Reconnection (≤ 1.2 s) + a report and a version check on ready, measured ≈ 1 s; the bar
        // is the ZooKeeper tests' (2 × the session timeout), here 2 × expireAfterMs. Back empty,
        // `listed` (Redis's own count) proves the providers registered again; the consumers may
        // see no change at all when they re-registered before a consumer read the empty list.
        const convergeBarMs = 2 * timings.expireAfterMs;
        const convergedAt = await until(
          async () => c.watch.listsExactly(ports) && coldWatch.listsExactly(ports) && (await listed(c)) === ports.length,
          convergeBarMs + 3000,
          50,
        );
        b.note(`converged ${convergedAt === undefined ? "never" : `${convergedAt - upAt} ms`} after Redis was back`);
        b.check(convergedAt !== undefined && convergedAt - upAt <= convergeBarMs, `no convergence within ${convergeBarMs} ms of the restart: consumer [${c.watch.ports()}], cold consumer [${coldWatch.ports()}], listed ${await listed(c)}`);
        // Late deregistrations (a sweep that did not wait) would show up within expireAfterMs + sweepMs.
        await delay(Math.max(0, upAt + timings.expireAfterMs + timings.sweepMs + 1000 - Date.now()));
        await load.stop();
        b.note(load.describe());
        const partial = c.watch.deliveries.slice(fullFrom).filter((d) => !ports.every((p) => d.endpoints.some((e) => e.port === p)));
        b.note(`deliveries missing a live provider: ${partial.length} (${partial.map((d) => `+${d.at - haltAt} ms [${d.endpoints.map((e) => e.port).join(",")}]`).join("; ")})`);
        if (restart === "with its data") {
          b.check(fullFrom >= 0 && partial.length === 0, `spurious deregistrations: ${partial.length} deliveries missing a live provider; watch: ${c.watch.history(haltAt)}`);
        } else {
          // An empty server lists nothing until the providers have reconnected and reported again,
          // each on its own reconnection timer: the consumer may read an empty or partial list in
          // between (core's empty-push protection rides out the empty one). Once converged, never.
          const late = c.watch.deliveries.filter((d) => convergedAt !== undefined && d.at > convergedAt && !ports.every((p) => d.endpoints.some((e) => e.port === p)));
          b.check(late.length === 0, `deliveries missing a live provider after convergence: ${c.watch.history(haltAt)}`);
        }
        b.check(load.failures.length === 0, `failed calls: ${load.summary()}`);
        b.done();
      }));
  }

  it("c. (T18) Redis flapping five times (data kept on some restarts, lost on others): every registration and watch converges within 2 × expireAfterMs, handles and timers do not grow with flaps", { timeout: 120_000 }, async (t) => {
    const b = bars(t);
    const tag = randomBytes(4).toString("hex");
    const prefix = `farcall-faults-${tag}`;
    const service = "faults.Flap";
    const options = { port: server.port, prefix, ...timings, cacheDir: false } as const;
    const providers = [0, 1, 2].map(() => redisRegistry(options));
    const watchers = [0, 1].map(() => redisRegistry(options));
    const endpoints = providers.map((_, i) =>
      sampleEndpoint(service, 4300 + i, { id: `127.0.0.1:${4300 + i}//${service}:1#${tag}-${i}`, pid: process.pid, application: "faults-flap" }),
    );
    const ports = endpoints.map((e) => e.port);
    const counter = new ResourceCounter().start();
    const redisKey = `${prefix}:{${service}}:providers`;
    const listedNow = async (): Promise<number> => {
      const redis = await server.client().catch(() => undefined);
      if (redis === undefined) return 0;
      try {
        return await redis.zcard(redisKey);
      } catch {
        return 0;
      } finally {
        redis.disconnect();
      }
    };
    try {
      await Promise.all(providers.map((r, i) => r.register(endpoints[i] as (typeof endpoints)[number])));
      const watches = watchers.map((r, i) => new TimedWatch(r, service, `faults-watcher-${i}`));
      // Reconnection is at most 1.2 s after the server is back (50 ms doubling to 1 s, + 20 %
      // jitter); on ready each registry reports and compares versions at once (measured: tens of
      // ms). The bar is the ZooKeeper tests' (2 × the session timeout), here 2 × expireAfterMs.
      const convergeBarMs = 2 * timings.expireAfterMs;
      const converged = (withinMs: number): Promise<number | undefined> =>
        until(async () => watches.every((w) => w.listsExactly(ports)) && (await listedNow()) === ports.length, withinMs, 50);
      const state = async (): Promise<string> => `watches ${watches.map((w) => `[${w.ports()}]`).join(" ")}, listed ${await listedNow()}`;
      // The minimum over 2 s of samples, 1 s after convergence: timers that come and go (a
      // report, a poll, a reconnection) are not counted, standing ones are.
      const settledSample = async (): Promise<Record<string, number>> => {
        await delay(1000);
        const samples = [];
        for (let i = 0; i < 10; i++) {
          samples.push(counter.sample());
          await delay(200);
        }
        return minimum(samples);
      };
      assert.ok((await converged(10_000)) !== undefined, `no initial convergence: ${await state()}`);

      const downMs = [600, 900, 500, 1000, 700];
      const upMs = [1200, 1800, 1000, 1500, 2000];
      let afterFirst: Record<string, number> = {};
      let lastStart = 0;
      const took: number[] = [];
      for (let flap = 0; flap < 5; flap++) {
        await server.halt();
        await delay(downMs[flap] ?? 500);
        // Flaps 2, 4 and 5 bring back an empty server (no persistence, or a rebuilt one).
        if (flap % 2 === 1 || flap === 4) await server.wipe();
        else await server.start();
        lastStart = Date.now();
        if (flap === 0) {
          const at = await converged(convergeBarMs + 3000);
          took.push(at === undefined ? -1 : at - lastStart);
          b.check(at !== undefined && at - lastStart <= convergeBarMs, `no convergence within ${convergeBarMs} ms of flap 1: ${await state()}`);
          afterFirst = await settledSample();
        } else if (flap < 4) {
          await delay(upMs[flap] ?? 1000);
        }
      }
      const at = await converged(convergeBarMs + 3000);
      took.push(at === undefined ? -1 : at - lastStart);
      b.note(`converged ${took.map((ms) => (ms < 0 ? "never" : `${ms} ms`)).join(" and ")} after the first (data kept) and last (empty) restarts`);
      b.check(at !== undefined && at - lastStart <= convergeBarMs, `no convergence within ${convergeBarMs} ms of the last restart: ${await state()}`);
      const afterLast = await settledSample();
      b.note(`resources after flap 1: ${JSON.stringify(afterFirst)}`);
      b.note(`resources after flap 5: ${JSON.stringify(afterLast)}`);
      // Slack 2 per type: under the 4 further flaps, so a leak of one handle or timer per flap
      // anywhere fails, while two transients that outlive all ten samples do not.
      const grown = Object.entries(afterLast).filter(([type, n]) => n > (afterFirst[type] ?? 0) + 2);
      b.check(grown.length === 0, `grew with the number of flaps: ${grown.map(([type, n]) => `${type} ${afterFirst[type] ?? 0} → ${n}`).join(", ")}`);
      for (const w of watches) w.unwatch();
      b.done();
    } finally {
      counter.stop();
      await server.start();
      await Promise.allSettled([...providers, ...watchers].map((r) => r.close()));
    }
  });

  it("d. (T16a) the service's keys deleted by hand and the empty list pushed, under load: no failed call, every provider listed again by its next heartbeat", { timeout: 60_000 }, (t) =>
    cluster(3, async (c) => {
      const b = bars(t);
      const ports = c.providers.map((p) => p.port);
      const load = c.load(["whoami", "append"]);
      assert.ok(await c.servedByAll(load, c.providers, 10_000), `not every provider served within 10 s: ${load.describe()}`);
      await delay(1000);
      const k = echoKeys(c);
      const redis = await server.client();
      assert.equal(await redis.zcard(k.providers), 3);
      const deleteAt = Date.now();
      // An operator's mistake (or a buggy tool): every key of the service gone, and the change
      // announced, so that every consumer reads the empty list at once.
      await redis.del(k.providers, k.endpoints, k.version);
      const version = await redis.incr(k.global);
      await redis.set(k.version, String(version));
      await redis.publish(k.channel, String(version));
      const deletedAt = Date.now();
      const emptyAt = await until(() => c.watch.last().length === 0, 2000);
      b.note(`the consumer's watch delivered the empty list ${emptyAt === undefined ? "never" : `${emptyAt - deletedAt} ms`} after the deletion`);
      b.check(emptyAt !== undefined, "the empty list never reached the consumer: the test did not exercise empty-push protection");
      const backAt = await until(async () => (await redis.zcard(k.providers)) === ports.length && c.watch.listsExactly(ports), 5000, 20);
      b.note(`listed again and seen ${backAt === undefined ? "never (5 s)" : `${backAt - deletedAt} ms`} after the deletion`);
      const backBarMs = timings.heartbeatMs + 500;
      b.check(backAt !== undefined && backAt - deletedAt <= backBarMs, `providers not back within ${backBarMs} ms of the deletion (one heartbeat + 500 ms): listed ${await redis.zcard(k.providers)}, watch [${c.watch.ports()}]; ${c.watch.history(deleteAt)}`);
      redis.disconnect();
      await delay(1000);
      await load.stop();
      b.note(load.describe());
      b.check(load.failures.length === 0, `failed calls: ${load.summary()}`);
      b.done();
    }));
});
