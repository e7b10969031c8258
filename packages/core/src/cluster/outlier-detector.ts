import { badOption } from "../errors/farcall-error.js";

/**
 * Options of {@link OutlierDetector}: passive health checking of the providers of one service, as
 * one consumer sees them (Envoy's `outlier_detection`, gRPC's A50). Two modes eject a provider:
 * - consecutive failures: at once, on the `consecutiveFailures`-th failure in a row;
 * - failure percentage: at each sweep, a provider with at least `minRequests` results since the
 *   previous sweep and a failure fraction ≥ `failureRate`.
 *
 * An ejection lasts `baseEjectionMs × n`, capped at `maxEjectionMs`, where `n` is the ejection
 * multiplier: one more on each ejection, one less at each sweep ending an interval in which the
 * provider was never ejected.
 */
export interface OutlierDetectionOptions {
  /** Failures in a row that eject a provider; an integer ≥ 0, 0 disables this mode. Default 5. */
  readonly consecutiveFailures?: number;
  /**
   * Failure fraction over one interval that ejects a provider at the sweep, in (0, 1]; 1 ejects
   * only a provider whose every result failed. Default 0.25.
   */
  readonly failureRate?: number;
  /** Results an interval must hold before `failureRate` is applied; an integer ≥ 1. Default 20. */
  readonly minRequests?: number;
  /** Time between sweeps in ms, an integer in 1..2147483647 (a timer's range). Default 10000. */
  readonly intervalMs?: number;
  /** Length of a first ejection in ms, a finite number > 0. Default 30000. */
  readonly baseEjectionMs?: number;
  /** Longest ejection in ms, a finite number ≥ `baseEjectionMs`. Default max(300000, `baseEjectionMs`). */
  readonly maxEjectionMs?: number;
  /**
   * Most providers ejected at once, as a percentage of the providers in the snapshot, in 0..100:
   * at most max(1, floor(hosts × percent / 100)), so at least one may always be ejected. Default 10.
   */
  readonly maxEjectionPercent?: number;
}

/** {@link OutlierDetectionOptions} with every default applied, as `OutlierDetector.options` holds them. */
export type ResolvedOutlierDetectionOptions = { readonly [K in keyof OutlierDetectionOptions]-?: number };

/**
 * How outlier detection is written in configuration data (files, environment JSON): `true` (or
 * absent) for the defaults, `false` to disable it, or the options, where `enabled: false` disables
 * it too (so a file can switch it off while keeping its settings).
 */
export type OutlierDetectionSetting = boolean | (OutlierDetectionOptions & { readonly enabled?: boolean });

/**
 * The health of one provider address as an {@link OutlierDetector} sees it:
 * - `ejected`: an ejection is running (`ejectedUntil` is its end, clock ms); balancers skip it;
 * - `degraded`: not ejected, and its recent results hold failures: the last result failed
 *   (`consecutiveFailures > 0`), or the current interval holds ≥ `minRequests / 2` results of
 *   which a fraction ≥ `failureRate / 2` failed. Informational: nothing avoids a degraded provider;
 * - `healthy`: anything else, unknown addresses included.
 */
export interface ProviderHealth {
  readonly state: "healthy" | "degraded" | "ejected";
  /** Failures in a row since the last success (or since the last ejection began or ended). */
  readonly consecutiveFailures: number;
  /** End of the running ejection, clock ms; present only when `state` is `ejected`. */
  readonly ejectedUntil?: number;
  /** The ejection multiplier: ejections so far, less one per interval without ejection. */
  readonly timesEjected: number;
  /** Results recorded since the last sweep (or since the end of the last ejection). */
  readonly intervalRequests: number;
  /** Failures among `intervalRequests`. */
  readonly intervalFailures: number;
}

/**
 * Told of every change of a provider's `health(address).state`, once per change, with the new
 * health and the clock time. Called from `record` and `sweep` (the end of an ejection is reported
 * at the first of them at or after its end) and when a sweep forgets an address that was not
 * healthy (reported as healthy). Must not throw: an exception leaves `record` or `sweep`.
 */
export type OutlierChangeListener = (address: string, health: ProviderHealth, now: number) => void;

const defaults: ResolvedOutlierDetectionOptions = Object.freeze({
  consecutiveFailures: 5,
  failureRate: 0.25,
  minRequests: 20,
  intervalMs: 10_000,
  baseEjectionMs: 30_000,
  maxEjectionMs: 300_000,
  maxEjectionPercent: 10,
});

/** The defaults of {@link OutlierDetectionOptions}, frozen. */
export const defaultOutlierDetectionOptions: ResolvedOutlierDetectionOptions = defaults;

