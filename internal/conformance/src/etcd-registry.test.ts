import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { type Endpoint, FarcallError, type Registry } from "@farcall/core/extension";
import { etcdRegistry, type EtcdRegistryOptions } from "@farcall/registry-etcd";
import { EtcdProxy } from "./etcd-proxy.js";
import { EtcdServer, handledByMethod } from "./etcd-server.js";
import { trackResources } from "./leak-check.js";
import { conformanceEndpoint } from "./registry-conformance.js";

// Behaviour of the etcd registry beyond the shared contract, on a real server of its own
// (instance "registry", so halting it disturbs no other test file): keys deleted by hand come
// back, consumer keys, a lost lease, the cache file during an outage, watches resumed by
// revision and re-read after a compaction, untrusted values, and closing.

const etcd = new EtcdServer("registry");
const cleanups: Array<() => Promise<unknown>> = [];

before(() => etcd.start(), { timeout: 300_000 });
// Each case closes what it opened, so no case sees another's leases, watches or timers.
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});
after(() => etcd.stop());

/** A registry closed after the case, on this file's server unless `hosts` says otherwise. */
function registry(options: Partial<EtcdRegistryOptions> & { prefix: string }): Registry {
  const r = etcdRegistry({ hosts: etcd.host, ttlSeconds: 2, requestTimeoutMs: 2000, cacheDir: false, ...options });
  cleanups.push(() => r.close());
  return r;
}

const uniquePrefix = (): string => `/farcall-registry-${randomBytes(6).toString("hex")}`;

/** Polls `condition` every 20 ms until it holds; fails after `timeoutMs`. Resolves with the time it took. */
async function until(what: string, timeoutMs: number, condition: () => boolean | Promise<boolean>): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await condition()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await delay(20);
  }
}

/** The last list a watch delivered, and how many lists it delivered. */
function latest(r: Registry, service: string): { ids: () => string[] | undefined; ports: () => number[] | undefined; count: () => number } {
  let last: readonly Endpoint[] | undefined;
  let count = 0;
  const unwatch = r.watch(service, (endpoints) => {
    last = endpoints;
    count++;
  });
  cleanups.push(async () => unwatch());
  return { ids: () => last?.map((e) => e.id).sort(), ports: () => last?.map((e) => e.port).sort((a, b) => a - b), count: () => count };
}

/** How many requests of `method` etcd has completed so far (all clients). */
async function handled(method: string): Promise<number> {
  return handledByMethod(await etcd.metrics()).get(method) ?? 0;
}

const providers = (prefix: string, service: string): string => `${prefix}/${encodeURIComponent(service).replace(/\./g, "%2E")}/providers/`;
const consumers = (prefix: string, service: string): string => `${prefix}/${encodeURIComponent(service).replace(/\./g, "%2E")}/consumers/`;

