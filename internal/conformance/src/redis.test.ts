import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createApplication, defineService } from "@farcall/core";
import { redisRegistry } from "@farcall/registry-redis";
import { type RegistryPair, registryConformance } from "./registry-conformance.js";
import { RedisServer } from "./redis-server.js";

// Against a real Redis of this file's own (instance "conformance", so halting it for the outage
// case disturbs no other test file), started by the project's script, which installs Debian's
// package when missing. Never skipped: if Redis cannot be started, `before` fails and so does
// every case. The server keeps its data across the outage (append-only file), as a production
// server with persistence does.
const redis = new RedisServer("conformance");

before(() => redis.start(), { timeout: 300_000 });
after(() => redis.stop());

registryConformance(
  "redis",
  async (): Promise<RegistryPair> => {
    // A prefix of its own per case, so that cases never see each other's keys.
    const prefix = `farcall-conformance-${randomBytes(6).toString("hex")}`;
    // A cache directory of its own (the default is under ~/.cache), removed with the pair.
    const cacheDir = await mkdtemp(join(tmpdir(), "farcall-conformance-cache-"));
    const options = { port: redis.port, prefix, heartbeatMs: 500, expireAfterMs: 4000, sweepMs: 250, pollMs: 500, requestTimeoutMs: 4000, cacheDir };
    const a = redisRegistry(options);
    const b = redisRegistry(options);
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
    // An outage shorter than expireAfterMs, data kept: registrations stay, watches resume.
    async outage(downMs) {
      await redis.halt();
      await delay(downMs);
      await redis.start();
    },
  },
);

describe("a redis:// registry address", () => {
  it("lets a provider and a consumer find each other, as FARCALL_REGISTRY=redis://… would", async () => {
    interface Greeter {
      greet(name: string): string;
    }
    const Greeter = defineService<Greeter>("conformance.Greeter", { version: "1", methods: { greet: { idempotent: true } } });
    const registry = `${redis.url}/0?prefix=farcall-e2e-${randomBytes(6).toString("hex")}&cacheDir=false`;
    const base = { env: {}, handleSignals: false, warmupMs: 0 } as const;
    const provider = createApplication({ ...base, name: "redis-provider", registry });
    const consumer = createApplication({ ...base, name: "redis-consumer", registry });
    try {
      provider.provide(Greeter, { greet: (_ctx, name) => `hello ${name}` });
      await provider.start();
      assert.equal(provider.registry.kind, "redis");
      assert.equal(await consumer.client(Greeter).greet("redis"), "hello redis");
    } finally {
      await consumer.close();
      await provider.close();
    }
  });
});
