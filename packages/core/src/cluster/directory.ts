import type { Endpoint } from "../registry/endpoint.js";
import { endpointMatches } from "../registry/endpoint-matches.js";
import type { Registry, Unwatch } from "../registry/registry.js";

/** Options of {@link Directory}. */
export interface DirectoryOptions {
  readonly registry: Registry;
  readonly service: string;
  readonly version: string;
  readonly group: string;
  /** The watching application's name, passed to `registry.watch` for registries that list consumers. */
  readonly application?: string;
  /** Whether an endpoint can take calls now (its connection is not closing or backing off). */
  readonly usable: (endpoint: Endpoint, now: number) => boolean;
  /**
   * Empty-push protection: a registry delivery that would empty a non-empty list keeps the
   * providers that are `connected` instead (see {@link Directory}).
   */
  readonly emptyProtection: boolean;
  /** Whether this consumer holds an open connection to the endpoint that has not received `closing`. */
  readonly connected: (endpoint: Endpoint) => boolean;
  /**
   * How long, in ms, protection must hold before it is reported with a warning. A provider that
   * shuts down gracefully unregisters a moment before its `closing` frame arrives, which would
   * otherwise warn on every orderly shutdown of the last provider. Default 1000.
   */
  readonly emptyWarningDelayMs?: number;
}

/** `process.emitWarning` code of the warning logged when empty-push protection keeps providers. */
export const emptyPushWarningCode = "FARCALL_EMPTY_PUSH";

const empty: readonly Endpoint[] = Object.freeze([]);

/**
 * Per-address changes an operator pushed (dynamic governance): a new weight, or the provider taken
 * out of rotation. Keyed by `host:port`.
 */
export type ProviderOverrides = ReadonlyMap<string, { readonly weight?: number; readonly disabled?: boolean }>;

const noOverrides: ProviderOverrides = new Map();
/** How often, in ms, a snapshot that excluded endpoints is recomputed even without a change event. */
const recheckMs = 200;

/**
 * The providers of one service as the consumer sees them: the registry's list filtered by version
 * and group (`*` in an endpoint matches anything), minus endpoints that cannot take calls now. The
 * snapshot is an immutable array rebuilt only on change, so `current()` is cheap on the hot path.
 *
 * Empty-push protection (`emptyProtection`): when a delivery would empty a non-empty list, the
 * providers this consumer is `connected` to are kept (one warning per episode), since a registry
 * that lost its data or its session looks the same as every provider leaving. While protected,
 * each rebuild drops for good the kept providers that are no longer `connected` (they sent
 * `closing` or their connection dropped); the next non-empty delivery ends the protection.
 * See docs/adr/0009-empty-push-protection.md.
 */
export class Directory {
  readonly #options: DirectoryOptions;
  readonly #unwatch: Unwatch;
  #all: readonly Endpoint[] = empty;
  #usable: readonly Endpoint[] = empty;
  #dirty = true;
  #recheckAt = 0;
  #received = false;
  /** `#all` holds providers kept through an empty delivery. */
  #protected = false;
  /** Reports the protection episode in progress once it has held `emptyWarningDelayMs`. */
  #warnTimer: NodeJS.Timeout | undefined;
  #waiters: Array<() => void> = [];
  #overrides: ProviderOverrides = noOverrides;
  /** `#all` with the overrides applied (disabled ones removed, weights replaced). */
  #governed: readonly Endpoint[] = empty;
  readonly #reweightedCache = new WeakMap<Endpoint, Endpoint>();

  constructor(options: DirectoryOptions) {
    this.#options = options;
    const watchOptions = options.application === undefined ? {} : { application: options.application };
    this.#unwatch = options.registry.watch(options.service, (endpoints) => this.#onChange(endpoints), watchOptions);
  }

  /** True once the registry delivered its first list. */
  get received(): boolean {
    return this.#received;
  }