const optionNames: ReadonlySet<string> = new Set(Object.keys(defaults));

/**
 * Checks outlier detection options given as data (a {@link OutlierDetectionSetting} read from a
 * configuration file or environment JSON) and applies the defaults.
 * @param value `undefined` or `true`: the defaults; `false` or `{ enabled: false, … }`: disabled;
 *   otherwise a plain object of {@link OutlierDetectionOptions} fields (and `enabled`).
 * @param option the name errors give the value; fields are named `option.field`.
 * @returns the resolved options, frozen; `undefined` when detection is disabled (the caller then
 *   creates no {@link OutlierDetector}).
 * @throws FarcallError `invalid_argument` (`bad_option`, `details.option` e.g.
 *   `outlierDetection.failureRate`) for another type, an unknown field (a typo), or a field of the
 *   wrong type or out of its range, even when `enabled` is `false`.
 */
export function checkOutlierDetectionOptions(value: unknown, option = "outlierDetection"): ResolvedOutlierDetectionOptions | undefined {
  if (value === undefined || value === true) return defaults;
  if (value === false) return undefined;
  const resolved = resolve(value, option, true);
  return (value as { enabled?: boolean }).enabled === false ? undefined : resolved;
}

function resolve(value: unknown, option: string, allowEnabled: boolean): ResolvedOutlierDetectionOptions {
  const proto = typeof value === "object" && value !== null ? Object.getPrototypeOf(value) : undefined;
  if (proto !== Object.prototype && proto !== null) {
    badOption(option, `must be ${allowEnabled ? "true, false or " : ""}an object of outlier detection options, got ${Array.isArray(value) ? "an array" : typeof value}`);
  }
  const o = value as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (allowEnabled && key === "enabled") {
      if (typeof o["enabled"] !== "boolean") badOption(`${option}.enabled`, "must be a boolean");
    } else if (!optionNames.has(key)) {
      badOption(`${option}.${key}`, `is not an outlier detection option (known: ${[...optionNames].join(", ")})`);
    }
  }
  const number = (key: keyof ResolvedOutlierDetectionOptions, ok: (n: number) => boolean, range: string): number => {
    const v = o[key];
    if (v === undefined) return defaults[key];
    if (typeof v !== "number" || !ok(v)) badOption(`${option}.${key}`, `must be ${range}, got ${String(v)}`);
    return v;
  };
  const baseEjectionMs = number("baseEjectionMs", (n) => Number.isFinite(n) && n > 0, "a finite number > 0");
  const maxEjectionMs = o["maxEjectionMs"] === undefined ? Math.max(defaults.maxEjectionMs, baseEjectionMs) : number("maxEjectionMs", (n) => Number.isFinite(n) && n >= baseEjectionMs, `a finite number ≥ baseEjectionMs (${baseEjectionMs})`);
  return Object.freeze({
    consecutiveFailures: number("consecutiveFailures", (n) => Number.isSafeInteger(n) && n >= 0, "an integer ≥ 0"),
    failureRate: number("failureRate", (n) => n > 0 && n <= 1, "a number in (0, 1]"),
    minRequests: number("minRequests", (n) => Number.isSafeInteger(n) && n >= 1, "an integer ≥ 1"),
    intervalMs: number("intervalMs", (n) => Number.isInteger(n) && n >= 1 && n <= 2_147_483_647, "an integer in 1..2147483647"),
    baseEjectionMs,
    maxEjectionMs,
    maxEjectionPercent: number("maxEjectionPercent", (n) => n >= 0 && n <= 100, "a number in 0..100"),
  });
}

/** What the detector keeps of one address. */
class Provider {
  consecutiveFailures = 0;
  intervalRequests = 0;
  intervalFailures = 0;
  timesEjected = 0;
  /** End of the last ejection (clock ms), -Infinity before the first; ejected while `now` is below. */
  ejectedUntil = Number.NEGATIVE_INFINITY;
  /** The state last given to the listener. */
  reported: ProviderHealth["state"] = "healthy";
  constructor(readonly address: string) {}
}

const unknownHealth: ProviderHealth = Object.freeze({ state: "healthy", consecutiveFailures: 0, timesEjected: 0, intervalRequests: 0, intervalFailures: 0 });

