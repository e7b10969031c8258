import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createApplication, defineService } from "@farcall/core";
import { zookeeperRegistry } from "@farcall/registry-zookeeper";
import { type RegistryPair, registryConformance } from "./registry-conformance.js";
import { ZookeeperServer } from "./zookeeper-server.js";

// Against a real ZooKeeper of this file's own (instance "conformance", so halting it for the
// outage case disturbs no other test file), started by the project's script, which installs
// Debian's package when missing. Never skipped: if ZooKeeper cannot be started, `before` fails
// and so does every case.
const zk = new ZookeeperServer("conformance");
let connect = "";

// The first start installs Debian's zookeeper package (about 17 s here): allow for a slow mirror.
before(async () => {
  await zk.start();
  connect = zk.connect;
}, { timeout: 300_000 });

after(() => zk.stop());

registryConformance(
  "zookeeper",
  async (): Promise<RegistryPair> => {
    // A root of its own per case, so that cases never see each other's nodes.
    const root = `/farcall-conformance-${randomBytes(6).toString("hex")}`;
    // A cache directory of its own (the default is under ~/.cache), removed with the pair.
    const cacheDir = await mkdtemp(join(tmpdir(), "farcall-conformance-cache-"));
    const options = { connect, root, sessionTimeoutMs: 4000, requestTimeoutMs: 4000, cacheDir };
    const a = zookeeperRegistry(options);
    const b = zookeeperRegistry(options);
    return {
      a,
      b,
      async cleanup() {
        // The root's persistent parent nodes stay until the server (and its data dir) is stopped.
        await Promise.all([a.close(), b.close()]);
        await rm(cacheDir, { recursive: true, force: true });
      },
    };
  },
  {
    settleMs: 2000,
    // Sessions (4 s) outlive the outage: the server restores them when it is back.
    async outage(downMs) {
      await zk.halt();
      await delay(downMs);
      await zk.start();
    },
  },
);

describe("a zookeeper:// registry address", () => {
  it("lets a provider and a consumer find each other, as FARCALL_REGISTRY=zookeeper://… would", async () => {
    interface Greeter {
      greet(name: string): string;
    }
    const Greeter = defineService<Greeter>("conformance.Greeter", { version: "1", methods: { greet: { idempotent: true } } });
    const registry = `zookeeper://${connect}/farcall-e2e-${randomBytes(6).toString("hex")}?sessionTimeoutMs=4000&cacheDir=false`;
    const base = { env: {}, handleSignals: false, warmupMs: 0 } as const;
    const provider = createApplication({ ...base, name: "zk-provider", registry });
    const consumer = createApplication({ ...base, name: "zk-consumer", registry });
    try {
      provider.provide(Greeter, { greet: (_ctx, name) => `hello ${name}` });
      await provider.start();
      assert.equal(provider.registry.kind, "zookeeper");
      assert.equal(await consumer.client(Greeter).greet("zk"), "hello zk");
    } finally {
      await consumer.close();
      await provider.close();
    }
  });
});
