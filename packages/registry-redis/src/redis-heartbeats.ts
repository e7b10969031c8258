import { debuglog } from "node:util";
import type { RedisConnection } from "./redis-connection.js";
import type { GlobalKeys, ServiceKeys } from "./redis-keys.js";
import { consumerScript, heartbeatScript, runScript, unregisterScript } from "./redis-scripts.js";

const debug = debuglog("farcall:registry");

/** A provider registration: listed under its id, with its JSON. */
export interface ProviderEntry {
  readonly kind: "provider";
  readonly service: string;
  readonly keys: ServiceKeys;
  readonly id: string;
  readonly json: string;
}

/** A watching consumer: listed under its JSON (informational). */
export interface ConsumerEntry {
  readonly kind: "consumer";
  readonly service: string;
  readonly keys: ServiceKeys;
  readonly member: string;
}

export type OwnedEntry = ProviderEntry | ConsumerEntry;

/** Options of {@link Heartbeats}; durations in milliseconds. */
export interface HeartbeatsOptions {
  readonly connection: RedisConnection;
  readonly global: GlobalKeys;
  readonly heartbeatMs: number;
}

/**
 * The entries a registry keeps listed, and the one timer that reports them. Every `heartbeatMs`
 * (counted from the end of the previous pass, so passes never overlap or pile up) each entry is
 * reported with one script call; a report re-lists an entry that was swept or deleted by hand
 * (a change, so watchers hear of it). A pass is skipped while disconnected; every `ready` (a
 * reconnection, possibly to a server that lost its data) runs one at once. The timer runs while
 * there is at least one entry.
 */
export class Heartbeats {
  readonly #options: HeartbeatsOptions;
  readonly #entries = new Map<number, OwnedEntry>();
  #timer: NodeJS.Timeout | undefined;
  #pass: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  constructor(options: HeartbeatsOptions) {
    this.#options = options;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Starts keeping `entry` listed (the caller writes it the first time). */
  add(key: number, entry: OwnedEntry): void {
    if (this.#stopped) return;
    this.#entries.set(key, entry);
    if (this.#timer === undefined && this.#pass === undefined) this.#schedule();
  }

  /** Stops reporting `key`; returns the entry, if it was kept. */
  delete(key: number): OwnedEntry | undefined {
    const entry = this.#entries.get(key);
    this.#entries.delete(key);
    return entry;
  }

  /** Whether another kept entry lists the same provider id of the same service. */
  hasProvider(service: string, id: string): boolean {
    for (const e of this.#entries.values()) if (e.kind === "provider" && e.service === service && e.id === id) return true;
    return false;
  }

  /** Every kept entry. */
  entries(): OwnedEntry[] {
    return [...this.#entries.values()];
  }

  /** Reports every entry now, or once more after the pass in flight. */
  kick(): void {
    if (this.#stopped) return;
    if (this.#pass !== undefined) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#entries.size === 0) return;
    this.#pass = this.#passOnce().then(
      () => this.#after(),
      (error: unknown) => {
        debug("redis: heartbeat failed: %o", error);
        this.#after();
      },
    );
  }

  /** No pass after this; resolves when the pass in flight ends. Idempotent. */
  stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    return this.#pass ?? Promise.resolve();
  }

  /** The first write of an entry (a registration waits for it; it waits for the connection). */
  write(entry: OwnedEntry): Promise<unknown> {
    return this.#options.connection.run(`register ${entry.service}`, (client) => this.#report(client, entry));
  }

  /** Removes a provider entry at once (a change when it was listed). */
  removeProvider(entry: ProviderEntry): Promise<unknown> {
    const { connection, global } = this.#options;
    return connection.run(`unregister ${entry.service}`, (client) =>
      runScript(client, unregisterScript, [entry.keys.providers, entry.keys.endpoints, entry.keys.version, global.version], [entry.id, global.channel]),
    );
  }

  /** Removes a consumer entry (no change for watchers). */
  removeConsumer(entry: ConsumerEntry): Promise<unknown> {
    return this.#options.connection.run(`unwatch ${entry.service}`, (client) => client.zrem(entry.keys.consumers, entry.member));
  }

  #report(client: RedisConnection["client"], entry: OwnedEntry): Promise<unknown> {
    const { global } = this.#options;
    if (entry.kind === "consumer") return runScript(client, consumerScript, [entry.keys.consumers, global.services], [entry.member, entry.service]);
    return runScript(
      client,
      heartbeatScript,
      [entry.keys.providers, entry.keys.endpoints, entry.keys.version, global.services, global.version],
      [entry.id, entry.json, entry.service, global.channel],
    );
  }

  #schedule(): void {
    if (this.#stopped || this.#entries.size === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.kick();
    }, this.#options.heartbeatMs);
    this.#timer.unref();
  }

  #after(): void {
    this.#pass = undefined;
    if (this.#stopped) return;
    if (this.#again) {
      this.#again = false;
      this.kick();
    } else {
      this.#schedule();
    }
  }

  async #passOnce(): Promise<void> {
    // All commands are written at once, in one turn of the event loop: an unregister issued later
    // reaches Redis after them, so a report can never re-list an entry just unregistered.
    const result = await this.#options.connection.runIfReady("heartbeat", (client) =>
      Promise.allSettled([...this.#entries.values()].map((entry) => this.#report(client, entry))),
    );
    if (result === undefined) return;
    const failed = result.filter((r) => r.status === "rejected");
    if (failed.length > 0) debug("redis: %d of %d reports failed: %o", failed.length, result.length, (failed[0] as PromiseRejectedResult).reason);
    const changed = result.filter((r) => r.status === "fulfilled" && r.value !== 0).length;
    if (changed > 0) debug("redis: %d entries re-listed by a heartbeat", changed);
  }
}
