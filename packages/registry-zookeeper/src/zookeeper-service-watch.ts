import { debuglog } from "node:util";
import { type Endpoint, maxEndpointBytes, parseEndpoint } from "@farcall/core/extension";
import zookeeper, { type Event, type Stat } from "node-zookeeper-client";
import type { RegistryCache, WatchDelivery } from "@farcall/core/extension";
import type { ZookeeperSession } from "./zookeeper-session.js";

const debug = debuglog("farcall:registry");

/** Options of {@link ServiceWatch}. */
export interface ServiceWatchOptions {
  readonly session: ZookeeperSession;
  readonly service: string;
  /** `<root>/<encoded service>/providers`. */
  readonly path: string;
  /** Wait after a failed read before the next one. */
  readonly retryDelayMs: number;
  readonly delivery: WatchDelivery;
  /** The consumer's cache file of last good lists; none when undefined. */
  readonly cache?: RegistryCache | undefined;
  /** How long the first read may take before the cached list is delivered instead. */
  readonly cacheGraceMs: number;
}

/** Most provider nodes read per service; the rest are ignored (a hostile or broken tree). */
const maxChildren = 10_000;

function isNoNode(error: unknown): boolean {
  return error instanceof zookeeper.Exception && error.code === zookeeper.Exception.NO_NODE;
}

/** Untrusted node data to an endpoint of `service`, or `undefined` for anything else. */
function decode(data: Buffer | undefined, service: string): Endpoint | undefined {
  if (data === undefined || data.length === 0 || data.length > maxEndpointBytes) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(data.toString("utf8"));
  } catch {
    return undefined;
  }
  const endpoint = parseEndpoint(value);
  return endpoint?.service === service ? endpoint : undefined;
}

/**
 * One `watch` of a ZooKeeper registry. Reads the provider nodes of one service with a child watch
 * (or, while the providers node does not exist yet, an existence watch), re-armed by every read;
 * every notification and every reconnection triggers a full re-read, one at a time (ZooKeeper
 * watches are one-shot and coalesce bursts, so events are never counted). Provider nodes are
 * never modified, so each child's data is read once and cached until the child disappears. A
 * failed read keeps the last list and retries after `retryDelayMs` (one unref'd timer).
 *
 * The first delivery: ZooKeeper's list when it answers within `cacheGraceMs`; otherwise the cached
 * list (when there is one; ZooKeeper's list follows as soon as it answers); and when the first read
 * fails with no cached list, an empty list. Every non-empty list read from ZooKeeper is saved to
 * the cache.
 */
export class ServiceWatch {
  readonly #options: ServiceWatchOptions;
  /** child name → its endpoint, or `undefined` for junk data (not read again). */
  readonly #cache = new Map<string, Endpoint | undefined>();
  readonly #notify = (event: Event): void => {
    debug("zookeeper: %s: %s", this.#options.path, event.getName());
    this.kick();
  };
  #read: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #delivered = false;
  #timer: NodeJS.Timeout | undefined;
  #graceTimer: NodeJS.Timeout | undefined;
  /** The cached list once loaded (undefined while loading, or when there is none). */
  #cached: readonly Endpoint[] | undefined;
  #graceOver = false;

