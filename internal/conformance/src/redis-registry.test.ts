import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { FarcallError, type Endpoint } from "@farcall/core/extension";
import { FaultsEcho } from "./faults-echo.js";
import { killProvider, spawnProvider } from "./processes.js";
import { conformanceEndpoint } from "./registry-conformance.js";
import { fast, keys, redisTestKit, until } from "./redis-test-kit.js";

// Behaviour of the Redis registry beyond the shared contract, on a real server of its own
// (instance "registry"): sweeping (a kill -9'd process, several sweepers at once), versions and
// the change feed (only changes bump, pub/sub loss, the polling fallback), untrusted entries,
// entries deleted by hand, consumers, and credentials. Outages are in redis-outages.test.ts. The
// layout the tests read and write by hand is the documented one (docs/registry-redis.md).

const { server, cleanups, uniquePrefix, registry, recorder, countMessages } = redisTestKit("registry");

describe("redis registry: sweeping", () => {
  it("removes a kill -9'd provider within expireAfterMs + sweepMs + 1 s, without anyone deleting it", async () => {
    const prefix = uniquePrefix();
    const consumer = registry({ prefix });
    const seen = recorder(consumer, FaultsEcho.name);
    // Let the sweepers' first call (which only starts the shared contact clock) pass.
    await delay(fast.expireAfterMs);
    const address = `${server.url}/0?prefix=${prefix}&heartbeatMs=500&expireAfterMs=2000&sweepMs=250&cacheDir=false`;
    const provider = await spawnProvider("redis-swept", address);
    cleanups.push(() => killProvider(provider));
    await until("provider listed", 5000, () => seen.lists.at(-1)?.ids.length === 1);
    const killedAt = Date.now();
    await killProvider(provider);
    const took = await until("provider swept", 10_000, () => seen.lists.at(-1)?.ids.length === 0);
    assert.ok(took <= fast.expireAfterMs + fast.sweepMs + 1000, `swept ${took} ms after kill -9 (bar ${fast.expireAfterMs + fast.sweepMs + 1000} ms)`);
    const redis = await server.client();
    const k = keys(prefix, FaultsEcho.name);
    assert.equal(await redis.zcard(k.providers), 0);
    assert.equal(await redis.hlen(k.endpoints), 0, "the endpoint JSON goes with the member");
    assert.ok(Date.now() - killedAt >= fast.expireAfterMs - fast.heartbeatMs, "not swept before it expired");
  });

  it("lets several sweepers run at once: stale entries removed in one change, live ones never", async () => {
    const prefix = uniquePrefix();
    const service = "redis.Sweepers";
    const k = keys(prefix, service);
    const live = [0, 1, 2].map((i) => conformanceEndpoint(service, 7100 + i));
    const providers = live.map(() => registry({ prefix }));
    await Promise.all(providers.map((r, i) => r.register(live[i] as Endpoint)));
    // 20 stale entries of providers that died long ago, as a kill -9 leaves them.
    const redis = await server.client();
    const stale = Array.from({ length: 20 }, (_, i) => conformanceEndpoint(service, 7200 + i));
    const [seconds] = await redis.time();
    for (const e of stale) {
      await redis.zadd(k.providers, String(Number(seconds) * 1000 - 60_000), e.id);
      await redis.hset(k.endpoints, e.id, JSON.stringify(e));
    }
    const messages = await countMessages(k.channel);
    const watcher = recorder(registry({ prefix }), service);
    // Ten more registries sweeping every 50 ms, all at once.
    const sweepers = Array.from({ length: 10 }, () => registry({ prefix, sweepMs: 50 }));
    for (const s of sweepers) s.watch(service, () => undefined);
    await until("stale entries swept", 10_000, async () => (await redis.zcard(k.providers)) === live.length);
    await delay(1500);
    assert.deepEqual((await redis.zrange(k.providers, "0", "-1")).sort(), live.map((e) => e.id).sort());
    assert.deepEqual((await redis.hkeys(k.endpoints)).sort(), live.map((e) => e.id).sort());
    assert.equal(messages.count(), 1, `one change for the whole sweep, published once (got ${messages.count()})`);
    for (const list of watcher.lists.filter((l) => l.ids.length > 0)) {
      for (const e of live) assert.ok(list.ids.includes(e.id), `a live provider was missing from a delivery: ${JSON.stringify(list.ids)}`);
    }
    assert.deepEqual(watcher.ids(), live.map((e) => e.id).sort());
  });
});

