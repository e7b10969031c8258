// Multi-process acceptance tests of the etcd registry on a real server (RELIABILITY.md T07,
// T15-T18): provider processes, a consumer in this process, and etcd halted, restarted and
// edited by hand. Real time is the subject here; bars are the acceptance bars only, each measured
// from timestamps taken where the event happens (kill, SIGCONT, restart, deletion).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it, type TestContext } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { createApplication, withOptions } from "@farcall/core";
import { sampleEndpoint } from "@farcall/core/testing";
import { etcdRegistry } from "@farcall/registry-etcd";
import { EtcdServer } from "./etcd-server.js";
import { type Cluster, type FaultTarget, withCluster } from "./fault-cluster.js";
import { FaultsEcho } from "./faults-echo.js";
import { killAll, killProvider, signal } from "./processes.js";
import { minimum, ResourceCounter } from "./resource-counts.js";
import { TimedWatch } from "./timed-watch.js";
import { until } from "./until.js";

// A lease TTL of 3 s (the script's server, election timeout 100 ms, honours TTLs down to 1 s):
// short, so that the bars that wait for a lease to expire stay quick.
const ttlSeconds = 3;
const ttlMs = ttlSeconds * 1000;
const etcd = new EtcdServer("faults");
const target: FaultTarget = {
  server: etcd,
  address: (namespace) => `etcd://${etcd.host}/${namespace}?ttlSeconds=${ttlSeconds}`,
  registry: (namespace, cacheDir) => etcdRegistry({ hosts: etcd.host, prefix: `/${namespace}`, ttlSeconds, cacheDir }),
};
const cluster = (providers: number, body: (c: Cluster) => Promise<void>): Promise<void> => withCluster({ target, providers }, body);

/** The key prefix of faults.Echo's providers in the case's namespace, as etcdctl shows it. */
const providersPrefix = (namespace: string, service = FaultsEcho.name): string =>
  `/${namespace}/${encodeURIComponent(service).replace(/\./g, "%2E")}/providers/`;

/** How many provider keys there are under `prefix`, and under how many distinct leases. */
async function providerKeys(prefix: string): Promise<{ keys: number; leases: number }> {
  const keys = await etcd.keys(prefix);
  return { keys: keys.length, leases: new Set(keys.map((k) => k.lease)).size };
}