/**
 * Outlier ejection for the providers of one service on one consumer, keyed by provider address
 * (`host:port`). The owner feeds it every attempt's result ({@link record}), calls {@link sweep}
 * every `options.intervalMs` with the addresses of the current snapshot, and skips the providers
 * for which {@link isEjected} is true when picking. Every method takes the clock time `now` in ms,
 * which must never decrease; the detector holds no timer.
 *
 * At most max(1, floor(hosts × `maxEjectionPercent` / 100)) providers are ejected at once. A
 * provider that qualifies while the cap is reached waits, and is ejected at the first `record` or
 * `sweep` at which the cap allows (if a success has not cleared it meanwhile). With a single
 * provider the cap is still 1: a picker finding every provider ejected should ignore ejections.
 *
 * Memory: one small record per address recorded since the last sweep or listed at it.
 */
export class OutlierDetector {
  /** The options in use, defaults applied and frozen; call {@link sweep} every `intervalMs`. */
  readonly options: ResolvedOutlierDetectionOptions;
  readonly #onChange: OutlierChangeListener | undefined;
  readonly #providers = new Map<string, Provider>();
  /** Providers whose ejection has not been ended yet (it may have expired: see {@link #expire}). */
  readonly #ejected = new Set<Provider>();
  /** Providers past `consecutiveFailures` waiting for the cap, oldest first. */
  readonly #waiting = new Set<Provider>();
  /** The earliest `ejectedUntil` in {@link #ejected}. */
  #nextExpiry = Number.POSITIVE_INFINITY;
  #lastSweepAt = Number.NEGATIVE_INFINITY;

  /**
   * @param options see {@link OutlierDetectionOptions}; a resolved copy is kept in {@link options}.
   * @param onChange told of every change of a provider's state; see {@link OutlierChangeListener}.
   * @throws FarcallError `invalid_argument` (`bad_option`, `details.option` = `outlierDetection.<field>`) for a bad option.
   */
  constructor(options: OutlierDetectionOptions = {}, onChange?: OutlierChangeListener) {
    this.options = resolve(options, "outlierDetection", false);
    this.#onChange = onChange;
  }

