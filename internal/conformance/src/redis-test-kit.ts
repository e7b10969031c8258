import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, afterEach, before } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import type { Endpoint, Registry } from "@farcall/core/extension";
import { redisRegistry, type RedisRegistryOptions } from "@farcall/registry-redis";
import type { Redis } from "ioredis";
import { killAll } from "./processes.js";
import { RedisServer } from "./redis-server.js";

/** Test timings: reports every 500 ms, expiry after 2 s, a sweep call every 250 ms, a poll every 500 ms. */
export const fast = { heartbeatMs: 500, expireAfterMs: 2000, sweepMs: 250, pollMs: 500, requestTimeoutMs: 2000, cacheDir: false } as const;

/** The documented keys of `service` under `prefix` (docs/registry-redis.md). */
export function keys(prefix: string, service: string) {
  const base = `${prefix}:{${service}}:`;
  return {
    providers: `${base}providers`,
    endpoints: `${base}endpoints`,
    version: `${base}version`,
    consumers: `${base}consumers`,
    global: `${prefix}:version`,
    channel: `${prefix}:changes`,
    services: `${prefix}:services`,
  };
}

/** Polls `condition` every 10 ms until it holds; fails after `timeoutMs`; resolves with the time it took. */
export async function until(what: string, timeoutMs: number, condition: () => boolean | Promise<boolean>): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await condition()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await delay(10);
  }
}

/**
 * A test file's own Redis (instance `name`, started in `before`, stopped in `after`) and what its
 * cases open on it, closed after each case (`afterEach`), so no registry of one case still runs
 * in the next. Call once, at the top of the file.
 */
export function redisTestKit(name: string) {
  const server = new RedisServer(name);
  const cleanups: Array<() => Promise<unknown>> = [];
  before(() => server.start(), { timeout: 300_000 });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });
  after(async () => {
    await killAll();
    await server.stop();
  });
  return {
    server,
    /** Runs after the current case. */
    cleanups,
    uniquePrefix: (): string => `farcall-${name}-${randomBytes(6).toString("hex")}`,
    /** A registry with the test timings, closed after the case. */
    registry(options: Partial<RedisRegistryOptions> & { prefix: string }): Registry {
      const r = redisRegistry({ port: server.port, ...fast, ...options });
      cleanups.push(() => r.close());
      return r;
    },
    /** Every list a watch delivered, with arrival times; unwatched after the case. */
    recorder(r: Registry, service: string) {
      const lists: { at: number; ids: string[] }[] = [];
      const unwatch = r.watch(service, (endpoints: readonly Endpoint[]) => lists.push({ at: Date.now(), ids: endpoints.map((e) => e.id).sort() }));
      cleanups.push(async () => unwatch());
      return {
        lists,
        unwatch,
        ids: (): string[] | undefined => lists.at(-1)?.ids,
        has: (id: string): boolean => lists.at(-1)?.ids.includes(id) ?? false,
      };
    },
    /** Messages published on `channel`, counted by a subscriber of the test's own. */
    async countMessages(channel: string): Promise<{ readonly count: () => number; readonly client: Redis }> {
      const client = await server.client();
      let count = 0;
      client.on("message", (from: string) => {
        if (from === channel) count++;
      });
      await client.subscribe(channel);
      return { count: () => count, client };
    },
  };
}