describe("redis registry: versions and change feed", () => {
  it("bumps versions only for a new member or a removal, never for a heartbeat", async () => {
    const prefix = uniquePrefix();
    const service = "redis.Versions";
    const k = keys(prefix, service);
    const redis = await server.client();
    const messages = await countMessages(k.channel);
    const provider = registry({ prefix });
    const first = await provider.register(conformanceEndpoint(service, 7300));
    const v1 = await redis.get(k.version);
    const g1 = await redis.get(k.global);
    assert.ok(v1 !== null && v1 === g1, "the service's version is the global version of its last change");
    await until("one message", 2000, () => messages.count() === 1);
    // Four heartbeats later: nothing changed.
    await delay(4 * fast.heartbeatMs + 200);
    assert.equal(await redis.get(k.version), v1);
    assert.equal(await redis.get(k.global), g1);
    assert.equal(messages.count(), 1, "heartbeats published nothing");
    await provider.register(conformanceEndpoint(service, 7301));
    const v2 = await redis.get(k.version);
    assert.ok(Number(v2) > Number(v1), `a new member bumps (${v1} → ${v2})`);
    await first.unregister();
    const v3 = await redis.get(k.version);
    assert.ok(Number(v3) > Number(v2), `a removal bumps (${v2} → ${v3})`);
    assert.equal(await redis.zcard(k.providers), 1, "graceful unregister removes the entry at once");
    await first.unregister();
    assert.equal(await redis.get(k.version), v3, "unregistering twice is one change");
    await until("three messages", 2000, () => messages.count() === 3);
  });

  it("sees a change made while pub/sub was dropped (CLIENT KILL TYPE pubsub), with no polling", async () => {
    const prefix = uniquePrefix();
    const service = "redis.PubSubDropped";
    // Polling every 10 min: only the version re-read on the subscriber's reconnection can see it.
    const consumer = registry({ prefix, pollMs: 600_000 });
    const provider = registry({ prefix });
    const seen = recorder(consumer, service);
    const a = conformanceEndpoint(service, 7400);
    await provider.register(a);
    await until("first provider seen through pub/sub", 3000, () => seen.has(a.id));
    const redis = await server.client();
    const killed = await redis.call("CLIENT", "KILL", "TYPE", "pubsub");
    assert.ok(Number(killed) >= 1, "a subscriber was connected");
    // Published while the subscriber is away (it reconnects after 50 ms at the earliest): lost.
    const b = conformanceEndpoint(service, 7401);
    await provider.register(b);
    const took = await until("change made during the gap", 3000, () => seen.has(b.id));
    assert.ok(took < 2000, `seen ${took} ms after the change`);
  });

  it("falls back to polling when pub/sub says nothing", async () => {
    const prefix = uniquePrefix();
    const service = "redis.Polled";
    const k = keys(prefix, service);
    const consumer = registry({ prefix, pollMs: 300 });
    const seen = recorder(consumer, service);
    await until("first delivery", 3000, () => seen.lists.length > 0);
    // A writer that bumps the versions but never publishes (as when the message is lost).
    const redis = await server.client();
    const e = conformanceEndpoint(service, 7500);
    const [seconds] = await redis.time();
    await redis.zadd(k.providers, String(Number(seconds) * 1000), e.id);
    await redis.hset(k.endpoints, e.id, JSON.stringify(e));
    const version = await redis.incr(k.global);
    await redis.set(k.version, String(version));
    const took = await until("change seen by polling", 3000, () => seen.has(e.id));
    assert.ok(took <= 300 + 500, `seen ${took} ms after the write (pollMs 300)`);
  });

  it("ignores entries that are not endpoints of the service: junk, another service, oversized", async () => {
    const prefix = uniquePrefix();
    const service = "redis.Untrusted";
    const k = keys(prefix, service);
    const redis = await server.client();
    const good = conformanceEndpoint(service, 7600);
    const entries: Record<string, string> = {
      [good.id]: JSON.stringify(good),
      junk: "{not json",
      proto: JSON.stringify({ ...good, id: "proto", __proto__: { admin: true } }).replace('"id"', '"__proto__":{"admin":true},"id"'),
      other: JSON.stringify(conformanceEndpoint("redis.Other", 7601)),
      big: JSON.stringify({ ...conformanceEndpoint(service, 7602), application: "x".repeat(9000) }),
    };
    const [seconds] = await redis.time();
    for (const [id, json] of Object.entries(entries)) {
      await redis.zadd(k.providers, String(Number(seconds) * 1000 + 60_000), id);
      await redis.hset(k.endpoints, id, json);
    }
    const seen = recorder(registry({ prefix }), service);
    await until("first delivery", 3000, () => seen.lists.length > 0);
    assert.deepEqual(seen.ids(), [good.id, "proto"].sort());
  });
});

