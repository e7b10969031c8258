import type { Endpoint } from "../registry/endpoint.js";
import { endpointMatches } from "../registry/endpoint-matches.js";
import type { Registry, Unwatch } from "../registry/registry.js";

/** Options of {@link Directory}. */
export interface DirectoryOptions {
  readonly registry: Registry;
  readonly service: string;
  readonly version: string;
  readonly group: string;
  /** Whether an endpoint can take calls now (its connection is not closing or backing off). */
  readonly usable: (endpoint: Endpoint, now: number) => boolean;
}

const empty: readonly Endpoint[] = Object.freeze([]);
/** How often, in ms, a snapshot that excluded endpoints is recomputed even without a change event. */
const recheckMs = 200;

/**
 * The providers of one service as the consumer sees them: the registry's list filtered by version
 * and group (`*` in an endpoint matches anything), minus endpoints that cannot take calls now. The
 * snapshot is an immutable array rebuilt only on change, so `current()` is cheap on the hot path.
 */
export class Directory {
  readonly #options: DirectoryOptions;
  readonly #unwatch: Unwatch;
  #all: readonly Endpoint[] = empty;
  #usable: readonly Endpoint[] = empty;
  #dirty = true;
  #recheckAt = 0;
  #received = false;
  #waiters: Array<() => void> = [];

  constructor(options: DirectoryOptions) {
    this.#options = options;
    this.#unwatch = options.registry.watch(options.service, (endpoints) => this.#onChange(endpoints));
  }

  /** True once the registry delivered its first list. */
  get received(): boolean {
    return this.#received;
  }

  /** Every matching endpoint the registry reports, usable or not. */
  all(): readonly Endpoint[] {
    return this.#all;
  }

  /** The matching endpoints that can take calls at `now`. */
  current(now: number): readonly Endpoint[] {
    if (this.#dirty || (this.#recheckAt !== 0 && now >= this.#recheckAt)) this.#rebuild(now);
    return this.#usable;
  }

  /** Marks the snapshot stale (a connection's state changed). */
  invalidate(): void {
    this.#dirty = true;
  }

  /** Resolves after the first registry delivery or after `timeoutMs`, whichever is first. */
  whenReceived(timeoutMs: number): Promise<void> {
    if (this.#received) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      timer.unref();
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#waiters.push(done);
    });
  }

  close(): void {
    this.#unwatch();
    for (const waiter of this.#waiters) waiter();
    this.#waiters = [];
  }

  #onChange(endpoints: readonly Endpoint[]): void {
    const { version, group } = this.#options;
    this.#all = Object.freeze(endpoints.filter((e) => endpointMatches(e, version, group)));
    this.#dirty = true;
    if (!this.#received) {
      this.#received = true;
      for (const waiter of this.#waiters) waiter();
      this.#waiters = [];
    }
  }

  #rebuild(now: number): void {
    this.#dirty = false;
    const usable = this.#all.filter((e) => this.#options.usable(e, now));
    this.#recheckAt = usable.length < this.#all.length ? now + recheckMs : 0;
    this.#usable = usable.length === this.#all.length ? this.#all : Object.freeze(usable);
  }
}
