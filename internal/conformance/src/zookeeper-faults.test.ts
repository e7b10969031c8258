// Multi-process acceptance tests of the ZooKeeper registry on a real server (RELIABILITY.md T07,
// T15-T18): provider processes, a consumer in this process, and ZooKeeper halted, restarted and
// edited by hand. Real time is the subject here; bars are the acceptance bars only, each measured
// from timestamps taken where the event happens (kill, SIGCONT, restart, deletion).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it, type TestContext } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { createApplication, withOptions } from "@farcall/core";
import { sampleEndpoint } from "@farcall/core/testing";
import { zookeeperRegistry } from "@farcall/registry-zookeeper";
import { type Cluster, type FaultTarget, withCluster } from "./fault-cluster.js";
import { FaultsEcho } from "./faults-echo.js";
import { killAll, killProvider, signal } from "./processes.js";
import { minimum, ResourceCounter } from "./resource-counts.js";
import { TimedWatch } from "./timed-watch.js";
import { until } from "./until.js";
import { ZookeeperServer } from "./zookeeper-server.js";

// 4 s as in the battery's CI setup; the script's server (tickTime 500, minSessionTimeout 1000)
// grants it unchanged.
const sessionTimeoutMs = 4000;
const zk = new ZookeeperServer("faults");
const target: FaultTarget = {
  server: zk,
  address: (namespace) => `zookeeper://${zk.connect}/${namespace}?sessionTimeoutMs=${sessionTimeoutMs}`,
  registry: (namespace, cacheDir) => zookeeperRegistry({ connect: zk.connect, root: `/${namespace}`, sessionTimeoutMs, cacheDir }),
};
const cluster = (providers: number, body: (c: Cluster) => Promise<void>): Promise<void> => withCluster({ target, providers }, body);

