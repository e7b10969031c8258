import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { debuglog } from "node:util";
import type { Endpoint, Registration, Registry, Unwatch, WatchOptions } from "@farcall/core/extension";
import { RegistryCache, RulesWrites } from "@farcall/core/extension";
import { closedError, encodeEndpoint, redisError } from "./errors.js";
import { RedisConnection } from "./redis-connection.js";
import { type ConsumerEntry, Heartbeats, type ProviderEntry } from "./redis-heartbeats.js";
import { globalKeys, serviceKeys } from "./redis-keys.js";
import { type RedisRegistryOptions, resolveRedisOptions } from "./redis-options.js";
import { rulesBytes } from "./redis-rules.js";
import { rulesScript, runScript } from "./redis-scripts.js";
import { Sweeper } from "./redis-sweeper.js";
import { Watches } from "./redis-watches.js";

export type { RedisRegistryOptions } from "./redis-options.js";

const debug = debuglog("farcall:registry");

/** Service names a provider can register (core's pattern): the only ones given a consumer entry. */
const serviceName = /^[A-Za-z0-9_.:\-/$]{1,256}$/;

/** Most time between two reconnection attempts (50 ms doubling up to this). */
const maxReconnectDelayMs = 1000;

async function within(work: Promise<unknown>, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
  });
  await Promise.race([work.then(() => undefined, () => undefined), late]);
  clearTimeout(timer);
}

/**
 * A {@link Registry} on Redis (standalone or Sentinel-managed primary; not Redis Cluster), after
 * the heartbeat sorted set design: each provider reports every `heartbeatMs` into a per-service
 * sorted set (member: its endpoint id, score: the Redis time of the report), its endpoint JSON in
 * a hash beside it; sweepers remove providers whose reports fell `expireAfterMs` behind, so a
 * provider killed with kill -9 leaves the lists without anyone deleting it. Every change of a list
 * (a new member, a removal; never a heartbeat of a listed member) takes a new global version,
 * stored as the service's version and published on one channel; consumers re-read only the lists
 * whose version changed, on every message, on every (re)connection, and every `pollMs`. The key
 * layout is in `redis-keys.ts` and docs/registry-redis.md.
 *
 * Two connections at most: one for commands (opened on first use), one subscriber (opened with
 * the first watch). Both reconnect for ever; on every reconnection everything this registry
 * keeps listed is reported again (a server restarted empty is refilled at once) and every watch
 * compares versions. Writes are Lua scripts, atomic, timed by Redis's clock: several sweepers
 * at once are safe. Watches parse data as untrusted (size-capped, `parseEndpoint`, must name
 * the watched service, at most 4096 entries), deliver full lists one at a time, and keep a cache
 * file exactly as the ZooKeeper registry does.
 *
 * Governance rules: the string `<prefix>:{<service>}:rules`, written by a script that also takes
 * a new version for the service and publishes it, as a list change does; `watchRules` rides the
 * same loop (message, reconnection, poll) and re-reads the text when the service's version moved,
 * at most 65537 bytes of it (`GETRANGE`). No key, an empty string or a key of another type is no
 * rules. Rules have no expiry and are never swept.
 *
 * `close()` unregisters everything (waiting at most min(`requestTimeoutMs`, 2000) ms for Redis),
 * quits both connections and clears every timer.
 * @throws FarcallError `invalid_argument`, reason `bad_option`, for invalid options.
 * `register` rejects with `invalid_argument` (`bad_endpoint`), `unavailable` (`registry_closed`),
 * or `unavailable` when Redis cannot be reached or does not answer within `requestTimeoutMs`
 * (or refuses: a wrong password, a read-only replica); `publishRules` likewise, with
 * `invalid_argument` (`bad_rules`) for a bad service name or text.
 */
