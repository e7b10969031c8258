import { type CallGuard, type MethodPolicy, RouteCache } from "../client/service-client.js";
import { broadcast } from "../cluster/fault-tolerance/broadcast.js";
import { failback } from "../cluster/fault-tolerance/failback.js";
import { failfast, failover } from "../cluster/fault-tolerance/failover.js";
import { failsafe } from "../cluster/fault-tolerance/failsafe.js";
import type { FaultTolerance } from "../cluster/fault-tolerance/fault-tolerance.js";
import { forking } from "../cluster/fault-tolerance/forking.js";
import { MethodHealth } from "../cluster/provider-health.js";
import type { ServiceGovernance } from "../cluster/service-governance.js";
import type { MethodDefinition } from "../contract/define-service.js";
import { badOption } from "../errors/farcall-error.js";
import { AdaptiveThrottle, type AdaptiveThrottleOptions } from "../governance/adaptive-throttle.js";
import { type CircuitBreakerOptions, checkCircuitBreakerOptions } from "../governance/circuit-breaker.js";
import { createConcurrencyLimiter } from "../governance/concurrency-limiter.js";
import type { RateLimitOptions } from "../governance/limiter.js";
import { checkRateLimitOptions, createRateLimiter } from "../governance/rate-limiters.js";
import { loadBalancerNames, loadBalancerOf } from "./load-balancer-of.js";
import type { LoadBalancerName } from "./load-balancer-of.js";
import type { LoadBalancer } from "../cluster/load-balancers/load-balancer.js";
import type { HashKey } from "../cluster/load-balancers/consistent-hash.js";

/** The built-in fault-tolerance strategies by name. */
export type FaultToleranceName = "failover" | "failfast" | "failsafe" | "failback" | "forking" | "broadcast";

/** Per-method options of a client (`ClientOptions.methods`); each overrides the client's. */
export interface MethodGovernanceOptions {
  readonly loadBalancer?: LoadBalancerName | LoadBalancer;
  readonly faultTolerance?: FaultToleranceName | FaultTolerance;
  /** Retries of `failover` for this method. */
  readonly retries?: number;
  /** Providers of a `forking` call. */
  readonly forks?: number;
  /** Default deadline in ms of this method's calls (the definition's own timeout wins). */
  readonly timeoutMs?: number;
  /** This method's circuit breakers; `false`: none. */
  readonly circuitBreaker?: CircuitBreakerOptions | false;
  /** This method's consumer-side rate limit; `false`: none, whatever the client says. */
  readonly rateLimit?: RateLimitOptions | false;
  /** Most calls of this method running at once from this application; `false`: no cap. */
  readonly maxConcurrent?: number | false;
}

/** The client options a policy is resolved from (a subset of `ClientOptions`). */
export interface ClientPolicyOptions {
  readonly loadBalancer?: LoadBalancerName | LoadBalancer;
  readonly hashKey?: HashKey;
  readonly faultTolerance?: FaultToleranceName | FaultTolerance;
  readonly retries?: number;
  readonly forks?: number;
  readonly timeoutMs?: number;
  readonly circuitBreaker?: CircuitBreakerOptions | false;
  readonly rateLimit?: RateLimitOptions;
  readonly maxConcurrent?: number;
  readonly adaptiveThrottle?: AdaptiveThrottleOptions | boolean;
  readonly methods?: Readonly<Record<string, MethodGovernanceOptions>>;
}

/** The names `faultTolerance` accepts. */
export const faultToleranceNames: readonly FaultToleranceName[] = Object.freeze(["failover", "failfast", "failsafe", "failback", "forking", "broadcast"]);

/** The application-level defaults a client's policy starts from. */
export interface PolicyDefaults {
  readonly loadBalancer: LoadBalancerName | LoadBalancer;
  readonly faultTolerance: FaultToleranceName | FaultTolerance;
  readonly retries: number;
  readonly forks: number;
  readonly timeoutMs: number;
  readonly circuitBreaker: CircuitBreakerOptions | false;
  readonly adaptiveThrottle: AdaptiveThrottleOptions | boolean;
}

/**
 * Objects that must outlive one `app.client()` call, since a client is cheap to make again (some
 * applications make one per request): limiters, throttles and failback queues, shared per service,
 * method and configuration; closed with the application.
 */
export class SharedPolicyObjects {
  readonly #objects = new Map<string, unknown>();
  readonly #closers: Array<() => void> = [];