  /** Every matching endpoint the registry reports (or that protection keeps), usable or not. */
  all(): readonly Endpoint[] {
    if (this.#protected && this.#dirty) this.#dropDisconnected();
    return this.#all;
  }

  /** The matching endpoints that can take calls at `now`. */
  current(now: number): readonly Endpoint[] {
    if (this.#dirty || (this.#recheckAt !== 0 && now >= this.#recheckAt)) this.#rebuild(now);
    return this.#usable;
  }

  /**
   * Applies operator overrides from now on: disabled addresses leave the snapshot, overridden
   * weights replace the registered ones (warm-up still applies to the new weight).
   */
  setOverrides(overrides: ProviderOverrides): void {
    this.#overrides = overrides.size === 0 ? noOverrides : overrides;
    this.#dirty = true;
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
    clearTimeout(this.#warnTimer);
    this.#warnTimer = undefined;
    this.#unwatch();
    for (const waiter of this.#waiters) waiter();
    this.#waiters = [];
  }

  #onChange(endpoints: readonly Endpoint[]): void {
    const { version, group } = this.#options;
    const matching = endpoints.filter((e) => endpointMatches(e, version, group));
    if (matching.length === 0 && this.#all.length > 0 && this.#options.emptyProtection) {
      this.#keepConnected();
    } else {
      this.#protected = false;
      this.#all = matching.length === 0 ? empty : Object.freeze(matching);
    }
    this.#dirty = true;
    if (!this.#received) {
      this.#received = true;
      for (const waiter of this.#waiters) waiter();
      this.#waiters = [];
    }
  }

  /** An empty delivery while the list is not empty: keep the connected providers, warn once per episode. */
  #keepConnected(): void {
    const kept = this.#all.filter((e) => this.#options.connected(e));
    if (kept.length === 0) {
      this.#protected = false;
      this.#all = empty;
      return;
    }
    if (!this.#protected) {
      clearTimeout(this.#warnTimer);
      this.#warnTimer = setTimeout(() => this.#warn(), this.#options.emptyWarningDelayMs ?? 1000);
      this.#warnTimer.unref();
    }
    this.#protected = true;
    this.#all = kept.length === this.#all.length ? this.#all : Object.freeze(kept);
  }

  /** The episode held: say so once, unless every kept provider has left meanwhile. */
  #warn(): void {
    this.#warnTimer = undefined;
    if (this.#protected) this.#dropDisconnected();
    const kept = this.#all.length;
    if (!this.#protected || kept === 0) return;
    const { service, version, group } = this.#options;
    const name = `${service}:${version}${group === "" ? "" : ` (group ${group})`}`;
    const single = kept === 1;
    process.emitWarning(
      `farcall: the registry reports no provider of ${name}; keeping the ${kept} connected provider${single ? "" : "s"} ` +
        `until ${single ? "it sends closing or its connection drops" : "they send closing or their connections drop"} (empty-push protection)`,
      { code: emptyPushWarningCode },
    );
  }

  /** While protected: kept providers that sent `closing` or lost their connection leave for good. */
  #dropDisconnected(): void {
    const still = this.#all.filter((e) => this.#options.connected(e));
    if (still.length === this.#all.length) return;
    this.#all = still.length === 0 ? empty : Object.freeze(still);
    if (still.length === 0) this.#protected = false;
  }

  #rebuild(now: number): void {
    this.#dirty = false;
    if (this.#protected) this.#dropDisconnected();
    const all = this.#applyOverrides();
    const usable = all.filter((e) => this.#options.usable(e, now));
    this.#recheckAt = usable.length < all.length ? now + recheckMs : 0;
    this.#usable = usable.length === all.length ? all : Object.freeze(usable);
  }

  /** `e` with weight `weight`: the same record as last time for the same pair, so snapshots keep their identity. */
  #reweighted(e: Endpoint, weight: number): Endpoint {
    const last = this.#reweightedCache.get(e);
    if (last !== undefined && last.weight === weight) return last;
    const next = Object.freeze({ ...e, weight });
    this.#reweightedCache.set(e, next);
    return next;
  }

  /** `#all` under the overrides, rebuilt only when either changed (same identity otherwise). */
  #applyOverrides(): readonly Endpoint[] {
    const overrides = this.#overrides;
    if (overrides.size === 0) return this.#all;
    const out: Endpoint[] = [];
    for (const e of this.#all) {
      const o = overrides.get(`${e.host}:${e.port}`);
      if (o === undefined) out.push(e);
      else if (o.disabled !== true) out.push(o.weight === undefined || o.weight === e.weight ? e : this.#reweighted(e, o.weight));
    }
    const prev = this.#governed;
    if (prev.length === out.length && out.every((e, i) => e === prev[i])) return prev;
    this.#governed = out.length === 0 ? empty : Object.freeze(out);
    return this.#governed;
  }
}
