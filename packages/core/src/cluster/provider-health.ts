import type { AttemptObserver } from "../call/attempt-observer.js";
import type { FarcallError } from "../errors/farcall-error.js";
import { CircuitBreaker, type CircuitBreakerOptions } from "../governance/circuit-breaker.js";
import type { BreakerState } from "../governance/limiter.js";
import type { Endpoint } from "../registry/endpoint.js";
import { tickNow, tickPreciseNow } from "../timing/tick-clock.js";
import type { EndpointStats, EndpointStatsTable } from "./endpoint-stats.js";
import { OutlierDetector, type OutlierDetectionOptions, type ProviderHealth } from "./outlier-detector.js";

/**
 * Whether an attempt's error says the provider (or the way to it) is failing, for outlier
 * ejection: it could not be reached or did not answer in time (`unavailable`,
 * `deadline_exceeded`) or it broke (`internal`, `unknown`). `resource_exhausted` does not count: an
 * overloaded provider that sheds load is working as meant, and ejecting it would pile its share on
 * the others. Application errors and bad arguments are answers, not failures.
 */
export function isProviderFailure(error: FarcallError): boolean {
  switch (error.code) {
    case "unavailable":
    case "deadline_exceeded":
    case "internal":
    case "unknown":
      return true;
    default:
      return false;
  }
}

/**
 * Whether an attempt's error counts against a circuit breaker: every provider failure, and also
 * `resource_exhausted` (a breaker exists to stop calling a dependency that cannot take them).
 */
export function isBreakerFailure(error: FarcallError): boolean {
  return error.code === "resource_exhausted" || isProviderFailure(error);
}

/** One breaker per provider address, for one method of one service under one configuration. */
export class BreakerSet {
  readonly #byAddress = new Map<string, CircuitBreaker>();
  /** Breakers of the set that are open or half-open. */
  #notClosed = 0;
  readonly #onStateChange: ((address: string, from: BreakerState, to: BreakerState, now: number) => void) | undefined;

  constructor(
    readonly method: string,
    readonly options: CircuitBreakerOptions,
    onStateChange?: (address: string, from: BreakerState, to: BreakerState, now: number) => void,
  ) {
    this.#onStateChange = onStateChange;
  }

  /** The breaker of `address`, created closed on first use. */
  of(address: string): CircuitBreaker {
    let breaker = this.#byAddress.get(address);
    if (breaker === undefined) {
      const listener = this.#onStateChange;
      breaker = new CircuitBreaker(this.options, (from, to, now) => {
        // Only closed ↔ not closed matters to the count; open → halfOpen changes nothing.
        if (from === "closed") this.#notClosed++;
        else if (to === "closed") this.#notClosed--;
        listener?.(address, from, to, now);
      });
      this.#byAddress.set(address, breaker);
    }
    return breaker;
  }

  /** The breaker of `address` if one exists. */
  peek(address: string): CircuitBreaker | undefined {
    return this.#byAddress.get(address);
  }

  /** Whether any breaker of the set is open or half-open: O(1), a count kept by the transitions (pre-check before filtering). */
  anyNotClosed(): boolean {
    return this.#notClosed > 0;
  }

  /** Forgets the breakers of addresses not in `keep`. */
  retain(keep: ReadonlySet<string>, now: number): void {
    for (const [address, breaker] of this.#byAddress) {
      if (keep.has(address)) continue;
      if (breaker.state(now) !== "closed") this.#notClosed--;
      this.#byAddress.delete(address);
    }
  }

  entries(): IterableIterator<[string, CircuitBreaker]> {
    return this.#byAddress.entries();
  }
}

/** Options of {@link ServiceHealth}. */
export interface ServiceHealthOptions {
  /** Outlier ejection; undefined disables it. */
  readonly outlierDetection: Required<OutlierDetectionOptions> | undefined;
  /** How many providers the service has now (the ejection cap is a share of them). */
  readonly hosts: () => number;
  /** Told of every ejection change and breaker transition (for warnings and the snapshot). */
  readonly onEvent?: (event: HealthEvent) => void;
}

/** A change of a provider's health, as {@link ServiceHealthOptions.onEvent} reports it. */
export type HealthEvent =
  | { readonly kind: "ejection"; readonly address: string; readonly health: ProviderHealth; readonly at: number }
  | { readonly kind: "breaker"; readonly address: string; readonly method: string; readonly from: BreakerState; readonly to: BreakerState; readonly at: number };

/**
 * The health of one service's providers as this consumer sees them: outlier ejection (shared by
 * every method) and circuit breakers (per method and provider), fed by the outcome of every
 * attempt through {@link MethodHealth.observer}.
 */
export class ServiceHealth {
  readonly outliers: OutlierDetector | undefined;
  readonly #hosts: () => number;
  readonly #breakerSets = new Map<string, BreakerSet>();
  readonly #onEvent: ((event: HealthEvent) => void) | undefined;

  constructor(options: ServiceHealthOptions) {
    this.#hosts = options.hosts;
    this.#onEvent = options.onEvent;
    const onEvent = options.onEvent;
    this.outliers =
      options.outlierDetection === undefined
        ? undefined
        : new OutlierDetector(options.outlierDetection, onEvent === undefined ? undefined : (address, health, at) => onEvent({ kind: "ejection", address, health, at }));
  }