/** Violations of acceptance bars, reported all at once (so one run tells the whole story). */
function bars(t: TestContext) {
  const problems: string[] = [];
  return {
    problems,
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

before(() => etcd.start(), { timeout: 300_000 });
after(async () => {
  await killAll();
  await etcd.stop();
});

describe("etcd registry under faults, across processes", { concurrency: 1 }, () => {
  it("a. (T07) kill -9 of one of three providers at 2,000 calls/s: no failed idempotent call, key gone in TTL + 1 s, a restarted provider served within 2 s", { timeout: 90_000 }, (t) =>
    cluster(3, async (c) => {
      const b = bars(t);
      const load = c.load(["whoami"]);
      assert.ok(await c.servedByAll(load, c.providers, 10_000), `not every provider served within 10 s: ${load.describe()}`);
      await delay(1000);
      const victim = c.providers[1];
      assert.ok(victim);
      const killAt = Date.now();
      await killProvider(victim);
      await until(() => !c.watch.lists(victim.port), ttlMs + 5000);
      const goneAt = deliveredAt(c, killAt, (ports) => !ports.includes(victim.port));
      b.note(`killed provider's endpoint left the consumer's watch ${goneAt === undefined ? "never" : `${goneAt - killAt} ms`} after kill -9 (TTL ${ttlMs} ms)`);
      b.check(goneAt !== undefined && goneAt - killAt <= ttlMs + 1000, `endpoint of the killed provider not gone within ${ttlMs + 1000} ms (${goneAt === undefined ? "still listed" : `${goneAt - killAt} ms`}); watch: ${c.watch.history(killAt)}`);

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

  it("b. (T15) etcd down 2.5 × TTL under load: no failed call, no spurious deregistration, a cold consumer served from the cache file within 1 s, convergence within 2 × TTL", { timeout: 90_000 }, (t) =>
    cluster(3, async (c) => {
      const b = bars(t);
      const ports = c.providers.map((p) => p.port);
      const prefix = providersPrefix(c.namespace);
      const load = c.load(["whoami", "append"]);
      assert.ok(await c.servedByAll(load, c.providers, 10_000), `not every provider served within 10 s: ${load.describe()}`);
      const fullFrom = c.watch.deliveries.findIndex((d) => ports.every((p) => d.endpoints.some((e) => e.port === p)));
      await delay(1000);
      const haltAt = Date.now();
      await etcd.halt();
      await delay(1000);

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
        b.note(`cold consumer's first call served ${coldMs} ms after it was created, etcd down`);
        b.check(coldMs <= 1000, `cold consumer's first call took ${coldMs} ms (bar 1000 ms)`);
      } catch (error) {
        const e = error as { code?: string; message?: string };
        b.check(false, `cold consumer's first call failed after ${Date.now() - createdAt} ms with etcd down: ${e.code}: ${e.message}`);
      }

      // Longer than 2 × TTL: every client also gives its lease up (etcd3's "lost") and puts its
      // keys under a new one when etcd is back, while the restarted etcd still honours the old one.
      await delay(Math.max(0, haltAt + 2.5 * ttlMs - Date.now()));
      await etcd.start();
      const upAt = Date.now();
      b.note(`etcd was down ${upAt - haltAt} ms`);
      const convergedAt = await until(
        async () => c.watch.listsExactly(ports) && coldWatch.listsExactly(ports) && (await providerKeys(prefix)).keys === ports.length,
        2 * ttlMs,
        100,
      );
      b.note(`converged ${convergedAt === undefined ? "never" : `${convergedAt - upAt} ms`} after etcd was back`);
      b.check(convergedAt !== undefined, `no convergence within ${2 * ttlMs} ms of the restart: consumer [${c.watch.ports()}], cold consumer [${coldWatch.ports()}], keys ${JSON.stringify(await providerKeys(prefix).catch(String))}`);
      // Late deregistrations (the old leases running out with keys still on them) would show up within a TTL.
      await delay(Math.max(0, upAt + ttlMs + 1000 - Date.now()));
      await load.stop();
      b.note(load.describe());
      const spurious = c.watch.deliveries.slice(fullFrom).filter((d) => !ports.every((p) => d.endpoints.some((e) => e.port === p)));
      if (fullFrom < 0 || spurious.length > 0) {
        const missing = ports.filter((p) => spurious.some((d) => !d.endpoints.some((e) => e.port === p)));
        const pids = c.providers.filter((p) => missing.includes(p.port)).map((p) => p.pid);
        b.check(false, `spurious deregistrations: ${spurious.length} deliveries missing a live provider (pids ${pids.join(", ")}); watch: ${c.watch.history(haltAt)}`);
      }
      const keys = await providerKeys(prefix);
      b.check(keys.keys === ports.length, `expected ${ports.length} provider keys at the end, found ${keys.keys}`);
      b.check(load.failures.length === 0, `failed calls: ${load.summary()}`);
      b.done();
    }));

  it("c. (T17) a provider frozen past its TTL re-registers within 1 s of SIGCONT", { timeout: 60_000 }, (t) =>
    cluster(2, async (c) => {
      const b = bars(t);
      const [victim, bystander] = c.providers;
      assert.ok(victim && bystander);
      const stopAt = Date.now();
      signal(victim.child, "SIGSTOP");
      await until(() => !c.watch.lists(victim.port), ttlMs + 3000);
      const goneAt = deliveredAt(c, stopAt, (ports) => !ports.includes(victim.port));
      b.note(`frozen provider's key left the watch ${goneAt === undefined ? "never" : `${goneAt - stopAt} ms`} after SIGSTOP`);
      assert.ok(goneAt !== undefined, `the frozen provider's lease did not expire within ${ttlMs + 3000} ms: ${c.watch.history(stopAt)}`);
      await delay(Math.max(0, stopAt + ttlMs + 2000 - Date.now()));

      const contAt = Date.now();
      signal(victim.child, "SIGCONT");
      await until(() => c.watch.lists(victim.port), 10_000);
      const backAt = deliveredAt(c, contAt, (ports) => ports.includes(victim.port));
      b.note(`re-registered ${backAt === undefined ? "never (10 s)" : `${backAt - contAt} ms`} after SIGCONT`);
      b.check(backAt !== undefined && backAt - contAt <= 1000, `no re-registration within 1000 ms of SIGCONT (${backAt === undefined ? "none in 10 s" : `${backAt - contAt} ms`}); watch: ${c.watch.history(stopAt)}`);
      const keys = await providerKeys(providersPrefix(c.namespace));
      b.check(keys.keys === 2 && keys.leases === 2, `expected one key per provider, each under its own lease, found ${JSON.stringify(keys)}`);
      // From the first delivery that listed both (deliveries before it are the cluster starting).
      const fullFrom = c.watch.deliveries.findIndex((d) => d.endpoints.length === 2);
      const bystanderGone = c.watch.deliveries.slice(fullFrom).filter((d) => !d.endpoints.some((e) => e.port === bystander.port));
      b.check(bystanderGone.length === 0, `the healthy provider was missing from ${bystanderGone.length} deliveries`);
      b.done();
    }));

  it("d. (T18) etcd flapping five times: every registration and watch converges within 2 × TTL, handles and timers do not grow with flaps", { timeout: 120_000 }, async (t) => {
    const b = bars(t);
    const tag = randomBytes(4).toString("hex");
    const namespace = `farcall-faults-${tag}`;
    const service = "faults.Flap";
    // No cache file: these watches must converge from etcd alone (and write nothing to ~/.cache).
    const options = { hosts: etcd.host, prefix: `/${namespace}`, ttlSeconds, cacheDir: false } as const;
    const providers = [0, 1, 2].map(() => etcdRegistry(options));
    const watchers = [0, 1].map(() => etcdRegistry(options));
    const endpoints = providers.map((_, i) =>
      sampleEndpoint(service, 4300 + i, { id: `127.0.0.1:${4300 + i}//${service}:1#${tag}-${i}`, pid: process.pid, application: "faults-flap" }),
    );
    const ports = endpoints.map((e) => e.port);
    const prefix = providersPrefix(namespace, service);
    const counter = new ResourceCounter().start();
    try {
      await Promise.all(providers.map((r, i) => r.register(endpoints[i] as (typeof endpoints)[number])));
      const watches = watchers.map((r, i) => new TimedWatch(r, service, `faults-watcher-${i}`));
      const converged = (withinMs: number): Promise<number | undefined> =>
        until(async () => watches.every((w) => w.listsExactly(ports)) && (await providerKeys(prefix).catch(() => ({ keys: -1 }))).keys === ports.length, withinMs, 100);
      const state = async (): Promise<string> => `watches ${watches.map((w) => `[${w.ports()}]`).join(" ")}, keys ${JSON.stringify(await providerKeys(prefix).catch(String))}`;
      // The minimum over 2 s of samples, 1 s after convergence: timers that come and go (a read
      // retried, a keepalive) are not counted, standing ones are.
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
      for (let flap = 0; flap < 5; flap++) {
        await etcd.halt();
        await delay(downMs[flap] ?? 500);
        await etcd.start();
        lastStart = Date.now();
        if (flap === 0) {
          const at = await converged(2 * ttlMs);
          b.check(at !== undefined, `no convergence within ${2 * ttlMs} ms of flap 1: ${await state()}`);
          afterFirst = await settledSample();
        } else {
          await delay(upMs[flap] ?? 1000);
        }
      }
      const at = await converged(2 * ttlMs);
      b.note(`converged ${at === undefined ? "never" : `${at - lastStart} ms`} after the last restart`);
      b.check(at !== undefined, `no convergence within ${2 * ttlMs} ms of the last restart: ${await state()}`);
      // Every change still arrives after all that: a new registration reaches both watches.
      const extra = sampleEndpoint(service, 4310, { id: `127.0.0.1:4310//${service}:1#${tag}-extra`, pid: process.pid, application: "faults-flap" });
      const extraRegistration = await providers[0]?.register(extra);
      const extraAt = await until(() => watches.every((w) => w.listsExactly([...ports, 4310])), 5000);
      b.check(extraAt !== undefined, `a registration after the flaps did not reach both watches: ${await state()}`);
      await extraRegistration?.unregister();
      await until(() => watches.every((w) => w.listsExactly(ports)), 5000);
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
      await etcd.start();
      await Promise.allSettled([...providers, ...watchers].map((r) => r.close()));
    }
  });

  it("e. (T16a) every provider key deleted by hand under load: no failed call, providers put their keys back within 5 s", { timeout: 60_000 }, (t) =>
    cluster(3, async (c) => {
      const b = bars(t);
      const ports = c.providers.map((p) => p.port);
      const prefix = providersPrefix(c.namespace);
      const load = c.load(["whoami", "append"]);
      assert.ok(await c.servedByAll(load, c.providers, 10_000), `not every provider served within 10 s: ${load.describe()}`);
      await delay(1000);
      assert.equal((await providerKeys(prefix)).keys, 3);
      const deleteAt = Date.now();
      const deleted = await etcd.deletePrefix(prefix);
      const deletedAt = Date.now();
      const backAt = await until(async () => (await providerKeys(prefix)).keys === ports.length && c.watch.listsExactly(ports), 10_000, 20);
      b.note(`deleted ${deleted} keys in ${deletedAt - deleteAt} ms; keys and watch back ${backAt === undefined ? "never (10 s)" : `${backAt - deletedAt} ms`} after it returned`);
      b.note(`consumer's watch around the deletion: ${c.watch.history(deleteAt)}`);
      b.check(deleted === 3, `expected to delete 3 keys, deleted ${deleted}`);
      b.check(backAt !== undefined && backAt - deletedAt <= 5000, `provider keys not put back within 5000 ms of the deletion: keys ${JSON.stringify(await providerKeys(prefix).catch(String))}, watch [${c.watch.ports()}]`);
      await delay(1000);
      await load.stop();
      b.note(load.describe());
      b.check(load.failures.length === 0, `failed calls: ${load.summary()}`);
      b.done();
    }));
});