describe("etcd registry: keys it owns", () => {
  it("puts back a provider key an operator deleted, and lists the consumer under consumers/", async () => {
    const prefix = uniquePrefix();
    const provider = registry({ prefix });
    const consumer = registry({ prefix });
    const endpoint = conformanceEndpoint("etcd.Owned", 7001);
    await provider.register(endpoint);
    const deliveries: (readonly Endpoint[])[] = [];
    const unwatch = consumer.watch("etcd.Owned", (e) => deliveries.push(e), { application: "billing" });
    await until("first delivery", 5000, () => deliveries.length > 0);
    assert.deepEqual(deliveries.at(-1)?.map((e) => e.id), [endpoint.id]);

    await until("consumer key", 5000, async () => (await etcd.keys(consumers(prefix, "etcd.Owned"))).length === 1);
    const [consumerKey] = await etcd.keys(consumers(prefix, "etcd.Owned"));
    const info = JSON.parse(consumerKey?.value.toString() ?? "{}") as Record<string, unknown>;
    assert.equal(info["application"], "billing");
    assert.equal(info["pid"], process.pid);
    assert.equal(info["service"], "etcd.Owned");
    assert.notEqual(consumerKey?.lease, "0", "the consumer key is under a lease");

    const [before] = await etcd.keys(providers(prefix, "etcd.Owned"));
    assert.ok(before !== undefined && before.lease !== "0");
    const deletedAt = Date.now();
    assert.equal(await etcd.deletePrefix(providers(prefix, "etcd.Owned")), 1);
    // The provider puts its key again without any call from the application. The watcher may
    // see it go (an empty push; core's empty protection is the consumer's business) unless the
    // deletion and the put arrive in one watch answer.
    const back = await until("key put back", 5000, async () => (await etcd.keys(providers(prefix, "etcd.Owned"))).length === 1);
    await until("watch lists it", 5000, () => deliveries.at(-1)?.length === 1);
    const [after] = await etcd.keys(providers(prefix, "etcd.Owned"));
    assert.equal(after?.key, before.key, "same key");
    assert.equal(after?.lease, before.lease, "same lease");
    assert.ok(back < 1000, `put back ${Date.now() - deletedAt} ms after the deletion`);

    // Overwritten by hand with junk: put back too.
    await etcd.put(before.key, "junk");
    await until("overwritten key restored", 5000, async () => (await etcd.keys(providers(prefix, "etcd.Owned")))[0]?.value.toString() !== "junk");
    await until("watch lists it after the overwrite", 5000, () => deliveries.at(-1)?.[0]?.id === endpoint.id);

    unwatch();
    await until("consumer key removed on unwatch", 5000, async () => (await etcd.keys(consumers(prefix, "etcd.Owned"))).length === 0);
  });

  it("deletes every key at once on close (the lease is revoked)", async () => {
    const prefix = uniquePrefix();
    const provider = registry({ prefix, ttlSeconds: 30 });
    const consumer = registry({ prefix, ttlSeconds: 30 });
    await provider.register(conformanceEndpoint("etcd.Close", 7002));
    const seen = latest(consumer, "etcd.Close");
    await until("consumer sees the provider", 5000, () => seen.ids()?.length === 1);
    await until("consumer key", 5000, async () => (await etcd.keys(consumers(prefix, "etcd.Close"))).length === 1);
    const closing = Date.now();
    await Promise.all([provider.close(), consumer.close()]);
    assert.deepEqual(await etcd.keys(`${prefix}/`), [], "no key left once close() resolved");
    assert.ok(Date.now() - closing < 1000, `close took ${Date.now() - closing} ms`);
  });
});

describe("etcd registry: lost leases", () => {
  it("puts every key under a new lease at once when its lease is revoked by hand", async () => {
    const prefix = uniquePrefix();
    const provider = registry({ prefix, ttlSeconds: 10 });
    const consumer = registry({ prefix });
    const endpoints = [conformanceEndpoint("etcd.Revoked", 7010), conformanceEndpoint("etcd.Revoked", 7011)];
    for (const e of endpoints) await provider.register(e);
    const seen = latest(consumer, "etcd.Revoked");
    await until("consumer sees both", 5000, () => seen.ids()?.length === 2);
    const keys = await etcd.keys(providers(prefix, "etcd.Revoked"));
    const lease = keys[0]?.lease ?? "0";
    assert.ok(keys.length === 2 && keys.every((k) => k.lease === lease && lease !== "0"), "both keys under one lease");

    const revokedAt = Date.now();
    await etcd.v3("lease/revoke", { ID: lease });
    const took = await until("keys back under a new lease", 3000, async () => {
      const now = await etcd.keys(providers(prefix, "etcd.Revoked"));
      return now.length === 2 && now.every((k) => k.lease !== lease && k.lease === now[0]?.lease);
    });
    assert.ok(took < 1000, `keys back ${Date.now() - revokedAt} ms after the revoke`);
    await until("consumer lists both again", 3000, () => seen.ids()?.length === 2);
    // The new lease is kept alive: the keys outlive the old lease's TTL several times over.
    await delay(2500);
    assert.equal((await etcd.keys(providers(prefix, "etcd.Revoked"))).length, 2);
  });

  it("re-registers within 1 s after its lease expired while the process was frozen, and watches go on", async () => {
    const prefix = uniquePrefix();
    const provider = registry({ prefix, ttlSeconds: 2 });
    const consumer = registry({ prefix, ttlSeconds: 2 });
    await provider.register(conformanceEndpoint("etcd.Frozen", 7012));
    const seen = latest(consumer, "etcd.Frozen");
    await until("consumer sees the provider", 5000, () => seen.ids()?.length === 1);
    const [before] = await etcd.keys(providers(prefix, "etcd.Frozen"));
    assert.ok(before !== undefined);

    // Freeze this whole process (as SIGSTOP would) past the TTL: etcd expires both leases and
    // deletes the keys; the clients learn it when they run again.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3500);
    const resumed = Date.now();
    await until("provider key under a new lease", 5000, async () => {
      const now = await etcd.keys(providers(prefix, "etcd.Frozen"));
      return now.length === 1 && now[0]?.lease !== before.lease;
    });
    const took = Date.now() - resumed;
    assert.ok(took < 1000, `re-registered ${took} ms after resuming`);
    const [after] = await etcd.keys(providers(prefix, "etcd.Frozen"));
    assert.equal(after?.key, before.key, "the same key, under the new lease");

    await provider.register(conformanceEndpoint("etcd.Frozen", 7013));
    await until("consumer watch still delivers", 5000, () => seen.ids()?.length === 2);
    await until("consumer key back", 5000, async () => (await etcd.keys(consumers(prefix, "etcd.Frozen"))).length === 1);
  });
});