  get<T>(key: string, make: () => T, close?: (value: T) => void): T {
    if (this.#objects.has(key)) return this.#objects.get(key) as T;
    const value = make();
    this.#objects.set(key, value);
    if (close !== undefined) this.#closers.push(() => close(value));
    return value;
  }

  close(): void {
    for (const close of this.#closers.splice(0)) close();
    this.#objects.clear();
  }
}

/**
 * Resolves the {@link MethodPolicy} of each method of one client: method options over client
 * options over application defaults.
 * @throws FarcallError `invalid_argument` (`bad_option`) for an unknown method name in
 *   `options.methods` or a malformed option (named in `details.option`).
 */
export function policyResolver(
  serviceKey: string,
  methodNames: ReadonlySet<string>,
  defaults: PolicyDefaults,
  options: ClientPolicyOptions,
  service: ServiceGovernance,
  shared: SharedPolicyObjects,
): (method: MethodDefinition) => MethodPolicy {
  for (const name of Object.keys(options.methods ?? {})) {
    if (!methodNames.has(name)) badOption(`methods.${name}`, `the service has no method ${JSON.stringify(name)}`);
  }
  return (method) => {
    const m: MethodGovernanceOptions = options.methods?.[method.name] ?? {};
    const where = (option: string): string => (m[option as keyof MethodGovernanceOptions] !== undefined ? `methods.${method.name}.${option}` : option);
    // Checked here whichever strategy reads them, named as written (`retries`, `methods.get.retries`).
    const balancerOption = m.loadBalancer ?? options.loadBalancer ?? defaults.loadBalancer;
    if (!isLoadBalancer(balancerOption)) badOption(where("loadBalancer"), `must be one of ${loadBalancerNames.join(", ")} or a LoadBalancer value, got ${JSON.stringify(balancerOption)}`);
    const loadBalancer = loadBalancerOf(balancerOption, { hashKey: options.hashKey });
    const stats = loadBalancer.needsStats === true ? service.stats() : undefined;
    const retries = integerOption(m.retries ?? options.retries ?? defaults.retries, where("retries"), 0, 10);
    const forks = integerOption(m.forks ?? options.forks ?? defaults.forks, where("forks"), 1, 10);
    const timeoutMs = integerOption(m.timeoutMs ?? options.timeoutMs ?? defaults.timeoutMs, where("timeoutMs"), 0, maxTimeoutMs);
    const strategy = m.faultTolerance ?? options.faultTolerance ?? defaults.faultTolerance;
    if (typeof strategy !== "function" && !faultToleranceNames.includes(strategy)) {
      badOption(where("faultTolerance"), `must be one of ${faultToleranceNames.join(", ")} or a FaultTolerance, got ${JSON.stringify(strategy)}`);
    }
    const faultTolerance = faultToleranceOf(strategy, retries, forks, service, shared, `${serviceKey}#${method.name}`);
    const breakerOption = m.circuitBreaker ?? options.circuitBreaker ?? defaults.circuitBreaker;
    const breaker = breakerOption === false ? undefined : checkCircuitBreakerOptions(breakerOption, where("circuitBreaker"));
    const health =
      service.health.outliers === undefined && breaker === undefined
        ? undefined
        : new MethodHealth(service.health, breaker === undefined ? undefined : service.health.breakers(method.name, breaker), stats);
    const guard = guardOf(m, options, defaults, method.name, serviceKey, shared, where);
    return { loadBalancer, stats, faultTolerance, health, guard, routeCache: new RouteCache(), timeoutMs };
  };
}

/** Largest deadline in ms (the wire carries it as u32; setTimeout takes up to 2^31 - 1). */
const maxTimeoutMs = 2 ** 31 - 1;

/** `value` when it is an integer in [min, max]; otherwise `bad_option` naming `option`. */
function integerOption(value: unknown, option: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) badOption(option, `must be an integer in ${min}..${max}`);
  return value;
}

function isLoadBalancer(value: unknown): boolean {
  if (typeof value === "string") return (loadBalancerNames as readonly string[]).includes(value);
  return typeof value === "object" && value !== null && typeof (value as Partial<LoadBalancer>).pick === "function";
}

function guardOf(
  m: MethodGovernanceOptions,
  options: ClientPolicyOptions,
  defaults: PolicyDefaults,
  method: string,
  serviceKey: string,
  shared: SharedPolicyObjects,
  where: (option: string) => string,
): CallGuard | undefined {
  const rate = m.rateLimit === false ? undefined : (m.rateLimit ?? options.rateLimit);
  const maxConcurrent = m.maxConcurrent === false ? undefined : (m.maxConcurrent ?? options.maxConcurrent);
  const throttleOption = options.adaptiveThrottle ?? defaults.adaptiveThrottle;
  const guard: { rateLimiter?: ReturnType<typeof createRateLimiter>; concurrency?: ReturnType<typeof createConcurrencyLimiter>; throttle?: AdaptiveThrottle } = {};
  if (rate !== undefined) {
    const checked: RateLimitOptions = checkRateLimitOptions(rate, where("rateLimit"));
    guard.rateLimiter = shared.get(`rate\u0000${serviceKey}#${method}\u0000${JSON.stringify(checked)}`, () => createRateLimiter(checked));
  }
  if (maxConcurrent !== undefined) {
    integerOption(maxConcurrent, where("maxConcurrent"), 1, 1_000_000);
    guard.concurrency = shared.get(`concurrency\u0000${serviceKey}#${method}\u0000${maxConcurrent}`, () => createConcurrencyLimiter(maxConcurrent));
  }
  if (throttleOption !== false) {
    const throttleOptions: AdaptiveThrottleOptions = throttleOption === true ? {} : throttleOption;
    // One throttle per service: the providers' overload is the service's, not one method's.
    guard.throttle = shared.get(`throttle\u0000${serviceKey}\u0000${JSON.stringify(throttleOptions)}`, () => new AdaptiveThrottle(throttleOptions));
  }
  return guard.rateLimiter === undefined && guard.concurrency === undefined && guard.throttle === undefined ? undefined : guard;
}

/** The strategy for a name or value. */
function faultToleranceOf(
  value: FaultToleranceName | FaultTolerance,
  retries: number,
  forks: number,
  service: ServiceGovernance,
  shared: SharedPolicyObjects,
  methodKey: string,
): FaultTolerance {
  if (typeof value === "function") return value;
  switch (value) {
    case "failover":
      return failover({ retries, ...(service.budget === undefined ? {} : { budget: service.budget }) });
    case "failfast":
      return failfast();
    case "failsafe":
      return failsafe();
    case "failback":
      // One background queue per method, however many clients are made.
      return shared.get(`failback\u0000${methodKey}`, () => failback(), (f) => f.close());
    case "forking":
      return forking({ forks });
    case "broadcast":
      return broadcast();
    default:
      return badOption("faultTolerance", `must be one of ${faultToleranceNames.join(", ")} or a FaultTolerance, got ${JSON.stringify(value)}`);
  }
}