/** The providers folder of faults.Echo in the case's root, as zkcli names it. */
async function providersFolder(c: Cluster): Promise<string> {
  const root = `/${c.namespace}`;
  const children = await zk.children(root);
  const service = children.find((name) => decodeURIComponent(name) === FaultsEcho.name);
  if (service === undefined) throw new Error(`no folder of ${FaultsEcho.name} under ${root}: ${JSON.stringify(children)}`);
  return `${root}/${service}/providers`;
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

/** Server log lines that explain lost sessions, for failure messages. */
async function serverLogExcerpt(): Promise<string> {
  const lines = await zk.logLines(/Expiring session|NullPointerException|WorkerService - Unexpected exception/, 12);
  return lines.length === 0 ? "" : `\n  ZooKeeper log:\n    ${lines.join("\n    ")}`;
}

/** Time of the first delivery at or after `since` for which `test` holds. */
function deliveredAt(c: Cluster, since: number, test: (ports: number[]) => boolean): number | undefined {
  return c.watch.deliveries.find((d) => d.at >= since && test(d.endpoints.map((e) => e.port)))?.at;
}

before(() => zk.start(), { timeout: 300_000 });
after(async () => {
  await killAll();
  await zk.stop();
});

describe("ZooKeeper registry under faults, across processes", { concurrency: 1 }, () => {
  it("a. (T07) kill -9 of one of three providers at 2,000 calls/s: no failed idempotent call, ephemeral gone in sessionTimeout + 1 s, a restarted provider served within 2 s", { timeout: 90_000 }, (t) =>
    cluster(3, async (c) => {
      const b = bars(t);
      const load = c.load(["whoami"]);
      assert.ok(await c.servedByAll(load, c.providers, 10_000), `not every provider served within 10 s: ${load.describe()}`);
      await delay(1000);
      const victim = c.providers[1];
      assert.ok(victim);
      const killAt = Date.now();
      await killProvider(victim);
      await until(() => !c.watch.lists(victim.port), sessionTimeoutMs + 5000);
      const goneAt = deliveredAt(c, killAt, (ports) => !ports.includes(victim.port));
      b.note(`killed provider's endpoint left the consumer's watch ${goneAt === undefined ? "never" : `${goneAt - killAt} ms`} after kill -9`);
      b.check(goneAt !== undefined && goneAt - killAt <= sessionTimeoutMs + 1000, `endpoint of the killed provider not gone within ${sessionTimeoutMs + 1000} ms (${goneAt === undefined ? "still listed" : `${goneAt - killAt} ms`}); watch: ${c.watch.history(killAt)}`);

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

  it("b. (T15) ZooKeeper down 1.5 × sessionTimeout under load: no failed call, no spurious deregistration, a cold consumer served from the cache file within 1 s, convergence within 2 × sessionTimeout", { timeout: 90_000 }, (t) =>
    cluster(3, async (c) => {
      const b = bars(t);
      const ports = c.providers.map((p) => p.port);
      const load = c.load(["whoami", "append"]);
      assert.ok(await c.servedByAll(load, c.providers, 10_000), `not every provider served within 10 s: ${load.describe()}`);
      const fullFrom = c.watch.deliveries.findIndex((d) => ports.every((p) => d.endpoints.some((e) => e.port === p)));
      await delay(1000);
      const haltAt = Date.now();
      await zk.halt();
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
        b.note(`cold consumer's first call served ${coldMs} ms after it was created, ZooKeeper down`);
        b.check(coldMs <= 1000, `cold consumer's first call took ${coldMs} ms (bar 1000 ms)`);
      } catch (error) {
        const e = error as { code?: string; message?: string };
        b.check(false, `cold consumer's first call failed after ${Date.now() - createdAt} ms with ZooKeeper down: ${e.code}: ${e.message}`);
      }

      await delay(Math.max(0, haltAt + 1.5 * sessionTimeoutMs - Date.now()));
      await zk.start();
      const upAt = Date.now();
      b.note(`ZooKeeper was down ${upAt - haltAt} ms`);
      const folder = await providersFolder(c);
      const convergedAt = await until(
        async () => c.watch.listsExactly(ports) && coldWatch.listsExactly(ports) && (await zk.children(folder)).length === ports.length,
        2 * sessionTimeoutMs,
        100,
      );
      b.note(`converged ${convergedAt === undefined ? "never" : `${convergedAt - upAt} ms`} after ZooKeeper was back`);
      b.check(convergedAt !== undefined, `no convergence within ${2 * sessionTimeoutMs} ms of the restart: consumer [${c.watch.ports()}], cold consumer [${coldWatch.ports()}], nodes ${JSON.stringify(await zk.children(folder).catch(String))}`);
      // Late deregistrations (a session that expired after all) would show up within a session timeout.
      await delay(Math.max(0, upAt + sessionTimeoutMs + 1000 - Date.now()));
      await load.stop();
      b.note(load.describe());
      const spurious = c.watch.deliveries.slice(fullFrom).filter((d) => !ports.every((p) => d.endpoints.some((e) => e.port === p)));
      if (fullFrom < 0 || spurious.length > 0) {
        const missing = ports.filter((p) => spurious.some((d) => !d.endpoints.some((e) => e.port === p)));
        const pids = c.providers.filter((p) => missing.includes(p.port)).map((p) => p.pid);
        b.check(false, `spurious deregistrations: ${spurious.length} deliveries missing a live provider (pids ${pids.join(", ")}); watch: ${c.watch.history(haltAt)}${await serverLogExcerpt()}`);
      }
      b.check(load.failures.length === 0, `failed calls: ${load.summary()}`);
      b.done();
    }));

  it("c. (T17) a provider frozen past its session timeout re-registers within 1 s of SIGCONT", { timeout: 60_000 }, (t) =>
    cluster(2, async (c) => {
      const b = bars(t);
      const [victim, bystander] = c.providers;
      assert.ok(victim && bystander);
      const stopAt = Date.now();
      signal(victim.child, "SIGSTOP");
      await until(() => !c.watch.lists(victim.port), sessionTimeoutMs + 3000);
      const goneAt = deliveredAt(c, stopAt, (ports) => !ports.includes(victim.port));
      b.note(`frozen provider's node left the watch ${goneAt === undefined ? "never" : `${goneAt - stopAt} ms`} after SIGSTOP`);
      assert.ok(goneAt !== undefined, `the frozen provider's session did not expire within ${sessionTimeoutMs + 3000} ms: ${c.watch.history(stopAt)}`);
      await delay(Math.max(0, stopAt + sessionTimeoutMs + 2000 - Date.now()));

      const contAt = Date.now();
      signal(victim.child, "SIGCONT");
      await until(() => c.watch.lists(victim.port), 10_000);
      const backAt = deliveredAt(c, contAt, (ports) => ports.includes(victim.port));
      b.note(`re-registered ${backAt === undefined ? "never (10 s)" : `${backAt - contAt} ms`} after SIGCONT`);
      b.check(backAt !== undefined && backAt - contAt <= 1000, `no re-registration within 1000 ms of SIGCONT (${backAt === undefined ? "none in 10 s" : `${backAt - contAt} ms`}); watch: ${c.watch.history(stopAt)}`);
      const folder = await providersFolder(c);
      const nodes = await zk.children(folder);
      b.check(nodes.length === 2, `expected one node per provider, found ${JSON.stringify(nodes)}`);
      // From the first delivery that listed both (deliveries before it are the cluster starting).
      const fullFrom = c.watch.deliveries.findIndex((d) => d.endpoints.length === 2);
      const bystanderGone = c.watch.deliveries.slice(fullFrom).filter((d) => !d.endpoints.some((e) => e.port === bystander.port));
      b.check(bystanderGone.length === 0, `the healthy provider was missing from ${bystanderGone.length} deliveries`);
      b.done();
    }));

  it("d. (T18) ZooKeeper flapping five times: every registration and watch converges within 2 × sessionTimeout, handles and timers do not grow with flaps", { timeout: 120_000 }, async (t) => {
    const b = bars(t);
    const tag = randomBytes(4).toString("hex");
    const root = `/farcall-faults-${tag}`;
    const service = "faults.Flap";
    // No cache file: these watches must converge from ZooKeeper alone (and write nothing to ~/.cache).
    const options = { connect: zk.connect, root, sessionTimeoutMs, cacheDir: false } as const;
    const providers = [0, 1, 2].map(() => zookeeperRegistry(options));
    const watchers = [0, 1].map(() => zookeeperRegistry(options));
    const endpoints = providers.map((_, i) =>
      sampleEndpoint(service, 4300 + i, { id: `127.0.0.1:${4300 + i}//${service}:1#${tag}-${i}`, pid: process.pid, application: "faults-flap" }),
    );
    const ports = endpoints.map((e) => e.port);
    const counter = new ResourceCounter().start();
    try {
      await Promise.all(providers.map((r, i) => r.register(endpoints[i] as (typeof endpoints)[number])));
      const watches = watchers.map((r, i) => new TimedWatch(r, service, `faults-watcher-${i}`));
      const folder = `${root}/${(await zk.children(root)).find((s) => decodeURIComponent(s) === service)}/providers`;
      const converged = (withinMs: number): Promise<number | undefined> =>
        until(async () => watches.every((w) => w.listsExactly(ports)) && (await zk.children(folder).catch(() => [])).length === ports.length, withinMs, 100);
      const state = async (): Promise<string> =>
        `watches ${watches.map((w) => `[${w.ports()}]`).join(" ")}, nodes ${JSON.stringify(await zk.children(folder).catch(String))}`;
      // The minimum over 2 s of samples, 1 s after convergence: timers that come and go (a read
      // retried, a ping) are not counted, standing ones are.
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
        await zk.halt();
        await delay(downMs[flap] ?? 500);
        await zk.start();
        lastStart = Date.now();
        if (flap === 0) {
          const at = await converged(2 * sessionTimeoutMs);
          b.check(at !== undefined, `no convergence within ${2 * sessionTimeoutMs} ms of flap 1: ${await state()}${at === undefined ? await serverLogExcerpt() : ""}`);
          afterFirst = await settledSample();
        } else {
          await delay(upMs[flap] ?? 1000);
        }
      }
      const at = await converged(2 * sessionTimeoutMs);
      b.note(`converged ${at === undefined ? "never" : `${at - lastStart} ms`} after the last restart`);
      b.check(at !== undefined, `no convergence within ${2 * sessionTimeoutMs} ms of the last restart: ${await state()}${at === undefined ? await serverLogExcerpt() : ""}`);
      const afterLast = await settledSample();
      b.note(`resources after flap 1: ${JSON.stringify(afterFirst)}`);
      b.note(`resources after flap 5: ${JSON.stringify(afterLast)}`);
      // Slack 2 per type: under the 4 further flaps, so a leak of one handle or timer per flap
      // anywhere fails, while two transients that outlive all ten samples (a read being retried
      // when sampling starts, the runner's own timers) do not.
      const grown = Object.entries(afterLast).filter(([type, n]) => n > (afterFirst[type] ?? 0) + 2);
      b.check(grown.length === 0, `grew with the number of flaps: ${grown.map(([type, n]) => `${type} ${afterFirst[type] ?? 0} → ${n}`).join(", ")}`);
      for (const w of watches) w.unwatch();
      b.done();
    } finally {
      counter.stop();
      await zk.start();
      await Promise.allSettled([...providers, ...watchers].map((r) => r.close()));
    }
  });

  it("e. (T16a) every provider node deleted by hand under load: no failed call, providers re-create their nodes within 5 s", { timeout: 60_000 }, (t) =>
    cluster(3, async (c) => {
      const b = bars(t);
      const ports = c.providers.map((p) => p.port);
      const load = c.load(["whoami", "append"]);
      assert.ok(await c.servedByAll(load, c.providers, 10_000), `not every provider served within 10 s: ${load.describe()}`);
      await delay(1000);
      const folder = await providersFolder(c);
      assert.equal((await zk.children(folder)).length, 3);
      const deleteAt = Date.now();
      await zk.zkcli("deleteall", folder);
      const deletedAt = Date.now();
      const backAt = await until(async () => (await zk.children(folder).catch(() => [])).length === ports.length && c.watch.listsExactly(ports), 10_000, 100);
      b.note(`deleteall took ${deletedAt - deleteAt} ms; nodes and watch back ${backAt === undefined ? "never (10 s)" : `${backAt - deletedAt} ms`} after it returned`);
      b.note(`consumer's watch around the deletion: ${c.watch.history(deleteAt)}`);
      b.check(backAt !== undefined && backAt - deletedAt <= 5000, `provider nodes not re-created within 5000 ms of the deletion: nodes ${JSON.stringify(await zk.children(folder).catch(String))}, watch [${c.watch.ports()}]`);
      await delay(1000);
      await load.stop();
      b.note(load.describe());
      b.check(load.failures.length === 0, `failed calls: ${load.summary()}`);
      b.done();
    }));
});