describe("etcd registry: watches", () => {
  it("serves a new watch from the cache file while etcd is down, then etcd's list", async (t) => {
    const prefix = uniquePrefix();
    const cacheDir = await mkdtemp(join(tmpdir(), "farcall-etcd-cache-"));
    t.after(() => rm(cacheDir, { recursive: true, force: true }));
    const provider = registry({ prefix, ttlSeconds: 30 });
    const endpoint = conformanceEndpoint("etcd.Cached", 7020);
    await provider.register(endpoint);
    const first = registry({ prefix, cacheDir });
    const seen = latest(first, "etcd.Cached");
    await until("first consumer sees the provider", 5000, () => seen.ids()?.length === 1);
    await first.close(); // flushes the cache file

    await etcd.halt();
    let cold: ReturnType<typeof latest> | undefined;
    try {
      const coldRegistry = registry({ prefix, cacheDir, cacheGraceMs: 300, requestTimeoutMs: 60_000 });
      const started = Date.now();
      cold = latest(coldRegistry, "etcd.Cached");
      const took = await until("cached delivery", 2000, () => cold?.count() === 1);
      assert.deepEqual(cold.ids(), [endpoint.id]);
      assert.ok(took < 1000, `cached list after ${Date.now() - started} ms`);
    } finally {
      await etcd.start();
    }
    // etcd's list replaces it: a registration made now reaches the watch made during the outage.
    await provider.register(conformanceEndpoint("etcd.Cached", 7021));
    await until("etcd's list after the outage", 5000, () => cold?.ids()?.length === 2);
  });

  it("resumes a cut-off watch from its last revision: every change made meanwhile arrives, nothing read again", async (t) => {
    const prefix = uniquePrefix();
    const proxy = new EtcdProxy(Number(etcd.host.split(":")[1]));
    const viaProxy = await proxy.start();
    t.after(() => proxy.close());
    const provider = registry({ prefix, ttlSeconds: 30 });
    const consumer = registry({ prefix, hosts: viaProxy, ttlSeconds: 30 });
    const kept = await provider.register(conformanceEndpoint("etcd.Resume", 7030));
    const leaving = await provider.register(conformanceEndpoint("etcd.Resume", 7031));
    const seen = latest(consumer, "etcd.Resume");
    await until("consumer sees both", 5000, () => seen.ports()?.length === 2);
    const rangesBefore = await handled("Range");

    proxy.cut();
    await leaving.unregister();
    await provider.register(conformanceEndpoint("etcd.Resume", 7032));
    await provider.register(conformanceEndpoint("etcd.Resume", 7033));
    await delay(300);
    assert.deepEqual(seen.ports(), [7030, 7031], "the cut-off consumer saw nothing yet");
    proxy.restore();
    await until("every change made while cut off", 5000, () => JSON.stringify(seen.ports()) === JSON.stringify([7030, 7032, 7033]));
    assert.equal(await handled("Range"), rangesBefore, "the watch resumed without reading the prefix again");
    void kept;
  });

  it("reads everything again when the revision it would resume from was compacted", async (t) => {
    const prefix = uniquePrefix();
    const proxy = new EtcdProxy(Number(etcd.host.split(":")[1]));
    const viaProxy = await proxy.start();
    t.after(() => proxy.close());
    const provider = registry({ prefix, ttlSeconds: 30 });
    const consumer = registry({ prefix, hosts: viaProxy, ttlSeconds: 30 });
    await provider.register(conformanceEndpoint("etcd.Compacted", 7040));
    const leaving = await provider.register(conformanceEndpoint("etcd.Compacted", 7041));
    const seen = latest(consumer, "etcd.Compacted");
    await until("consumer sees both", 5000, () => seen.ports()?.length === 2);
    const rangesBefore = await handled("Range");

    proxy.cut();
    await leaving.unregister();
    await provider.register(conformanceEndpoint("etcd.Compacted", 7042));
    await etcd.compact();
    proxy.restore();
    await until("the list after the compaction", 5000, () => JSON.stringify(seen.ports()) === JSON.stringify([7040, 7042]));
    assert.ok((await handled("Range")) > rangesBefore, "the prefix was read again");
    // And the new watch delivers later changes.
    await provider.register(conformanceEndpoint("etcd.Compacted", 7043));
    await until("a change after the re-read", 5000, () => seen.ports()?.length === 3);
  });

  it("ignores what is not an endpoint of the service: junk, another service, values over 8 KiB, pages over gRPC's 4 MiB", async () => {
    const prefix = uniquePrefix();
    const folder = providers(prefix, "etcd.Junk");
    const other = conformanceEndpoint("etcd.Other", 7050);
    const huge = { ...conformanceEndpoint("etcd.Junk", 7051), padding: "x".repeat(9000) };
    await etcd.put(`${folder}a-not-json`, "{not json");
    await etcd.put(`${folder}b-other-service`, JSON.stringify(other));
    await etcd.put(`${folder}c-huge`, JSON.stringify(huge));
    await etcd.put(`${folder}d-not-an-endpoint`, JSON.stringify({ hello: "world", __proto__: { isAdmin: true } }));
    // Five values of 1 MiB: together over gRPC's 4 MiB answer limit, so the page is read smaller.
    for (let i = 0; i < 5; i++) await etcd.put(`${folder}e-big-${i}`, Buffer.alloc(1024 * 1024, 0x61));
    const provider = registry({ prefix, ttlSeconds: 30 });
    const good = conformanceEndpoint("etcd.Junk", 7052);
    await provider.register(good);
    const consumer = registry({ prefix });
    const seen = latest(consumer, "etcd.Junk");
    await until("the one real endpoint", 5000, () => seen.ids()?.length === 1);
    assert.deepEqual(seen.ids(), [good.id]);
    // Junk arriving through the watch is ignored too; real changes still arrive.
    await etcd.put(`${folder}f-late-junk`, JSON.stringify({ ...other, service: "etcd.Junk", port: 0 }));
    const later = conformanceEndpoint("etcd.Junk", 7053);
    await provider.register(later);
    await until("a real change after the junk", 5000, () => seen.ids()?.length === 2);
    assert.deepEqual(seen.ids(), [good.id, later.id].sort());
  });
});

