import { debuglog } from "node:util";
import { type Endpoint, maxEndpointBytes, parseEndpoint } from "@farcall/core/extension";
import type { RegistryCache, WatchDelivery } from "@farcall/core/extension";
import { type Etcd3, type IKeyValue, type IWatchResponse, type Watcher } from "etcd3";
import { cancelWatcher } from "./etcd-watchers.js";
import { readPrefix } from "./etcd-read.js";

const debug = debuglog("farcall:registry");

/** Options of {@link ServiceWatch}; durations in milliseconds. */
export interface ServiceWatchOptions {
  readonly client: Etcd3;
  readonly service: string;
  /** `<prefix>/<encoded service>/providers/`. */
  readonly prefix: string;
  /** First wait after a failed read; doubles up to `maxRetryDelayMs`. */
  readonly retryDelayMs: number;
  readonly maxRetryDelayMs: number;
  /** Bound of the watch cancellation in {@link ServiceWatch.stop}. */
  readonly closeTimeoutMs: number;
  readonly delivery: WatchDelivery;
  /** The consumer's cache file of last good lists; none when undefined. */
  readonly cache?: RegistryCache | undefined;
  /** How long the first read may take before the cached list is delivered instead. */
  readonly cacheGraceMs: number;
}

/** Most provider keys read per service; the rest are ignored (a hostile or broken prefix). */
export const maxProviderKeys = 10_000;

/** Untrusted value to an endpoint of `service`, or `undefined` for anything else. */
function decode(value: Buffer, service: string): Endpoint | undefined {
  if (value.length === 0 || value.length > maxEndpointBytes) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.toString("utf8"));
  } catch {
    return undefined;
  }
  const endpoint = parseEndpoint(parsed);
  return endpoint?.service === service ? endpoint : undefined;
}

/**
 * One `watch` of an etcd registry. Reads every key under the service's `providers/` prefix at
 * one revision (paged), then watches the prefix from the next revision, so no change falls
 * between the two. etcd delivers every change in order; each response is applied to the list
 * and the list delivered, one at a time.
 *
 * Disconnects: etcd3 re-opens the watch stream on its own (100 ms doubling to 1 s) and resumes
 * from a revision. etcd3 sets that revision from the header of the watch's `created` answer,
 * which can skip the changes etcd had not sent yet; this class sets it back to the revision it
 * has applied, so a watch resumed at any moment replays exactly what it missed. When etcd
 * cancels the watch (that revision was compacted, or permission was withdrawn), or answers from
 * a revision behind the one applied (a cluster rebuilt empty), the prefix is read again in full
 * and a new watch started: never a lost update.
 *
 * Data is untrusted: values over `maxEndpointBytes`, not JSON, not an endpoint
 * (`parseEndpoint`) or of another service are ignored; at most {@link maxProviderKeys} keys are
 * held. The first delivery: etcd's list when it answers within `cacheGraceMs`; otherwise the
 * cached list (when there is one; etcd's list follows as soon as it answers); and when the first
 * read fails with no cached list, an empty list. Every non-empty list is saved to the cache.
 */