  /** The number of providers the service has now, as a function (read only when needed). */
  get hostCount(): () => number {
    return this.#hosts;
  }

  /** The breakers of `method` under `options`: one set per distinct configuration. */
  breakers(method: string, options: CircuitBreakerOptions): BreakerSet {
    const key = `${method}\u0000${JSON.stringify(options)}`;
    let set = this.#breakerSets.get(key);
    if (set === undefined) {
      const onEvent = this.#onEvent;
      set = new BreakerSet(method, options, onEvent === undefined ? undefined : (address, from, to, at) => onEvent({ kind: "breaker", address, method, from, to, at }));
      this.#breakerSets.set(key, set);
    }
    return set;
  }

  breakerSets(): IterableIterator<BreakerSet> {
    return this.#breakerSets.values();
  }

  /** Periodic upkeep: the outlier sweep, and forgetting breakers of providers that left. */
  sweep(now: number, addresses: readonly string[]): void {
    this.outliers?.sweep(now, addresses);
    if (this.#breakerSets.size > 0) {
      const keep = new Set(addresses);
      for (const set of this.#breakerSets.values()) set.retain(keep, now);
    }
  }
}

/**
 * What one method of one client needs from the service's health on each attempt: which providers
 * to leave out, whether the picked one's breaker admits the attempt, and the observer that reports
 * the attempt's outcome.
 */
export class MethodHealth {
  readonly #health: ServiceHealth;
  readonly #breakers: BreakerSet | undefined;
  readonly #stats: EndpointStatsTable | undefined;
  #observers = new WeakMap<Endpoint, AttemptRecorder>();

  constructor(health: ServiceHealth, breakers: BreakerSet | undefined, stats: EndpointStatsTable | undefined) {
    this.#health = health;
    this.#breakers = breakers;
    this.#stats = stats;
  }

  /** True when this method has circuit breakers. */
  get hasBreakers(): boolean {
    return this.#breakers !== undefined;
  }

  /**
   * `endpoints` without the ejected providers and those whose breaker for this method is open at
   * `now`; the same array when none is left out. When every provider would be left out, the
   * ejected ones come back (Envoy's panic threshold: some traffic beats none), the open breakers
   * do not (the caller then rejects the call with `circuit_open`).
   */
  filter(endpoints: readonly Endpoint[], now: number): readonly Endpoint[] {
    const outliers = this.#health.outliers;
    const ejecting = outliers !== undefined && outliers.ejectedCount(now) > 0;
    const breakers = this.#breakers;
    const breaking = breakers !== undefined && breakers.anyNotClosed();
    if (!ejecting && !breaking) return endpoints;
    let out = endpoints;
    if (breaking) {
      const kept = endpoints.filter((e) => breakers.peek(`${e.host}:${e.port}`)?.state(now) !== "open");
      if (kept.length !== endpoints.length) out = kept;
    }
    if (ejecting && out.length > 0) {
      const kept = out.filter((e) => !outliers.isEjected(`${e.host}:${e.port}`, now));
      if (kept.length > 0 && kept.length !== out.length) out = kept;
    }
    return out;
  }

  /** Whether `endpoint`'s breaker admits an attempt now (a half-open breaker admits its probes only). */
  admit(endpoint: Endpoint, now: number): boolean {
    const breaker = this.observer(endpoint).breaker;
    return breaker === undefined || breaker.tryAcquire(now);
  }

  /** The observer of an attempt on `endpoint` (cached per endpoint record: no address string per attempt). */
  observer(endpoint: Endpoint): AttemptRecorder {
    let observer = this.#observers.get(endpoint);
    if (observer === undefined) {
      const address = `${endpoint.host}:${endpoint.port}`;
      observer = new AttemptRecorder(address, this.#health, this.#breakers?.of(address), this.#stats?.get(endpoint));
      this.#observers.set(endpoint, observer);
    }
    return observer;
  }

  /** Drops cached observers (a breaker set or stats table forgot addresses). */
  reset(): void {
    this.#observers = new WeakMap();
  }
}

/** Feeds one attempt's outcome to the call statistics, the outlier detector and the breaker. */
export class AttemptRecorder implements AttemptObserver {
  constructor(
    readonly address: string,
    readonly health: ServiceHealth,
    readonly breaker: CircuitBreaker | undefined,
    readonly stats: EndpointStats | undefined,
  ) {}

  started(): number {
    if (this.stats !== undefined) return this.stats.started();
    return this.breaker === undefined ? 0 : tickPreciseNow();
  }

  resumed(): number {
    if (this.stats !== undefined) return this.stats.resumed();
    return this.breaker === undefined ? 0 : tickPreciseNow();
  }

  settled(startedAt: number, error: FarcallError | undefined): void {
    this.stats?.settled(startedAt, error);
    const now = tickNow();
    const outliers = this.health.outliers;
    if (outliers !== undefined && error?.code !== "canceled") {
      outliers.record(this.address, now, error !== undefined && isProviderFailure(error), this.health.hostCount);
    }
    const breaker = this.breaker;
    if (breaker === undefined) return;
    const latencyMs = tickPreciseNow() - startedAt;
    if (error === undefined) breaker.onSuccess(now, latencyMs);
    else if (error.code === "canceled") breaker.onIgnored(now);
    else if (isBreakerFailure(error)) breaker.onError(now, latencyMs);
    else breaker.onSuccess(now, latencyMs);
  }
}
