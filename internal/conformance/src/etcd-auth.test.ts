import { randomBytes } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Endpoint, FarcallError, type Registry } from "@farcall/core/extension";
import { etcdRegistry, type EtcdRegistryOptions } from "@farcall/registry-etcd";
import { EtcdServer, handledByMethod } from "./etcd-server.js";
import { trackResources } from "./leak-check.js";
import { conformanceEndpoint } from "./registry-conformance.js";

// The etcd registry against an etcd with authentication on (a server of its own, instance
// "auth": enabling authentication changes the rules for every client): roles set up as an
// operator would with etcdctl, a provider user that may write the prefix, a reader that may only
// read it.

const secured = new EtcdServer("auth");
const prefix = `/farcall-auth-${randomBytes(6).toString("hex")}`;
const passwords = { root: `root-${randomBytes(6).toString("hex")}`, provider: `SECRET-${randomBytes(6).toString("hex")}`, reader: `reader-${randomBytes(6).toString("hex")}` };
const cleanups: Array<() => Promise<unknown>> = [];

const folder = (kind: "providers" | "consumers", service: string): string => `${prefix}/${encodeURIComponent(service).replace(/\./g, "%2E")}/${kind}/`;

function securedRegistry(options: Partial<EtcdRegistryOptions>): Registry {
  const r = etcdRegistry({ hosts: secured.host, prefix, ttlSeconds: 2, requestTimeoutMs: 2000, cacheDir: false, ...options });
  cleanups.push(() => r.close());
  return r;
}

async function until(what: string, timeoutMs: number, condition: () => boolean): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await delay(20);
  }
}

before(async () => {
  await secured.start();
  const range = { key: Buffer.from(`${prefix}/`).toString("base64"), range_end: Buffer.from(`${prefix}0`).toString("base64") };
  await secured.v3("auth/user/add", { name: "root", password: passwords.root });
  await secured.v3("auth/user/grant", { user: "root", role: "root" });
  await secured.v3("auth/role/add", { name: "farcall-provider" });
  await secured.v3("auth/role/grant", { name: "farcall-provider", perm: { permType: "READWRITE", ...range } });
  await secured.v3("auth/role/add", { name: "farcall-reader" });
  await secured.v3("auth/role/grant", { name: "farcall-reader", perm: { permType: "READ", ...range } });
  for (const [user, role] of [["provider", "farcall-provider"], ["reader", "farcall-reader"]] as const) {
    await secured.v3("auth/user/add", { name: user, password: passwords[user] });
    await secured.v3("auth/user/grant", { user, role });
  }
  await secured.v3("auth/enable", {});
}, { timeout: 300_000 });
after(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  await secured.stop();
});

describe("etcd registry: etcd authentication", () => {
  it("registers with the provider's credentials; a reader watches; nobody else may write", async () => {
    const tracker = trackResources();
    try {
      const provider = securedRegistry({ auth: { user: "provider", password: passwords.provider } });
      const endpoint = conformanceEndpoint("etcd.Secure", 7080);
      await provider.register(endpoint);
      const reader = securedRegistry({ auth: { user: "reader", password: passwords.reader } });
      let seen: readonly Endpoint[] | undefined;
      const unwatch = reader.watch("etcd.Secure", (endpoints) => (seen = endpoints));
      cleanups.push(async () => unwatch());
      await until("the reader sees the provider", 5000, () => seen?.length === 1);
      assert.deepEqual(seen?.map((e) => e.id), [endpoint.id]);

      // The reader may not write its consumer key: logged and left alone, not retried in a loop.
      const { token } = await secured.v3<{ token: string }>("auth/authenticate", { name: "root", password: passwords.root });
      const txns = handledByMethod(await secured.metrics()).get("Txn");
      await delay(1000);
      assert.equal(handledByMethod(await secured.metrics()).get("Txn"), txns, "no retries of the refused consumer key");
      assert.deepEqual(await secured.keys(folder("consumers", "etcd.Secure"), token), []);

      // Without credentials, or with a wrong password, or as the reader: register fails at once.
      for (const options of [{}, { auth: { user: "provider", password: `${passwords.provider}-wrong` } }, { auth: { user: "reader", password: passwords.reader } }]) {
        const intruder = securedRegistry(options);
        const started = Date.now();
        await assert.rejects(intruder.register(conformanceEndpoint("etcd.Secure", 7081)), (e: unknown) => {
          assert.ok(e instanceof FarcallError && e.code === "unavailable", String(e));
          assert.ok(!e.message.includes(passwords.provider), "the password is not repeated");
          return true;
        });
        assert.ok(Date.now() - started < 1500, `refused after ${Date.now() - started} ms, not at the request timeout`);
      }
      assert.deepEqual((await secured.keys(folder("providers", "etcd.Secure"), token)).map((k) => k.value.toString()), [JSON.stringify(endpoint)]);
      // Authentication opens no connection that close() leaves behind.
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
      await tracker.assertReleased(3000);
    } finally {
      tracker.stop();
    }
  });
});