describe("etcd registry: unreachable etcd", () => {
  it("rejects register with unavailable after requestTimeoutMs, and close leaves nothing behind", async () => {
    const proxy = new EtcdProxy(Number(etcd.host.split(":")[1]));
    const nowhere = await proxy.start();
    proxy.cut();
    const tracker = trackResources();
    try {
      const r = etcdRegistry({ hosts: nowhere, prefix: uniquePrefix(), ttlSeconds: 2, requestTimeoutMs: 1000, cacheDir: false });
      const seen = latest(r, "etcd.Nowhere");
      const started = Date.now();
      await assert.rejects(r.register(conformanceEndpoint("etcd.Nowhere", 7060)), (e: unknown) => e instanceof FarcallError && e.code === "unavailable");
      const took = Date.now() - started;
      assert.ok(took >= 900 && took < 3000, `rejected after ${took} ms`);
      assert.deepEqual(seen.ids(), [], "the watch delivered an empty list (no cache)");
      await r.close();
      await tracker.assertReleased(3000);
    } finally {
      tracker.stop();
      await proxy.close();
    }
  });
});

describe("etcd registry: a rebuilt etcd", () => {
  it("puts its keys again and reads everything again when etcd comes back empty", async () => {
    const prefix = uniquePrefix();
    const provider = registry({ prefix, ttlSeconds: 2, requestTimeoutMs: 5000 });
    const consumer = registry({ prefix, ttlSeconds: 2, requestTimeoutMs: 5000 });
    await provider.register(conformanceEndpoint("etcd.Rebuilt", 7090));
    const seen = latest(consumer, "etcd.Rebuilt");
    await until("consumer sees the provider", 5000, () => seen.ports()?.length === 1);
    // Both the consumer's watch and the provider's key watch get well ahead of the revisions the
    // rebuilt etcd will have for a while: the key deleted by hand (and put back) 15 times.
    for (let i = 0; i < 15; i++) {
      await etcd.deletePrefix(providers(prefix, "etcd.Rebuilt"));
      await until("key put back", 5000, async () => (await etcd.keys(providers(prefix, "etcd.Rebuilt"))).length === 1);
    }
    await until("consumer sees the provider again", 5000, () => seen.ports()?.length === 1);
    await etcd.wipe();
    // The keepalives learn the lease is unknown: a new lease, the key put again.
    await until("provider key on the rebuilt etcd", 8000, async () => (await etcd.keys(providers(prefix, "etcd.Rebuilt"))).length === 1);
    // The watch answers from a revision far behind: everything is read again, and new changes arrive.
    await provider.register(conformanceEndpoint("etcd.Rebuilt", 7091));
    await until("consumer watches the rebuilt etcd", 5000, () => seen.ports()?.length === 2);
    // The provider's key watch is armed again too: a key deleted by hand comes back.
    await etcd.deletePrefix(providers(prefix, "etcd.Rebuilt"));
    await until("keys put back on the rebuilt etcd", 5000, async () => (await etcd.keys(providers(prefix, "etcd.Rebuilt"))).length === 2);
  });
});