describe("redis registry: entries deleted by hand", () => {
  it("lists a provider again on its next heartbeat, and lists and unlists consumers", async () => {
    const prefix = uniquePrefix();
    const service = "redis.Deleted";
    const k = keys(prefix, service);
    const provider = registry({ prefix });
    const e = conformanceEndpoint(service, 7700);
    await provider.register(e);
    const consumer = registry({ prefix });
    const lists: (readonly Endpoint[])[] = [];
    const unwatch = consumer.watch(service, (l) => lists.push(l), { application: "billing" });
    const redis = await server.client();
    await until("consumer listed", 3000, async () => (await redis.zcard(k.consumers)) === 1);
    const [member] = await redis.zrange(k.consumers, "0", "-1");
    const info = JSON.parse(member ?? "{}") as Record<string, unknown>;
    assert.equal(info["application"], "billing");
    assert.equal(info["pid"], process.pid);
    assert.equal(info["service"], service);

    const before = await redis.get(k.version);
    await redis.del(k.providers, k.endpoints, k.version);
    const deletedAt = Date.now();
    await until("provider listed again", fast.heartbeatMs + 1000, async () => (await redis.zcard(k.providers)) === 1);
    assert.ok(Date.now() - deletedAt <= fast.heartbeatMs + 500, "back by its next heartbeat");
    assert.equal(await redis.hget(k.endpoints, e.id), JSON.stringify(e));
    assert.ok(Number(await redis.get(k.version)) > Number(before), "coming back is a change");
    await until("consumer still lists it", 2000, () => lists.at(-1)?.some((x) => x.id === e.id) ?? false);

    // Only its JSON deleted: the listed id has nothing to read, so watchers drop it; the next
    // heartbeat writes the JSON again, as a change.
    const versionBefore = await redis.get(k.version);
    await redis.hdel(k.endpoints, e.id);
    await until("JSON written again", fast.heartbeatMs + 1000, async () => (await redis.hget(k.endpoints, e.id)) === JSON.stringify(e));
    assert.ok(Number(await redis.get(k.version)) > Number(versionBefore), "restoring the JSON is a change");

    unwatch();
    await until("consumer unlisted on unwatch", 3000, async () => (await redis.zcard(k.consumers)) === 0);
  });
});

describe("redis registry: credentials", () => {
  it("authenticates as an ACL user; a wrong password fails with unavailable and is never repeated", async () => {
    const prefix = uniquePrefix();
    const redis = await server.client();
    const password = `pw-${randomBytes(6).toString("hex")}`;
    await redis.acl("SETUSER", "farcall-test", "on", `>${password}`, "~*", "&*", "+@all");
    cleanups.push(() => redis.acl("DELUSER", "farcall-test"));
    const good = registry({ prefix, username: "farcall-test", password });
    await good.register(conformanceEndpoint("redis.Auth", 8100));
    const bad = registry({ prefix, username: "farcall-test", password: "WRONG-SECRET", requestTimeoutMs: 500 });
    await assert.rejects(bad.register(conformanceEndpoint("redis.Auth", 8101)), (error: unknown) => {
      assert.ok(error instanceof FarcallError);
      assert.equal(error.code, "unavailable");
      assert.ok(!error.message.includes("WRONG-SECRET"), error.message);
      return true;
    });
  });
});