export class ServiceWatch {
  readonly #options: ServiceWatchOptions;
  /** key → its endpoint, or `undefined` for junk (kept, so a later delete is recognised). */
  #entries = new Map<string, Endpoint | undefined>();
  /** The revision the entries reflect: every change up to it has been applied. */
  #revision = 0;
  #watcher: Watcher | undefined;
  #read: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #delivered = false;
  #failures = 0;
  /** Watches cancelled by etcd in a row; the first is read again at once, later ones after a delay. */
  #cancellations = 0;
  #timer: NodeJS.Timeout | undefined;
  #graceTimer: NodeJS.Timeout | undefined;
  /** The cached list once loaded (undefined while loading, or when there is none). */
  #cached: readonly Endpoint[] | undefined;
  #graceOver = false;
  /** Settles once the cache file has been read (at once without a cache). */
  #cacheLoaded: Promise<void> = Promise.resolve();
  readonly #cancelling = new Set<Promise<void>>();

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
    this.#cacheLoaded = cache.load(service).then((endpoints) => {
      this.#cached = endpoints;
      if (this.#graceOver) this.#deliverCached();
    });
  }

  /** Reads the whole prefix and (re)starts the watch now, or once more after the read in progress. */
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
        debug("etcd: reading %s failed: %s", this.#options.prefix, error instanceof Error ? error.message : String(error));
        // An unreachable etcd fails at once, usually before the cache file is read: wait for it.
        void this.#cacheLoaded.then(() => {
          if (this.#stopped || this.#delivered) return;
          this.#delivered = true;
          this.#clearGrace();
          const cached = this.#cached ?? [];
          if (cached.length > 0) debug("etcd: %s: delivering %d cached providers", this.#options.prefix, cached.length);
          this.#options.delivery.deliver(cached);
        });
        this.#after(true);
      },
    );
  }

  /** No delivery and no read after this; cancels the watch. Resolves when all is released. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#options.delivery.stop();
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#clearGrace();
    this.#dropWatcher();
    await this.#read;
    await Promise.all([...this.#cancelling]);
  }

  #deliverCached(): void {
    const cached = this.#cached;
    if (this.#stopped || this.#delivered || cached === undefined || cached.length === 0) return;
    debug("etcd: %s: no answer from etcd yet; delivering %d cached providers", this.#options.prefix, cached.length);
    this.#delivered = true;
    this.#options.delivery.deliver(cached);
  }

  #clearGrace(): void {
    clearTimeout(this.#graceTimer);
    this.#graceTimer = undefined;
  }

  #after(failed: boolean): void {
    this.#read = undefined;
    if (this.#stopped) return;
    this.#failures = failed ? this.#failures + 1 : 0;
    if (this.#again && !failed) {
      this.#again = false;
      this.kick();
    } else if (failed) {
      this.#again = false;
      this.#retryLater();
    }
  }

  /** Arms the one retry timer: `retryDelayMs` doubling to `maxRetryDelayMs` with each failure. */
  #retryLater(): void {
    if (this.#stopped || this.#timer !== undefined) return;
    const { retryDelayMs, maxRetryDelayMs } = this.#options;
    const delay = Math.min(retryDelayMs * 2 ** Math.max(0, this.#failures - 1), maxRetryDelayMs);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.kick();
    }, delay);
    this.#timer.unref();
  }

  async #readOnce(): Promise<void> {
    const { client, prefix } = this.#options;
    const { kvs, revision } = await readPrefix(client, prefix, maxProviderKeys);
    if (this.#stopped) return;
    const entries = new Map<string, Endpoint | undefined>();
    for (const kv of kvs) entries.set(kv.key.toString("utf8"), this.#decode(kv));
    this.#entries = entries;
    this.#revision = revision;
    this.#deliver();
    this.#dropWatcher();
    this.#watch(revision + 1);
  }

  #decode(kv: IKeyValue): Endpoint | undefined {
    const endpoint = decode(kv.value, this.#options.service);
    if (endpoint === undefined) debug("etcd: %s: not an endpoint of %s; ignored", kv.key.toString("utf8").slice(0, 300), this.#options.service);
    return endpoint;
  }

  #deliver(): void {
    if (this.#stopped) return;
    const byId = new Map<string, Endpoint>();
    for (const key of [...this.#entries.keys()].sort()) {
      const endpoint = this.#entries.get(key);
      // Two keys with one id (the same endpoint registered twice): list it once.
      if (endpoint !== undefined && !byId.has(endpoint.id)) byId.set(endpoint.id, endpoint);
    }
    const endpoints = [...byId.values()];
    this.#delivered = true;
    this.#clearGrace();
    this.#options.delivery.deliver(endpoints);
    if (endpoints.length > 0) this.#options.cache?.save(this.#options.service, endpoints);
  }

  #watch(startRevision: number): void {
    const { client, prefix } = this.#options;
    const watcher = client.watch().prefix(prefix).startRevision(String(startRevision)).watcher();
    this.#watcher = watcher;
    // These run after etcd3's own listeners (added by the constructor), which set the resume
    // revision from each answer's header: for `connected` that header may be ahead of what was
    // delivered, so the revision this watch has applied is put back.
    const resumeFrom = (): void => {
      watcher.request.start_revision = this.#revision + 1;
    };
    watcher.on("connected", (response: IWatchResponse) => {
      resumeFrom();
      if (this.#watcher !== watcher || Number(response.header.revision) >= this.#revision) return;
      // etcd's revision went back: a cluster rebuilt from nothing (or another one at this
      // address). This watch waits for a revision that may come much later: read everything.
      debug("etcd: %s: etcd is at revision %s, behind %d; reading it again", prefix, response.header.revision, this.#revision);
      this.#dropWatcher();
      this.kick();
    });
    watcher.on("data", (response: IWatchResponse) => {
      if (this.#watcher !== watcher) return;
      this.#apply(response);
      resumeFrom();
    });
    watcher.on("disconnected", (error: Error) => debug("etcd: watch of %s disconnected: %s", prefix, error.message));
    watcher.on("error", (error: Error) => {
      if (this.#watcher !== watcher) return;
      // etcd cancelled the watch: its revision was compacted, or it may no longer read the prefix.
      debug("etcd: watch of %s cancelled by etcd (%s); reading it again", prefix, error.message);
      this.#watcher = undefined;
      if (this.#cancellations++ === 0) this.kick();
      else {
        this.#failures++;
        this.#retryLater();
      }
    });
  }

  #apply(response: IWatchResponse): void {
    for (const event of response.events) {
      const key = event.kv.key.toString("utf8");
      if (event.type === "Delete") this.#entries.delete(key);
      else if (this.#entries.has(key) || this.#entries.size < maxProviderKeys) this.#entries.set(key, this.#decode(event.kv));
      else debug("etcd: %s: over %d keys; %s ignored", this.#options.prefix, maxProviderKeys, key.slice(0, 300));
    }
    const revision = Number(response.header.revision);
    if (revision > this.#revision) this.#revision = revision;
    if (response.events.length > 0) {
      this.#cancellations = 0;
      this.#deliver();
    }
  }

  #dropWatcher(): void {
    const watcher = this.#watcher;
    this.#watcher = undefined;
    if (watcher === undefined) return;
    const cancelling = cancelWatcher(watcher, this.#options.closeTimeoutMs).finally(() => this.#cancelling.delete(cancelling));
    this.#cancelling.add(cancelling);
  }
}