export function redisRegistry(options: RedisRegistryOptions = {}): Registry {
  const o = resolveRedisOptions(options);
  const incarnation = `${process.pid}-${randomBytes(6).toString("hex")}`;
  const global = globalKeys(o.prefix);
  const closeTimeoutMs = Math.min(o.requestTimeoutMs, 2000);
  const tasks = new Set<Promise<unknown>>();
  const cache = o.cacheDir === false ? undefined : new RegistryCache({ dir: o.cacheDir, scope: `redis://${o.host}:${o.port}/${o.db}/${o.prefix}` });
  const rulesWrites = new RulesWrites();
  let sequence = 0;
  let closing: Promise<void> | undefined;

  const connectionOptions = (role: string, onReady: () => void) => ({
    host: o.host,
    port: o.port,
    db: o.db,
    username: o.username,
    password: o.password,
    requestTimeoutMs: o.requestTimeoutMs,
    maxReconnectDelayMs,
    connectionName: `farcall:${incarnation}:${role}`,
    onReady,
  });
  const connection = new RedisConnection(
    connectionOptions("commands", () => {
      // Possibly a server that lost its data, or changes missed while away: list everything
      // again, compare every watched version.
      heartbeats.kick();
      watches.kick("check");
    }),
  );
  const heartbeats = new Heartbeats({ connection, global, heartbeatMs: o.heartbeatMs });
  const sweeper = new Sweeper({
    connection,
    prefix: o.prefix,
    global,
    sweepMs: o.sweepMs,
    expireAfterMs: o.expireAfterMs,
    silenceMs: o.expireAfterMs - o.heartbeatMs,
  });
  const watches = new Watches({
    connection,
    subscriber: (onReady) => new RedisConnection(connectionOptions("subscriber", onReady)),
    prefix: o.prefix,
    global,
    pollMs: o.pollMs,
    cache,
    cacheGraceMs: o.cacheGraceMs,
  });

  function track<T>(task: Promise<T>): Promise<T> {
    tasks.add(task);
    const forget = (): void => void tasks.delete(task);
    task.then(forget, forget);
    return task;
  }

  async function registerNow(endpoint: Endpoint): Promise<Registration> {
    if (closing !== undefined) throw closedError();
    const { endpoint: parsed, json } = encodeEndpoint(endpoint);
    const entry: ProviderEntry = { kind: "provider", service: parsed.service, keys: serviceKeys(o.prefix, parsed.service), id: parsed.id, json };
    const key = sequence++;
    // Kept before the first write: a reconnection meanwhile reports it too (reports are idempotent).
    heartbeats.add(key, entry);
    sweeper.start();
    try {
      await heartbeats.write(entry);
    } catch (error) {
      heartbeats.delete(key);
      if (closing !== undefined) throw closedError();
      throw redisError(`register ${parsed.service}`, error);
    }
    debug("redis: registered %s in %s", parsed.id, entry.keys.providers);
    let unregistering: Promise<void> | undefined;
    const unregisterNow = async (): Promise<void> => {
      heartbeats.delete(key);
      // close() removes everything; the same endpoint registered twice stays until both go.
      if (closing !== undefined || heartbeats.hasProvider(entry.service, entry.id)) return;
      await heartbeats.removeProvider(entry);
    };
    return {
      unregister: () => {
        unregistering ??= track(unregisterNow()).catch((error: unknown) => {
          unregistering = undefined; // a later call tries again
          throw redisError(`unregister ${entry.service}`, error);
        });
        return unregistering;
      },
    };
  }

  function watch(service: string, onChange: (endpoints: readonly Endpoint[]) => void, watchOptions?: WatchOptions): Unwatch {
    if (closing !== undefined) return () => {};
    const serviceWatch = watches.add(service, onChange);
    sweeper.start();
    let consumer: { key: number; entry: ConsumerEntry } | undefined;
    if (serviceName.test(service)) {
      const key = sequence++;
      const info = { id: `${incarnation}-${key}`, service, application: watchOptions?.application ?? "", host: hostname(), pid: process.pid, startTime: Date.now() };
      const entry: ConsumerEntry = { kind: "consumer", service, keys: serviceKeys(o.prefix, service), member: JSON.stringify(info) };
      heartbeats.add(key, entry);
      consumer = { key, entry };
      void track(heartbeats.write(entry).catch((error: unknown) => debug("redis: listing consumer of %s failed: %o", service, error)));
    }
    let unwatched = false;
    return () => {
      if (unwatched) return;
      unwatched = true;
      watches.remove(serviceWatch);
      if (consumer === undefined || heartbeats.delete(consumer.key) === undefined || closing !== undefined) return;
      const { entry } = consumer;
      void track(heartbeats.removeConsumer(entry).catch((error: unknown) => debug("redis: removing consumer of %s failed: %o", service, error)));
    };
  }

  async function publishRulesNow(service: string, value: string | undefined): Promise<void> {
    if (closing !== undefined) throw closedError();
    const keys = serviceKeys(o.prefix, service);
    try {
      await connection.run(`publish the rules of ${service}`, (client) =>
        runScript(client, rulesScript, [keys.rules, keys.version, global.version], [value === undefined ? "del" : "set", value ?? "", global.channel]),
      );
    } catch (error) {
      if (closing !== undefined) throw closedError();
      throw redisError(`publish the rules of ${service}`, error);
    }
    debug("redis: rules of %s %s", service, value === undefined ? "deleted" : "published");
  }

  function watchRules(service: string, onChange: (rules: string | undefined) => void): Unwatch {
    if (closing !== undefined) return () => {};
    const rulesWatch = watches.addRules(service, onChange);
    return () => watches.removeRules(rulesWatch);
  }

  async function closeAll(): Promise<void> {
    const entries = heartbeats.entries();
    await Promise.all([heartbeats.stop(), sweeper.stop()]);
    const watchesStopped = watches.stop(closeTimeoutMs);
    const providers = new Map<string, ProviderEntry>();
    const consumers: ConsumerEntry[] = [];
    for (const entry of entries) {
      if (entry.kind === "provider") providers.set(`${entry.service}\n${entry.id}`, entry);
      else consumers.push(entry);
    }
    if (entries.length > 0) {
      // Registrations in flight were kept before their write was sent: these removals follow it.
      try {
        await connection.whenReady(closeTimeoutMs, "close");
        const removals = [...[...providers.values()].map((e) => heartbeats.removeProvider(e)), ...consumers.map((e) => heartbeats.removeConsumer(e))];
        await within(Promise.allSettled(removals), closeTimeoutMs);
      } catch (error) {
        debug("redis: close: entries left for the sweepers: %o", error);
      }
    }
    await connection.close(closeTimeoutMs);
    await watchesStopped;
    await Promise.allSettled([...tasks]);
    await cache?.flush();
  }

  return {
    kind: "redis",
    register: (endpoint) => track(registerNow(endpoint)),
    watch,
    publishRules: async (service, rules) => {
      // Checked here, sent as the text (ioredis encodes it as UTF-8, the bytes just counted).
      rulesBytes(service, rules);
      if (closing !== undefined) throw closedError();
      return track(rulesWrites.run(service, () => publishRulesNow(service, rules)));
    },
    watchRules,
    close: () => (closing ??= closeAll()),
  };
}
