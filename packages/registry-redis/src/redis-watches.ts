import { debuglog } from "node:util";
import { maxEndpointBytes, type RegistryCache, WatchDelivery, type Endpoint } from "@farcall/core/extension";
import type { RedisConnection } from "./redis-connection.js";
import { type GlobalKeys, serviceKeys, type ServiceKeys } from "./redis-keys.js";
import { readScript, runScript } from "./redis-scripts.js";
import { decodeEndpoints, ServiceWatch } from "./redis-service-watch.js";

const debug = debuglog("farcall:registry");

/** Most providers read per service; the rest are ignored (a hostile or broken list). */
export const maxEntriesRead = 4096;

/** Options of {@link Watches}; durations in milliseconds. */
export interface WatchesOptions {
  readonly connection: RedisConnection;
  /** Creates the subscriber connection; called once, with the first watch. */
  readonly subscriber: (onReady: () => void) => RedisConnection;
  readonly prefix: string;
  readonly global: GlobalKeys;
  readonly pollMs: number;
  readonly cache: RegistryCache | undefined;
  readonly cacheGraceMs: number;
}

/** The watches of one service in one registry, and the version their last read had. */
interface ServiceGroup {
  readonly service: string;
  readonly keys: ServiceKeys;
  readonly watches: Set<ServiceWatch>;
  /** The service version of the last list read; undefined before the first read. */
  version: string | undefined;
  needsRead: boolean;
}

/**
 * What a pass does: `poll` reads the global version and goes on only when it moved; `check` reads
 * the versions of all watched services at once (one MGET) and re-reads each list whose version
 * differs from the one last read.
 */
type PassKind = "poll" | "check";

/**
 * The consumer side of a Redis registry: every watch of every service, kept current by one
 * serialised loop of passes, never two at once. A pass runs on each message of the change
 * channel (when it carries a global version other than the last one seen), on every `ready` of
 * either connection (messages sent while the subscriber was away are lost; the versions are not),
 * for each new watch, and every `pollMs` as the fallback when pub/sub is silently broken.
 * A failed pass keeps every list as it was (a watch not yet served gets its cached list) and the
 * next poll tries again.
 */
export class Watches {
  readonly #options: WatchesOptions;
  readonly #groups = new Map<string, ServiceGroup>();
  #subscriber: RedisConnection | undefined;
  #lastGlobal: string | undefined;
  #pass: Promise<void> | undefined;
  #pending: PassKind | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: WatchesOptions) {
    this.#options = options;
  }

  /** Watches `service` for `onChange`; the first list comes from the next pass or the cache. */
  add(service: string, onChange: (endpoints: readonly Endpoint[]) => void): ServiceWatch {
    const { cache, cacheGraceMs, prefix } = this.#options;
    const watch = new ServiceWatch({ service, delivery: new WatchDelivery(onChange), cache, cacheGraceMs });
    let group = this.#groups.get(service);
    if (group === undefined) {
      group = { service, keys: serviceKeys(prefix, service), watches: new Set(), version: undefined, needsRead: true };
      this.#groups.set(service, group);
    }
    group.watches.add(watch);
    group.needsRead = true;
    this.#startSubscriber();
    this.kick("check");
    return watch;
  }

  /** Stops `watch`; no delivery after this. */
  remove(watch: ServiceWatch): void {
    watch.stop();
    const group = this.#groups.get(watch.service);
    if (group === undefined) return;
    group.watches.delete(watch);
    if (group.watches.size === 0) this.#groups.delete(watch.service);
  }

  /** Runs a pass of `kind` now, or after the pass in flight (the larger kind wins). */
  kick(kind: PassKind): void {
    if (this.#stopped || this.#groups.size === 0) return;
    if (this.#pending !== "check") this.#pending = kind;
    if (this.#pass !== undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const next = this.#pending;
    this.#pending = undefined;
    this.#pass = this.#passOnce(next).then(
      () => this.#after(),
      (error: unknown) => {
        debug("redis: reading watched lists failed: %o", error);
        for (const group of this.#groups.values()) for (const w of group.watches) void w.failed();
        this.#after();
      },
    );
  }

  /** Stops every watch, the loop and the subscriber; resolves when the pass in flight ends. */
  async stop(closeTimeoutMs: number): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const group of this.#groups.values()) for (const w of group.watches) w.stop();
    this.#groups.clear();
    await Promise.all([this.#subscriber?.close(closeTimeoutMs), this.#pass]);
  }

  #startSubscriber(): void {
    if (this.#subscriber !== undefined || this.#stopped) return;
    const { channel } = this.#options.global;
    const subscriber = this.#options.subscriber(() => {
      // Subscribed again (ioredis's own resubscription is off): whatever was published while
      // the subscriber was away is found by comparing versions.
      subscriber
        .runIfReady(`subscribe ${channel}`, (client) => client.subscribe(channel))
        .then(
          () => this.kick("check"),
          (error: unknown) => {
            debug("redis: subscribing to %s failed; reconnecting: %o", channel, error);
            if (subscriber.ready) subscriber.client.disconnect(true);
          },
        );
    });
    subscriber.client.on("message", (from: string, message: string) => {
      if (from !== channel || message === this.#lastGlobal) return;
      this.kick("check");
    });
    this.#subscriber = subscriber;
    subscriber.start();
  }

  #after(): void {
    this.#pass = undefined;
    if (this.#stopped) return;
    if (this.#pending !== undefined) {
      this.kick(this.#pending);
      return;
    }
    if (this.#groups.size === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.kick("poll");
    }, this.#options.pollMs);
    this.#timer.unref();
  }

  async #passOnce(kind: PassKind): Promise<void> {
    const { connection, global } = this.#options;
    const groups = [...this.#groups.values()];
    if (kind === "poll" && !groups.some((g) => g.needsRead)) {
      const latest = (await connection.run("poll", (client) => client.get(global.version))) ?? "";
      if (latest === this.#lastGlobal) return;
    }
    const versions = await connection.run("read versions", (client) => client.mget(global.version, ...groups.map((g) => g.keys.version)));
    this.#lastGlobal = versions[0] ?? "";
    const stale = groups.filter((g, i) => g.needsRead || g.version !== (versions[i + 1] ?? ""));
    await Promise.all(stale.map((g) => this.#read(g)));
  }

  async #read(group: ServiceGroup): Promise<void> {
    const { connection, cache } = this.#options;
    group.needsRead = false;
    let answer: unknown;
    try {
      answer = await connection.run(`read ${group.service}`, (client) =>
        runScript(client, readScript, [group.keys.providers, group.keys.endpoints, group.keys.version], [maxEntriesRead, maxEndpointBytes]),
      );
    } catch (error) {
      debug("redis: reading %s failed: %o", group.service, error);
      group.needsRead = true;
      for (const w of group.watches) void w.failed();
      return;
    }
    const [version, values] = Array.isArray(answer) ? (answer as [unknown, unknown]) : [undefined, undefined];
    const endpoints = decodeEndpoints(Array.isArray(values) ? (values as unknown[]) : [], group.service);
    group.version = typeof version === "string" ? version : String(version ?? "");
    if (this.#groups.get(group.service) !== group) return; // unwatched meanwhile
    for (const w of group.watches) w.deliver(endpoints);
    if (endpoints.length > 0) cache?.save(group.service, endpoints);
  }
}
