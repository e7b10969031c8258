import { createServer, type Socket } from "node:net";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { FarcallError, type Endpoint, type Registry } from "@farcall/core/extension";
import { zookeeperRegistry, type ZookeeperRegistryOptions } from "@farcall/registry-zookeeper";
import zookeeper, { type Client } from "node-zookeeper-client";
import { conformanceEndpoint } from "./registry-conformance.js";
import { ZookeeperServer } from "./zookeeper-server.js";

// Behaviour of the ZooKeeper registry beyond the shared contract, on a real server of its own
// (instance "registry", so restarting it disturbs no other test file): nodes deleted by hand come
// back, consumer nodes, digest ACLs, the cache file during an outage, and session expiry.

const zk = new ZookeeperServer("registry");
const connect = (): string => zk.connect;
const cleanups: Array<() => Promise<unknown>> = [];

before(() => zk.start(), { timeout: 300_000 });
after(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  await zk.stop();
});

/** A registry closed after the file; its own root unless given. */
function registry(options: Partial<ZookeeperRegistryOptions> & { root: string }): Registry {
  const r = zookeeperRegistry({ connect: connect(), sessionTimeoutMs: 2000, requestTimeoutMs: 2000, cacheDir: false, ...options });
  cleanups.push(() => r.close());
  return r;
}

const uniqueRoot = (): string => `/farcall-registry-${randomBytes(6).toString("hex")}`;

/** A plain ZooKeeper client, as an operator's tool would be; closed after the file. */
async function rawClient(auth?: string): Promise<Client> {
  const client = zookeeper.createClient(connect(), { sessionTimeout: 4000, spinDelay: 100, retries: 0 });
  if (auth !== undefined) client.addAuthInfo("digest", Buffer.from(auth));
  const connected = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("raw client: not connected in 10 s")), 10_000);
    client.once("connected", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  client.connect();
  cleanups.push(async () => client.close());
  await connected;
  return client;
}

function call<T>(op: (done: (error: unknown, result?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => op((error, result) => (error ? reject(error) : resolve(result as T))));
}

const children = (client: Client, path: string): Promise<string[]> => call<string[]>((done) => client.getChildren(path, done));
const remove = (client: Client, path: string): Promise<void> => call<void>((done) => client.remove(path, -1, (e) => done(e)));

function zkCode(error: unknown): number | undefined {
  return error instanceof zookeeper.Exception ? error.code : undefined;
}

/** Polls `condition` every 20 ms until it holds; fails after `timeoutMs`. */
async function until(what: string, timeoutMs: number, condition: () => boolean | Promise<boolean>): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await condition()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await delay(20);
  }
}

/** The last list a watch delivered. */
function latest(r: Registry, service: string): { ids: () => string[] | undefined; count: () => number } {
  let last: readonly Endpoint[] | undefined;
  let count = 0;
  const unwatch = r.watch(service, (endpoints) => {
    last = endpoints;
    count++;
  });
  cleanups.push(async () => unwatch());
  return { ids: () => last?.map((e) => e.id).sort(), count: () => count };
}

describe("zookeeper registry: nodes it owns", () => {
  it("re-creates a provider node an operator deleted, and lists the consumer under consumers/", async () => {
    const root = uniqueRoot();
    const provider = registry({ root });
    const consumer = registry({ root });
    const endpoint = conformanceEndpoint("zk.Owned", 7001);
    await provider.register(endpoint);
    const deliveries: (readonly Endpoint[])[] = [];
    const unwatch = consumer.watch("zk.Owned", (e) => deliveries.push(e), { application: "billing" });
    await until("first delivery", 5000, () => deliveries.length > 0);
    assert.deepEqual(deliveries.at(-1)?.map((e) => e.id), [endpoint.id]);

    const raw = await rawClient();
    const consumersFolder = `${root}/zk.Owned/consumers`.replace("zk.Owned", "zk%2EOwned");
    await until("consumer node", 5000, async () => (await children(raw, consumersFolder).catch(() => [])).length === 1);
    const [consumerNode] = await children(raw, consumersFolder);
    const info = JSON.parse((await call<Buffer>((done) => raw.getData(`${consumersFolder}/${consumerNode}`, done))).toString()) as Record<string, unknown>;
    assert.equal(info["application"], "billing");
    assert.equal(info["pid"], process.pid);
    assert.equal(info["service"], "zk.Owned");

    const providersFolder = `${root}/zk%2EOwned/providers`;
    const [node] = await children(raw, providersFolder);
    assert.ok(node !== undefined);
    await remove(raw, `${providersFolder}/${node}`);
    // The provider re-creates its node without any call from the application. The watcher may
    // see it go (an empty push; core's empty protection is the consumer's business) and come
    // back, or, when the re-creation wins the race with its re-read, no change at all: either
    // way its last list holds the provider.
    await until("node re-created", 5000, async () => (await children(raw, providersFolder)).length === 1);
    await until("watch lists it", 5000, () => deliveries.at(-1)?.length === 1);
    assert.deepEqual(await children(raw, providersFolder), [node], "same node name, one node");

    unwatch();
    await until("consumer node removed on unwatch", 5000, async () => (await children(raw, consumersFolder)).length === 0);
  });
});