describe("etcd registry: traffic", () => {
  it("an idle provider only sends lease keepalives, one per TTL/3", async (t) => {
    const prefix = uniquePrefix();
    const provider = registry({ prefix, ttlSeconds: 3 });
    await provider.register(conformanceEndpoint("etcd.Idle", 7070));
    await delay(500);
    const received = async (): Promise<Map<string, number>> => {
      const counts = new Map<string, number>();
      for (const line of (await etcd.metrics()).split("\n")) {
        const m = /^grpc_server_msg_received_total\{[^}]*grpc_method="([^"]+)"[^}]*\} (\d+)$/.exec(line);
        if (m) counts.set(m[1] as string, (counts.get(m[1] as string) ?? 0) + Number(m[2]));
      }
      return counts;
    };
    const before = await received();
    const windowMs = 6000;
    await delay(windowMs);
    const afterCounts = await received();
    const delta = [...afterCounts].map(([method, n]) => [method, n - (before.get(method) ?? 0)] as const).filter(([, n]) => n > 0);
    t.diagnostic(`messages received by etcd in ${windowMs} ms from one idle provider (TTL 3 s): ${JSON.stringify(Object.fromEntries(delta))}`);
    const keepalives = delta.find(([m]) => m === "LeaseKeepAlive")?.[1] ?? 0;
    // One keepalive per second; the gateway's own /metrics reads are not gRPC.
    assert.ok(keepalives >= 5 && keepalives <= 7, `${keepalives} keepalives in ${windowMs} ms`);
    assert.deepEqual(delta.filter(([m]) => m !== "LeaseKeepAlive"), [], "nothing but keepalives");
  });
});
