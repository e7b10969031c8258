import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { FaultsEcho } from "./faults-echo.js";
import { killProvider, signal, spawnProvider } from "./processes.js";
import { conformanceEndpoint } from "./registry-conformance.js";
import { fast, keys, redisTestKit, until } from "./redis-test-kit.js";

// The Redis registry across outages of a real server of its own (instance "outages", halted,
// restarted with its data and wiped): the cache file, the sweep's grace after a long outage,
// re-registration on a server restarted empty; and the registry's traffic (a server no other
// case uses meanwhile).

const { server, cleanups, uniquePrefix, registry, recorder } = redisTestKit("outages");

describe("redis registry: outages", () => {
  it("serves a new watch from the cache file while Redis is down, within 1 s", async (t) => {
    const prefix = uniquePrefix();
    const service = "redis.Cached";
    const cacheDir = await mkdtemp(join(tmpdir(), "farcall-redis-cache-"));
    t.after(() => rm(cacheDir, { recursive: true, force: true }));
    const provider = registry({ prefix, heartbeatMs: 5000, expireAfterMs: 60_000, sweepMs: 1000 });
    const e = conformanceEndpoint(service, 7800);
    await provider.register(e);
    const first = registry({ prefix, cacheDir });
    const seen = recorder(first, service);
    await until("first consumer sees the provider", 3000, () => seen.has(e.id));
    await first.close(); // flushes the cache file

    await server.halt();
    try {
      const cold = registry({ prefix, cacheDir, cacheGraceMs: 300, requestTimeoutMs: 60_000 });
      const started = Date.now();
      const coldSeen = recorder(cold, service);
      await until("cached delivery", 2000, () => coldSeen.lists.length > 0);
      assert.deepEqual(coldSeen.ids(), [e.id]);
      const at = coldSeen.lists[0]?.at ?? Infinity;
      assert.ok(at - started < 1000, `cached list after ${at - started} ms`);
    } finally {
      await server.start();
    }
  });

  it("keeps a live provider that reconnects after the sweepers, when the outage outlasted expireAfterMs (data kept)", async () => {
    const prefix = uniquePrefix();
    const consumer = registry({ prefix });
    const seen = recorder(consumer, FaultsEcho.name);
    await delay(fast.expireAfterMs); // past the sweepers' first-contact grace
    const address = `${server.url}/0?prefix=${prefix}&heartbeatMs=500&expireAfterMs=2000&sweepMs=250&cacheDir=false`;
    const provider = await spawnProvider("redis-late", address);
    cleanups.push(() => killProvider(provider));
    await until("provider seen", 3000, () => seen.lists.at(-1)?.ids.length === 1);
    const seenFrom = seen.lists.length - 1;
    // The provider is frozen through the outage and resumes 1.5 s after the server is back (the
    // others reconnect within 1.2 s), so the consumer's sweeper is back first and finds the
    // provider's last report 3 s old.
    signal(provider.child, "SIGSTOP");
    await server.halt();
    await delay(fast.expireAfterMs + 1000);
    await server.start();
    const upAt = Date.now();
    const redis = await server.client();
    const k = keys(prefix, FaultsEcho.name);
    const [id] = await redis.zrange(k.providers, "0", "-1");
    assert.ok(id !== undefined, "the server came back with its data");
    const [seconds] = await redis.time();
    assert.ok(Number(seconds) * 1000 - Number(await redis.zscore(k.providers, id)) > fast.expireAfterMs, "the entry is stale when the server comes back");
    await delay(1500);
    signal(provider.child, "SIGCONT");
    await until("provider reported again", 3000, async () => Number(await redis.zscore(k.providers, id)) >= Number(seconds) * 1000);
    await delay(Math.max(0, upAt + 2 * fast.expireAfterMs - Date.now()));
    const gaps = seen.lists.slice(seenFrom).filter((l) => l.ids.length === 0);
    assert.deepEqual(gaps.map((l) => l.at - upAt), [], "the live provider was dropped (ms after the restart)");
    assert.equal(await redis.zcard(k.providers), 1);
  });

  it("registers everything again at once on a server restarted empty", async () => {
    const prefix = uniquePrefix();
    const service = "redis.Emptied";
    // Reports every 5 s: only the report made on reconnection can bring it back within the bar.
    const provider = registry({ prefix, heartbeatMs: 5000, expireAfterMs: 15_000, sweepMs: 1000 });
    const e = conformanceEndpoint(service, 8000);
    await provider.register(e);
    const seen = recorder(registry({ prefix }), service);
    await until("provider seen", 3000, () => seen.has(e.id));
    await server.wipe();
    const restartedAt = Date.now();
    const redis = await server.client();
    const k = keys(prefix, service);
    await until("provider registered again", 3000, async () => (await redis.zcard(k.providers).catch(() => 0)) === 1);
    const took = Date.now() - restartedAt;
    assert.ok(took < 1500, `registered again ${took} ms after the restart`);
    const after = conformanceEndpoint(service, 8001);
    await provider.register(after);
    await until("consumer watches the new server", 3000, () => seen.has(after.id) && seen.has(e.id));
  });
});

describe("redis registry: traffic", () => {
  it("costs a bounded number of commands: one report per entry per heartbeat, one sweep call per sweepMs, one GET per pollMs", async (t) => {
    const prefix = uniquePrefix();
    const service = "redis.Traffic";
    const redis = await server.client();
    const provider = registry({ prefix });
    await provider.register(conformanceEndpoint(service, 8200));
    const consumer = registry({ prefix });
    recorder(consumer, service);
    await delay(1000);
    const stats = async (): Promise<Map<string, number>> => {
      const info = await redis.info("commandstats");
      return new Map([...info.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)].map((m) => [m[1] ?? "", Number(m[2])]));
    };
    // Other test files use other servers; this file runs its cases one at a time.
    const before = await stats();
    const windowMs = 5000;
    await delay(windowMs);
    const after = await stats();
    const delta = (name: string): number => (after.get(name) ?? 0) - (before.get(name) ?? 0);
    const scripts = delta("evalsha") + delta("eval");
    // Expected in 5 s: 2 entries × 10 reports + 2 sweepers × ~20 calls = 60, and 10 polls.
    const reports = 2 * (windowMs / fast.heartbeatMs);
    const sweeps = 2 * (windowMs / (fast.sweepMs * 0.9));
    assert.ok(scripts <= reports + sweeps + 4, `scripts: ${scripts} (expected at most ${Math.ceil(reports + sweeps + 4)})`);
    assert.ok(scripts >= reports * 0.8, `scripts: ${scripts} (reports alone should be ${reports})`);
    assert.ok(delta("get") <= windowMs / fast.pollMs + 2, `polls: ${delta("get")}`);
    assert.ok(delta("mget") <= 1, `version reads without a change: ${delta("mget")}`);
    assert.equal(delta("publish"), 0, "nothing published without a change");
    // Commands run by scripts count too: one SMEMBERS per real sweep, at most one per 0.8 × sweepMs
    // whatever the number of sweepers (here two).
    const maxSweeps = windowMs / (0.8 * fast.sweepMs) + 1;
    assert.ok(delta("smembers") <= maxSweeps, `sweeps: ${delta("smembers")} (at most ${maxSweeps})`);
    t.diagnostic(`in ${windowMs} ms: ${scripts} script calls, ${delta("get")} GET, ${delta("mget")} MGET, ${delta("smembers")} sweeps, ${delta("publish")} PUBLISH`);
  });
});