describe("zookeeper registry: digest ACL", () => {
  it("lets only the digest user create and delete provider nodes; anyone reads", async () => {
    const root = uniqueRoot();
    const digest = { user: "farcall", password: `pw-${randomBytes(4).toString("hex")}` };
    const provider = registry({ root, digest });
    const endpoint = conformanceEndpoint("zk.Secure", 7002);
    await provider.register(endpoint);

    // A consumer without credentials reads the list and may still add its consumer node.
    const consumer = registry({ root });
    const seen = latest(consumer, "zk.Secure");
    await until("unauthenticated watch sees the provider", 5000, () => seen.ids()?.length === 1);
    const raw = await rawClient();
    const folder = `${root}/zk%2ESecure`;
    await until("consumer node under an ACL'd tree", 5000, async () => (await children(raw, `${folder}/consumers`).catch(() => [])).length === 1);

    // Without credentials: no deleting, no creating provider nodes, no registering.
    const [node] = await children(raw, `${folder}/providers`);
    await assert.rejects(remove(raw, `${folder}/providers/${node}`), (e) => zkCode(e) === zookeeper.Exception.NO_AUTH);
    await assert.rejects(
      call((done) => raw.create(`${folder}/providers/fake`, Buffer.from("{}"), zookeeper.CreateMode.EPHEMERAL, done)),
      (e) => zkCode(e) === zookeeper.Exception.NO_AUTH,
    );
    const intruder = registry({ root });
    await assert.rejects(intruder.register(conformanceEndpoint("zk.Secure", 7003)), (e) => e instanceof FarcallError && e.code === "unavailable");
    const acl = await call<unknown[]>((done) => raw.getACL(`${folder}/providers/${node}`, (e, acls) => done(e, acls)));
    const ids = (acl as Array<{ permission: number; id: { scheme: string; id: string } }>).map((a) => `${a.id.scheme}:${a.id.id.split(":")[0]}:${a.permission}`).sort();
    assert.deepEqual(ids, [`digest:farcall:${zookeeper.Permission.ALL}`, `world:anyone:${zookeeper.Permission.READ}`]);

    // With them: the provider's own unregister deletes its node.
    assert.deepEqual(seen.ids(), [endpoint.id]);
    const again = await provider.register(conformanceEndpoint("zk.Secure", 7004));
    await again.unregister();
    assert.equal((await children(raw, `${folder}/providers`)).length, 1);
  });
});

