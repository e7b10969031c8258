import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createApplication, defineService } from "@farcall/core";
import { etcdRegistry } from "@farcall/registry-etcd";
import { EtcdServer } from "./etcd-server.js";
import { type RegistryPair, registryConformance } from "./registry-conformance.js";

// Against a real etcd of this file's own (instance "conformance", so halting it for the outage
// case disturbs no other test file), started by the project's script, which installs Debian's
// package when missing. Never skipped: if etcd cannot be started, `before` fails and so does
// every case.
const etcd = new EtcdServer("conformance");
let host = "";

// The first start may install Debian's etcd-server package: allow for a slow mirror.
before(async () => {
  await etcd.start();
  host = etcd.host;
}, { timeout: 300_000 });

after(() => etcd.stop());

registryConformance(
  "etcd",
  async (): Promise<RegistryPair> => {
    // A prefix of its own per case, so that cases never see each other's keys.
    const prefix = `/farcall-conformance-${randomBytes(6).toString("hex")}`;
    // A cache directory of its own (the default is under ~/.cache), removed with the pair.
    const cacheDir = await mkdtemp(join(tmpdir(), "farcall-conformance-cache-"));
    const options = { hosts: host, prefix, ttlSeconds: 4, requestTimeoutMs: 4000, cacheDir };
    const a = etcdRegistry(options);
    const b = etcdRegistry(options);
    return {
      a,
      b,
      async cleanup() {
        await Promise.all([a.close(), b.close()]);
        await rm(cacheDir, { recursive: true, force: true });
      },
    };
  },
  {
    settleMs: 2000,
    // Leases (4 s) outlive the outage; a restarted etcd gives them a full TTL again.
    async outage(downMs) {
      await etcd.halt();
      await delay(downMs);
      await etcd.start();
    },
  },
);

describe("an etcd:// registry address", () => {
  it("lets a provider and a consumer find each other, as FARCALL_REGISTRY=etcd://… would", async () => {
    interface Greeter {
      greet(name: string): string;
    }
    const Greeter = defineService<Greeter>("conformance.Greeter", { version: "1", methods: { greet: { idempotent: true } } });
    const registry = `etcd://${host}/farcall-e2e-${randomBytes(6).toString("hex")}?ttlSeconds=4&cacheDir=false`;
    const base = { env: {}, handleSignals: false, warmupMs: 0 } as const;
    const provider = createApplication({ ...base, name: "etcd-provider", registry });
    const consumer = createApplication({ ...base, name: "etcd-consumer", registry });
    try {
      provider.provide(Greeter, { greet: (_ctx, name) => `hello ${name}` });
      await provider.start();
      assert.equal(provider.registry.kind, "etcd");
      assert.equal(await consumer.client(Greeter).greet("etcd"), "hello etcd");
    } finally {
      await consumer.close();
      await provider.close();
    }
  });
});