  /**
   * Records the result of one attempt on `address`. `failed` should be true when the provider or
   * the way to it failed (unreachable, connection lost, timed out, internal error; the client
   * leaves out `resource_exhausted`, see `isProviderFailure`) and
   * false when it answered, with a value or with an error it raised; the caller decides, and
   * should record nothing for a call canceled by its caller. Results arriving while the provider
   * is ejected (attempts already in flight) are counted but do not extend the ejection.
   * @param hosts the number of providers in the current snapshot, for the ejection cap; a
   *   function is asked only when a provider waits for the cap (not on the common success).
   */
  record(address: string, now: number, failed: boolean, hosts: number | (() => number)): void {
    if (now >= this.#nextExpiry) this.#expire(now, true);
    let p = this.#providers.get(address);
    if (p === undefined) {
      p = new Provider(address);
      this.#providers.set(address, p);
    }
    p.intervalRequests++;
    // The common case changes nothing: a success of a provider reported healthy, with no failure
    // this interval or in a row, while no provider waits for the ejection cap.
    if (!failed && p.consecutiveFailures === 0 && p.intervalFailures === 0 && p.reported === "healthy" && this.#waiting.size === 0) return;
    if (!failed) {
      p.consecutiveFailures = 0;
      this.#waiting.delete(p);
    } else {
      p.intervalFailures++;
      p.consecutiveFailures++;
      const limit = this.options.consecutiveFailures;
      if (limit > 0 && p.consecutiveFailures >= limit && !this.#ejected.has(p)) this.#waiting.add(p);
    }
    if (this.#waiting.size > 0) {
      const n = typeof hosts === "number" ? hosts : hosts();
      if (this.#ejected.size < this.#cap(n)) this.#ejectWaiting(now, n, true);
    }
    this.#report(p, now);
  }

  /** Whether `address` is ejected at `now`: one map lookup and one comparison. */
  isEjected(address: string, now: number): boolean {
    const p = this.#providers.get(address);
    return p !== undefined && now < p.ejectedUntil;
  }

  /** The health of `address` at `now` (healthy with zero counts for an address never recorded). */
  health(address: string, now: number): ProviderHealth {
    const p = this.#providers.get(address);
    return p === undefined ? unknownHealth : this.#healthOf(p, now);
  }

  /** The number of providers ejected at `now`; O(1) unless an ejection ended since the last `record` or `sweep`. */
  ejectedCount(now: number): number {
    if (now < this.#nextExpiry) return this.#ejected.size;
    let n = 0;
    for (const p of this.#ejected) if (now < p.ejectedUntil) n++;
    return n;
  }

  /** Addresses the detector keeps a record of. */
  get size(): number {
    return this.#providers.size;
  }

  /**
   * Ends one interval; call it every `options.intervalMs`, with the addresses of the current
   * snapshot. In order: forgets the addresses not in `addresses`; ends the expired ejections;
   * ejects the providers waiting for the cap, then (failure-percentage mode) each provider with ≥
   * `minRequests` results this interval and a failure fraction ≥ `failureRate`, highest fraction
   * first, while the cap (from `addresses.length`) allows; lowers by one the multiplier of each
   * provider not ejected at any time this interval; resets the interval counts. State changes are
   * reported after all of it, once per address.
   */
  sweep(now: number, addresses: readonly string[]): void {
    const present = new Set(addresses);
    for (const [address, p] of this.#providers) {
      if (present.has(address)) continue;
      this.#providers.delete(address);
      this.#ejected.delete(p);
      this.#waiting.delete(p);
      if (p.reported !== "healthy") this.#onChange?.(address, unknownHealth, now);
    }
    this.#expire(now, false);
    const hosts = addresses.length;
    const cap = this.#cap(hosts);
    if (this.#waiting.size > 0) this.#ejectWaiting(now, hosts, false);
    const { minRequests, failureRate } = this.options;
    if (this.#ejected.size < cap) {
      const outliers: Provider[] = [];
      for (const p of this.#providers.values()) {
        if (!this.#ejected.has(p) && p.intervalRequests >= minRequests && p.intervalFailures / p.intervalRequests >= failureRate) outliers.push(p);
      }
      outliers.sort((a, b) => b.intervalFailures / b.intervalRequests - a.intervalFailures / a.intervalRequests);
      for (const p of outliers) {
        if (this.#ejected.size >= cap) break;
        this.#eject(p, now);
      }
    }
    for (const p of this.#providers.values()) {
      if (p.timesEjected > 0 && p.ejectedUntil <= this.#lastSweepAt) p.timesEjected--;
      p.intervalRequests = 0;
      p.intervalFailures = 0;
    }
    this.#lastSweepAt = now;
    for (const p of this.#providers.values()) this.#report(p, now);
  }

  #cap(hosts: number): number {
    return Math.max(1, Math.floor((hosts * this.options.maxEjectionPercent) / 100));
  }

  #eject(p: Provider, now: number): void {
    const { baseEjectionMs, maxEjectionMs } = this.options;
    p.timesEjected++;
    p.ejectedUntil = now + Math.min(baseEjectionMs * p.timesEjected, maxEjectionMs);
    p.consecutiveFailures = 0;
    this.#waiting.delete(p);
    this.#ejected.add(p);
    if (p.ejectedUntil < this.#nextExpiry) this.#nextExpiry = p.ejectedUntil;
  }

  #ejectWaiting(now: number, hosts: number, report: boolean): void {
    const cap = this.#cap(hosts);
    for (const p of this.#waiting) {
      if (this.#ejected.size >= cap) return;
      this.#eject(p, now);
      if (report) this.#report(p, now);
    }
  }

  /** Ends the ejections that expired by `now`; the provider starts afresh (counts cleared). */
  #expire(now: number, report: boolean): void {
    let next = Number.POSITIVE_INFINITY;
    for (const p of this.#ejected) {
      if (now < p.ejectedUntil) {
        if (p.ejectedUntil < next) next = p.ejectedUntil;
        continue;
      }
      this.#ejected.delete(p);
      p.consecutiveFailures = 0;
      p.intervalRequests = 0;
      p.intervalFailures = 0;
      if (report) this.#report(p, now);
    }
    this.#nextExpiry = next;
  }

  #stateOf(p: Provider, now: number): ProviderHealth["state"] {
    if (now < p.ejectedUntil) return "ejected";
    if (p.consecutiveFailures > 0) return "degraded";
    const { minRequests, failureRate } = this.options;
    const n = p.intervalRequests;
    return 2 * n >= minRequests && 2 * p.intervalFailures >= failureRate * n ? "degraded" : "healthy";
  }

  #healthOf(p: Provider, now: number): ProviderHealth {
    const state = this.#stateOf(p, now);
    const counts = { consecutiveFailures: p.consecutiveFailures, timesEjected: p.timesEjected, intervalRequests: p.intervalRequests, intervalFailures: p.intervalFailures };
    return state === "ejected" ? { state, ejectedUntil: p.ejectedUntil, ...counts } : { state, ...counts };
  }

  #report(p: Provider, now: number): void {
    const state = this.#stateOf(p, now);
    if (state === p.reported) return;
    p.reported = state;
    this.#onChange?.(p.address, this.#healthOf(p, now), now);
  }
}