  constructor(options: ServiceWatchOptions) {
    this.#options = options;
    const { cache, service, cacheGraceMs } = options;
    if (cache === undefined) return;
    this.#graceTimer = setTimeout(() => {
      this.#graceTimer = undefined;
      this.#graceOver = true;
      this.#deliverCached();
    }, cacheGraceMs);
    this.#graceTimer.unref();
    void cache.load(service).then((endpoints) => {
      this.#cached = endpoints;
      if (this.#graceOver) this.#deliverCached();
    });
  }

  #deliverCached(): void {
    const cached = this.#cached;
    if (this.#stopped || this.#delivered || cached === undefined || cached.length === 0) return;
    debug("zookeeper: %s: no answer from ZooKeeper yet; delivering %d cached providers", this.#options.path, cached.length);
    this.#delivered = true;
    this.#options.delivery.deliver(cached);
  }

  /** Reads now, or once more after the read in progress. */
  kick(): void {
    if (this.#stopped) return;
    if (this.#read !== undefined) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#read = this.#readOnce().then(
      () => this.#after(false),
      (error: unknown) => {
        debug("zookeeper: reading %s failed: %o", this.#options.path, error);
        if (!this.#stopped && !this.#delivered) {
          this.#delivered = true;
          this.#clearGrace();
          const cached = this.#cached ?? [];
          if (cached.length > 0) debug("zookeeper: %s: delivering %d cached providers", this.#options.path, cached.length);
          this.#options.delivery.deliver(cached);
        }
        this.#after(true);
      },
    );
  }

  /** No delivery and no read after this; resolves when the read in progress ends. Idempotent. */
  stop(): Promise<void> {
    this.#stopped = true;
    this.#options.delivery.stop();
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#clearGrace();
    return this.#read ?? Promise.resolve();
  }

  #clearGrace(): void {
    clearTimeout(this.#graceTimer);
    this.#graceTimer = undefined;
  }

  #after(failed: boolean): void {
    this.#read = undefined;
    if (this.#stopped) return;
    if (this.#again) {
      this.#again = false;
      this.kick();
    } else if (failed) {
      this.#timer = setTimeout(() => this.kick(), this.#options.retryDelayMs);
      this.#timer.unref();
    }
  }

  async #readOnce(): Promise<void> {
    const { session, path, delivery } = this.#options;
    let children: string[];
    try {
      children = await session.run<string[]>(`list ${path}`, (client, done) =>
        client.getChildren(path, this.#notify, (error, names) => done(error, names)),
      );
    } catch (error) {
      if (!isNoNode(error)) throw error;
      // No provider yet: watch for the providers node to appear. If it appeared meanwhile,
      // exists() says so and the next read lists it.
      const stat = await session.run<Stat | null>(`exists ${path}`, (client, done) =>
        client.exists(path, this.#notify, (e, s) => done(e, s ?? null)),
      );
      if (stat !== null) this.#again = true;
      children = [];
    }
    if (children.length > maxChildren) {
      debug("zookeeper: %s: %d children; reading the first %d", path, children.length, maxChildren);
      children = children.slice(0, maxChildren);
    }
    const live = new Set(children);
    for (const name of this.#cache.keys()) if (!live.has(name)) this.#cache.delete(name);
    const unread = children.filter((name) => !this.#cache.has(name));
    await Promise.all(unread.map((name) => this.#readChild(name)));
    if (this.#stopped) return;
    const byId = new Map<string, Endpoint>();
    for (const name of [...children].sort()) {
      const endpoint = this.#cache.get(name);
      // Two nodes with one id (the same endpoint registered twice): list it once.
      if (endpoint !== undefined && !byId.has(endpoint.id)) byId.set(endpoint.id, endpoint);
    }
    const endpoints = [...byId.values()];
    this.#delivered = true;
    this.#clearGrace();
    delivery.deliver(endpoints);
    if (endpoints.length > 0) this.#options.cache?.save(this.#options.service, endpoints);
  }

  async #readChild(name: string): Promise<void> {
    const { session, path, service } = this.#options;
    const child = `${path}/${name}`;
    try {
      const data = await session.run<Buffer | undefined>(`read ${child}`, (client, done) =>
        client.getData(child, (error, bytes) => done(error, bytes ?? undefined)),
      );
      const endpoint = decode(data, service);
      if (endpoint === undefined) debug("zookeeper: %s: not an endpoint of %s; ignored", child, service);
      this.#cache.set(name, endpoint);
    } catch (error) {
      // Gone between the listing and the read: its deletion re-triggers the child watch.
      if (!isNoNode(error)) throw error;
    }
  }
}
