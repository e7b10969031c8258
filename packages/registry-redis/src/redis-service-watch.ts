import { debuglog } from "node:util";
import { type Endpoint, maxEndpointBytes, parseEndpoint, type RegistryCache, type WatchDelivery } from "@farcall/core/extension";

const debug = debuglog("farcall:registry");

/** Options of {@link ServiceWatch}. */
export interface ServiceWatchOptions {
  readonly service: string;
  readonly delivery: WatchDelivery;
  /** The consumer's cache file of last good lists; none when undefined. */
  readonly cache?: RegistryCache | undefined;
  /** How long the first read may take before the cached list is delivered instead. */
  readonly cacheGraceMs: number;
}

/**
 * Untrusted hash values to endpoints of `service`: each over `maxEndpointBytes`, not JSON, not an
 * endpoint (`parseEndpoint`) or naming another service is ignored, as is a repeated id.
 */
export function decodeEndpoints(values: readonly unknown[], service: string): Endpoint[] {
  const byId = new Map<string, Endpoint>();
  for (const value of values) {
    if (typeof value !== "string" || value.length === 0 || Buffer.byteLength(value) > maxEndpointBytes) continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch {
      continue;
    }
    const endpoint = parseEndpoint(parsed);
    if (endpoint === undefined || endpoint.service !== service) {
      debug("redis: an entry of %s is not one of its endpoints; ignored", service);
      continue;
    }
    if (!byId.has(endpoint.id)) byId.set(endpoint.id, endpoint);
  }
  return [...byId.values()];
}

/**
 * One `watch` of a Redis registry: the consumer side of the lists its registry reads. The first
 * delivery is Redis's list when it comes within `cacheGraceMs`; otherwise the cached list (when
 * there is one; Redis's list follows as soon as it is read); and when the first read fails with
 * no cached list, an empty list. Lists read from Redis are delivered in full through
 * `WatchDelivery` (equal lists skipped, never re-entered), exactly as the ZooKeeper registry does.
 */
export class ServiceWatch {
  readonly #options: ServiceWatchOptions;
  #stopped = false;
  #delivered = false;
  #graceTimer: NodeJS.Timeout | undefined;
  /** The cached list once loaded (undefined while loading, or when there is none). */
  #cached: readonly Endpoint[] | undefined;
  #loaded: Promise<void> = Promise.resolve();
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
    this.#loaded = cache.load(service).then((endpoints) => {
      this.#cached = endpoints;
      if (this.#graceOver) this.#deliverCached();
    });
  }

  get service(): string {
    return this.#options.service;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** A list read from Redis. */
  deliver(endpoints: readonly Endpoint[]): void {
    if (this.#stopped) return;
    this.#delivered = true;
    this.#clearGrace();
    this.#options.delivery.deliver(endpoints);
  }

  /**
   * A read failed. Before the first delivery, the cached list (once loaded) or an empty list is
   * delivered; after it, the last list stays.
   */
  async failed(): Promise<void> {
    if (this.#stopped || this.#delivered) return;
    await this.#loaded;
    if (this.#stopped || this.#delivered) return;
    this.#delivered = true;
    this.#clearGrace();
    const cached = this.#cached ?? [];
    if (cached.length > 0) debug("redis: %s: no answer from Redis; delivering %d cached providers", this.#options.service, cached.length);
    this.#options.delivery.deliver(cached);
  }

  /** No delivery after this. Idempotent. */
  stop(): void {
    this.#stopped = true;
    this.#options.delivery.stop();
    this.#clearGrace();
  }

  #deliverCached(): void {
    const cached = this.#cached;
    if (this.#stopped || this.#delivered || cached === undefined || cached.length === 0) return;
    debug("redis: %s: no answer from Redis yet; delivering %d cached providers", this.#options.service, cached.length);
    this.#delivered = true;
    this.#options.delivery.deliver(cached);
  }

  #clearGrace(): void {
    clearTimeout(this.#graceTimer);
    this.#graceTimer = undefined;
  }
}
