import { debuglog } from "node:util";
import { maxEndpointBytes, maxGovernanceRulesBytes, type RegistryCache, WatchDelivery, type Endpoint } from "@farcall/core/extension";
import type { RedisConnection } from "./redis-connection.js";
import { type GlobalKeys, serviceKeys, type ServiceKeys } from "./redis-keys.js";
import { RulesWatch } from "./redis-rules.js";
import { readRulesScript, readScript, runScript } from "./redis-scripts.js";
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
  /** The `watchRules` of the service: read like the list, by the same versions. */
  readonly rules: Set<RulesWatch>;
  /** The service version of the last rules read; undefined before the first read. */
  rulesVersion: string | undefined;
  rulesNeedsRead: boolean;
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
 * next poll tries again. Governance rules watches ride the same loop: a rules change takes a new
 * service version like a list change, and a group re-reads its list and its rules only for the
 * kinds of watch it has.
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
    const { cache, cacheGraceMs } = this.#options;
    const watch = new ServiceWatch({ service, delivery: new WatchDelivery(onChange), cache, cacheGraceMs });
    const group = this.#group(service);
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
    this.#dropIfUnwatched(group);
  }

  /** Watches the rules of `service` for `onChange`; the first text comes from the next pass. */
  addRules(service: string, onChange: (rules: string | undefined) => void): RulesWatch {
    const watch = new RulesWatch(service, onChange);
    const group = this.#group(service);
    group.rules.add(watch);
    group.rulesNeedsRead = true;
    this.#startSubscriber();
    this.kick("check");
    return watch;
  }

  /** Stops `watch`; no delivery after this. */
  removeRules(watch: RulesWatch): void {
    watch.stop();
    const group = this.#groups.get(watch.service);
    if (group === undefined) return;
    group.rules.delete(watch);
    this.#dropIfUnwatched(group);
  }

  #group(service: string): ServiceGroup {
    let group = this.#groups.get(service);
    if (group === undefined) {
      group = {
        service,
        keys: serviceKeys(this.#options.prefix, service),
        watches: new Set(),
        version: undefined,
        needsRead: false,
        rules: new Set(),
        rulesVersion: undefined,
        rulesNeedsRead: false,
      };
      this.#groups.set(service, group);
    }
    return group;
  }

  #dropIfUnwatched(group: ServiceGroup): void {
    if (group.watches.size === 0 && group.rules.size === 0) this.#groups.delete(group.service);
  }

  /** Every watch of `group` after a failed read; each delivers its fallback when it is owed one. */
  #failed(group: ServiceGroup): void {
    for (const w of group.watches) void w.failed();
    for (const w of group.rules) w.failed();
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
        for (const group of this.#groups.values()) this.#failed(group);
        this.#after();
      },
    );
  }

  /** Stops every watch, the loop and the subscriber; resolves when the pass in flight ends. */
  async stop(closeTimeoutMs: number): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const group of this.#groups.values()) {
      for (const w of group.watches) w.stop();
      for (const w of group.rules) w.stop();
    }
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
    if (kind === "poll" && !groups.some((g) => g.needsRead || g.rulesNeedsRead)) {
      const latest = (await connection.run("poll", (client) => client.get(global.version))) ?? "";
      if (latest === this.#lastGlobal) return;
    }
    const versions = await connection.run("read versions", (client) => client.mget(global.version, ...groups.map((g) => g.keys.version)));
    this.#lastGlobal = versions[0] ?? "";
    const stale = groups.filter((g, i) => g.watches.size > 0 && (g.needsRead || g.version !== (versions[i + 1] ?? "")));
    const staleRules = groups.filter((g, i) => g.rules.size > 0 && (g.rulesNeedsRead || g.rulesVersion !== (versions[i + 1] ?? "")));
    await Promise.all([...stale.map((g) => this.#read(g)), ...staleRules.map((g) => this.#readRules(g))]);
  }

  async #readRules(group: ServiceGroup): Promise<void> {
    const { connection } = this.#options;
    group.rulesNeedsRead = false;
    let answer: unknown;
    try {
      answer = await connection.run(`read the rules of ${group.service}`, (client) =>
        runScript(client, readRulesScript, [group.keys.rules, group.keys.version], [maxGovernanceRulesBytes]),
      );
    } catch (error) {
      debug("redis: reading the rules of %s failed: %o", group.service, error);
      group.rulesNeedsRead = true;
      for (const w of group.rules) w.failed();
      return;
    }
    const [version, text] = Array.isArray(answer) ? (answer as [unknown, unknown]) : [undefined, undefined];
    group.rulesVersion = typeof version === "string" ? version : String(version ?? "");
    if (this.#groups.get(group.service) !== group) return; // unwatched meanwhile
    // GETRANGE stops after maxGovernanceRulesBytes + 1 bytes: a longer text arrives cut, still over the limit.
    const rules = typeof text === "string" && text.length > 0 ? text : undefined;
    for (const w of group.rules) w.deliver(rules);
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