describe("zookeeper registry: outages and sessions", () => {
  it("serves a new watch from the cache file within 1 s while ZooKeeper is down", async (t) => {
    const root = uniqueRoot();
    const cacheDir = await mkdtemp(join(tmpdir(), "farcall-zk-cache-"));
    // Registries writing into cacheDir are closed before it is removed (a watch writes the list
    // again once ZooKeeper is back).
    const writers: Registry[] = [];
    t.after(async () => {
      await Promise.all(writers.map((r) => r.close()));
      await rm(cacheDir, { recursive: true, force: true });
    });
    const provider = registry({ root, sessionTimeoutMs: 20_000 });
    const endpoint = conformanceEndpoint("zk.Cached", 7005);
    await provider.register(endpoint);
    const first = registry({ root, cacheDir });
    writers.push(first);
    const seen = latest(first, "zk.Cached");
    await until("first consumer sees the provider", 5000, () => seen.ids()?.length === 1);
    await first.close(); // flushes the cache file

    await zk.halt();
    try {
      const cold = registry({ root, cacheDir, cacheGraceMs: 300, requestTimeoutMs: 60_000 });
      writers.push(cold);
      const started = Date.now();
      let firstList: readonly Endpoint[] | undefined;
      let firstAt = 0;
      const unwatch = cold.watch("zk.Cached", (e) => {
        if (firstList === undefined) {
          firstList = e;
          firstAt = Date.now();
        }
      });
      cleanups.push(async () => unwatch());
      await until("cached delivery", 2000, () => firstList !== undefined);
      assert.deepEqual(firstList?.map((e) => e.id), [endpoint.id]);
      assert.ok(firstAt - started < 1000, `cached list after ${firstAt - started} ms`);
    } finally {
      await zk.start();
    }
  });

  it("re-registers and re-subscribes at once after its session expired (a frozen process)", async () => {
    const root = uniqueRoot();
    const provider = registry({ root, sessionTimeoutMs: 2000 });
    const consumer = registry({ root, sessionTimeoutMs: 2000 });
    const endpoint = conformanceEndpoint("zk.Expiry", 7006);
    await provider.register(endpoint);
    const seen = latest(consumer, "zk.Expiry");
    await until("consumer sees the provider", 5000, () => seen.ids()?.length === 1);
    const raw = await rawClient();
    const folder = `${root}/zk%2EExpiry/providers`;
    const [before] = await children(raw, folder);
    assert.ok(before !== undefined);

    // Freeze this whole process (as SIGSTOP would) past the session timeout: the server expires
    // both sessions and deletes the provider node; the clients learn it when they run again.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3500);
    const resumed = Date.now();
    await until("provider node re-created under a new session", 5000, async () => {
      const names = await children(raw, folder).catch(() => []);
      return names.length === 1 && names[0] !== before;
    });
    const took = Date.now() - resumed;
    assert.ok(took < 1000, `re-registered ${took} ms after resuming`);
    const after = await children(raw, folder);
    assert.equal(after.length, 1, "exactly one node");
    assert.notEqual(after[0], before, "named for the new session");

    // The consumer's watch is armed again on its new session: a new provider shows up.
    await provider.register(conformanceEndpoint("zk.Expiry", 7007));
    await until("consumer watch re-armed", 5000, () => seen.ids()?.length === 2);
  });
});

describe("zookeeper registry: a rebuilt server", () => {
  it("starts a new session after a session timeout without any server, and registers again on the empty one", async () => {
    const root = uniqueRoot();
    const provider = registry({ root, sessionTimeoutMs: 2000, requestTimeoutMs: 10_000 });
    const consumer = registry({ root, sessionTimeoutMs: 2000, requestTimeoutMs: 10_000 });
    const endpoint = conformanceEndpoint("zk.Rebuilt", 7020);
    await provider.register(endpoint);
    const seen = latest(consumer, "zk.Rebuilt");
    await until("consumer sees the provider", 5000, () => seen.ids()?.length === 1);
    // The new server refuses the old sessions for ever ("has seen zxid ... our last zxid is 0x0"):
    // only a client-side session clock gets out of that.
    await zk.wipe();
    const raw = await rawClient();
    const folder = `${root}/zk%2ERebuilt/providers`;
    await until("provider registered again on the rebuilt server", 8000, async () => (await children(raw, folder).catch(() => [])).length === 1);
    await provider.register(conformanceEndpoint("zk.Rebuilt", 7021));
    await until("consumer watches the rebuilt server", 8000, () => seen.ids()?.length === 2);
  });
});

describe("zookeeper registry: a server that accepts and never answers", () => {
  it("drops the silent connection and tries again instead of waiting forever", async () => {
    // ZooKeeper 3.8 can leave a connection unanswered while it loads its database; the client
    // library would wait on it forever (and miss its session's expiry).
    const sockets = new Set<Socket>();
    let accepted = 0;
    const silent = createServer((socket) => {
      accepted++;
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => undefined);
      socket.resume(); // read (and drop) the connect request, so the client's close is seen
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const address = silent.address();
    assert.ok(address !== null && typeof address === "object");
    try {
      // sessionTimeoutMs 2000: the handshake guard gives up after 500 ms.
      const r = zookeeperRegistry({ connect: `127.0.0.1:${address.port}`, root: "/silent", sessionTimeoutMs: 2000, requestTimeoutMs: 2500, cacheDir: false });
      cleanups.push(() => r.close());
      await assert.rejects(r.register(conformanceEndpoint("zk.Silent", 7010)), (e) => e instanceof FarcallError && e.code === "unavailable");
      assert.ok(accepted >= 3, `expected the client to reconnect after silent handshakes; connections: ${accepted}`);
      await r.close();
      await until("no connection left open after close", 3000, () => sockets.size === 0);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
