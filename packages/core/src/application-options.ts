import type { Interceptor } from "./call/call.js";
import type { FaultToleranceName, MethodGovernanceOptions } from "./config/client-policy.js";
import type { OutlierDetectionOptions } from "./cluster/outlier-detector.js";
import type { AdaptiveThrottleOptions } from "./governance/adaptive-throttle.js";
import type { CircuitBreakerOptions } from "./governance/circuit-breaker.js";
import type { RateLimitOptions } from "./governance/limiter.js";
import type { RetryBudgetOptions } from "./governance/retry-budget.js";
import type { ConditionRuleOptions } from "./governance/routing/condition-router.js";
import type { LoadSheddingOptions } from "./server/load-shedder.js";
import type { LoadReportOptions } from "./server/load-reporter.js";
import type { FaultTolerance } from "./cluster/fault-tolerance/fault-tolerance.js";
import type { HashKey } from "./cluster/load-balancers/consistent-hash.js";
import type { LoadBalancer } from "./cluster/load-balancers/load-balancer.js";
import type { LoadBalancerName } from "./config/load-balancer-of.js";
import type { Registry } from "./registry/registry.js";
import type { Serializer } from "./serialization/serializer.js";
import type { Transport } from "./transport/transport.js";

/**
 * Options of `createApplication`. Every option may also come from a `FARCALL_*` environment
 * variable or the properties file (see docs/configuration.md); code wins over the environment,
 * which wins over the file.
 */
export interface ApplicationOptions {
  /** Application name, reported to the registry. Default `"farcall-app"`. */
  readonly name?: string;
  /** Group of services whose definition names none. Default `""`. */
  readonly group?: string;
  /**
   * Registry value or address: `local` (default: the embedded registry for processes on one
   * machine), `local:///dir`, `direct://host:port[,host:port]`, `memory`, or a `Registry` from a
   * registry package. A registry built from an address is closed with the application; a value
   * passed in belongs to the caller.
   */
  readonly registry?: Registry | string;
  /** Interface the provider listens on and advertises. Default `"127.0.0.1"`. */
  readonly host?: string;
  /** Port the provider listens on; 0 picks a free one. Default 0. */
  readonly port?: number;
  /**
   * Default deadline of a call in ms when its method names none; 0 for none. Default 5000. Counted
   * from the clock read shared by the calls of one burst of synchronous work (see `tickNow`).
   */
  readonly timeoutMs?: number;
  /** Retries of the `failover` strategy. Default 2. */
  readonly retries?: number;
  /**
   * How each attempt picks a provider (docs/governance.md, "Load balancing"). Default `"random"`.
   * - `"random"`: weighted random over warm-up adjusted weights;
   * - `"roundRobin"`: smooth weighted round robin (nginx's);
   * - `"leastActive"`: fewest calls in flight from this consumer, ties by weighted random;
   * - `"consistentHash"`: same key, same provider (the client's `hashKey`, default the first
   *   argument); when one of n providers leaves, only its ~1/n of the keys move;
   * - `"shortestResponse"`: lowest average latency × (calls in flight + 1), ties by weighted random;
   * - `"adaptive"`: power of two choices over Peak EWMA latency × (calls in flight + 1): steers
   *   away from a provider as soon as it answers slowly;
   * - or a `LoadBalancer` value.
   *
   * `"leastActive"`, `"shortestResponse"` and `"adaptive"` make the client keep call statistics
   * per provider (in-flight count, latency): about 0.2 µs per attempt, ~4 % of the client's CPU
   * per call at 256 in flight (docs/governance.md); the others keep none.
   * @throws FarcallError `invalid_argument` (`bad_option`) at `createApplication` for another value.
   */
  readonly loadBalancer?: LoadBalancerName | LoadBalancer;
  /**
   * What a call does when an attempt fails (docs/governance.md, "Fault tolerance"). Default
   * `"failover"`:
   * - `"failover"`: retry on another provider, only when safe (idempotent method, or the request
   *   never left), at most `retries` times, within the service's retry budget;
   * - `"failfast"`: one attempt;
   * - `"failsafe"`: failures resolve `undefined` (for calls whose failure must not break the caller);
   * - `"failback"`: a failed call resolves `undefined` and is retried in the background (bounded
   *   queue), except `application` and `canceled` errors and non-idempotent calls that may have
   *   been sent, which are thrown;
   * - `"forking"`: `forks` providers at once, the first success wins (idempotent methods only);
   * - `"broadcast"`: every provider, all must succeed;
   * - or a `FaultTolerance` value.
   */
  readonly faultTolerance?: FaultToleranceName | FaultTolerance;
  /** Providers a `"forking"` call runs on at once, 1..10. Default 2. */
  readonly forks?: number;
  /**
   * The retry budget of `failover`, per service: retries within any 10 s stay under `percent` of
   * the calls, or `minPerSecond` per second when that is more, so retries cannot multiply the load
   * of a struggling service. Default `{ percent: 0.2, minPerSecond: 10, ttlMs: 10000 }`; `false` turns it off.
   */
  readonly retryBudget?: RetryBudgetOptions | false;
  /**
   * Outlier ejection of every client's providers (docs/governance.md, "Health"): a provider is
   * taken out of rotation after `consecutiveFailures` failures in a row (default 5) or a failure
   * rate ≥ `failureRate` (default 0.25) over an interval (10 s), for 30 s × the times it was
   * ejected; never more than 10 % of the providers (at least one). `false` turns it off.
   */
  readonly outlierDetection?: OutlierDetectionOptions | false;
  /**
   * Circuit breaker per provider and method, for every client (clients and methods may set their
   * own). Default off (`false`).
   */
  readonly circuitBreaker?: CircuitBreakerOptions | false;
  /**
   * Client-side adaptive throttling (Google SRE): when providers reject most calls with
   * `resource_exhausted`, calls are refused locally with probability
   * max(0, (requests − k × accepted) / (requests + 1)) over the last `windowMs`. Default off;
   * `true` for `{ k: 2, windowMs: 5000 }`.
   */
  readonly adaptiveThrottle?: AdaptiveThrottleOptions | boolean;
  /**
   * Condition routing rules applied to every client before the balancer (docs/governance.md,
   * "Routing"), e.g. `"method = find* => host = 10.0.*"`. Default none.
   */
  readonly routes?: readonly (string | ConditionRuleOptions)[];
  /** Tag routing: a call asking for a tag no provider has fails instead of going to untagged providers. Default false. */
  readonly tagForce?: boolean;
  /**
   * Provider-side load shedding of this application's server: a cap on calls running at once and
   * an admission probability that falls while the event loop lags; shed calls are answered
   * `resource_exhausted` (reason `overloaded`) without their body being decoded. Default off
   * (`false`); `true` for the defaults (docs/governance.md, "Protection").
   */
  readonly loadShedding?: LoadSheddingOptions | boolean;
  /**
   * Load reports this application's providers send their consumers (reply metadata
   * `farcall-load`: event-loop utilisation and heap use, at most one reply per connection per
   * second), which the `adaptive` and `shortestResponse` balancers multiply into a provider's cost
   * (docs/governance.md, "Provider-reported load"). Default `true`; `false` sends none; an object
   * sets `intervalMs` (1000) or a custom `sample()`.
   */
  readonly loadReport?: LoadReportOptions | boolean;
  /** `"msgpack"` (default) or `"json"`, or a `Serializer`: what this application's requests use. */
  readonly serializer?: "msgpack" | "json" | Serializer;
  /** Time in ms a provider's shutdown waits for running calls. Default 10000. */
  readonly graceMs?: number;
  /** A consumer pings a connection after this many ms without data; dead after 3. 0 disables. Default 10000. */
  readonly heartbeatIntervalMs?: number;
  /** A provider closes connections idle for this many ms; 0 disables. Default 60000. */
  readonly idleTimeoutMs?: number;
  /** Largest frame accepted, in bytes; checked on the header. Default 16 MiB. */
  readonly maxFrameBytes?: number;
  /**
   * Most bytes queued on one connection that the peer has not read yet, in bytes. A consumer
   * rejects new calls beyond it (`resource_exhausted`, `sent: false`); a provider stops reading
   * requests from that connection until the peer catches up. Default 8 MiB.
   */
  readonly maxBufferedBytes?: number;
  /** Most calls awaiting replies on one connection. Default 65536. */
  readonly maxPendingCalls?: number;
  /** Weight this provider registers with (0..10000). Default 100. */
  readonly weight?: number;
  /** Warm-up in ms during which this provider's weight ramps up from 1. Default 600000 (10 min). */
  readonly warmupMs?: number;
  /**
   * Routing tag this application's providers register with (e.g. `"gray"`); consumers asking for
   * that tag are routed to them (docs/governance.md, "Routing"). `""` (default) for none.
   */
  readonly tag?: string;
  /** Send stack traces with `application` errors. Default false. */
  readonly includeStack?: boolean;
  /**
   * A providing application closes gracefully on SIGTERM and SIGINT, then lets the signal end the
   * process. Default true. With several providing applications in one process, the first signal
   * drains them all before the process ends.
   */
  readonly handleSignals?: boolean;
  /**
   * Empty-push protection of every client: when the registry reports no provider of a service
   * while this consumer holds healthy connections to some of the ones it had, it keeps those
   * (emitting one `FARCALL_EMPTY_PUSH` process warning per episode) instead of failing every call
   * with `unavailable`: a registry that lost its data, its session or its network looks the same
   * as every provider leaving. A kept provider is removed as soon as it sends `closing` or its
   * connection drops; the next non-empty list replaces the kept one. Default true.
   */
  readonly emptyProtection?: boolean;
  /**
   * Client options per service name, as data (what `app.client(definition, options)` takes, minus
   * functions): the way to set a client's or a method's balancer, strategy, breaker or limits from
   * the environment (`FARCALL_CLIENTS`, JSON) or the file (`cluster.clients`). Options passed to
   * `app.client()` win, key by key and method by method. Default `{}`.
   */
  readonly clients?: Readonly<Record<string, ClientOptions>>;
  /**
   * Provide options per service name, as data (`rateLimit`, `maxConcurrent`, `weight`, `warmupMs`,
   * `tag`, `methods`): `FARCALL_SERVICES` (JSON) or `provider.services`. Options passed to
   * `app.provide()` win. Default `{}`.
   */
  readonly services?: Readonly<Record<string, ProvideOptions>>;
  /** Per-call interceptors of every client (outermost first). */
  readonly interceptors?: readonly Interceptor[];
  /**
   * Per-attempt interceptors of every client (outermost first): run for each attempt (the first
   * and each retry), before the provider is picked.
   */
  readonly attemptInterceptors?: readonly Interceptor[];
  /** Default TCP. */
  readonly transport?: Transport;
  /** Path of the properties file; default `FARCALL_CONFIG` or `./farcall.properties` when present. */
  readonly configFile?: string;
  /** Environment to read `FARCALL_*` from. Default `process.env`. */
  readonly env?: NodeJS.ProcessEnv;
}

/** Options of one client. */
export interface ClientOptions {
  /** Default deadline in ms of this client's calls (methods' own timeouts win). */
  readonly timeoutMs?: number;
  /**
   * This client's balancer, overriding the application's `loadBalancer` (same names and values).
   * @throws FarcallError `invalid_argument` (`bad_option`) at `app.client()` for another value.
   */
  readonly loadBalancer?: LoadBalancerName | LoadBalancer;
  /**
   * Where the `consistentHash` balancer reads each call's key: `{ argument: i }` (the argument at
   * index i, 0..255), `{ metadata: "name" }` (that metadata value, e.g. set per request with
   * `withOptions(stub, { metadata })`) or a function of the call. Strings are hashed as they are,
   * numbers, bigints and booleans as text; a call without such a key is balanced by weighted
   * random. Default `{ argument: 0 }`. Ignored by other balancers, so the application's balancer
   * may be switched from the environment without touching the code.
   * @throws FarcallError `invalid_argument` (`bad_option`, option `hashKey`) at `app.client()` for another shape.
   */
  readonly hashKey?: HashKey;
  /** This client's fault tolerance (same names and values as the application's). */
  readonly faultTolerance?: FaultToleranceName | FaultTolerance;
  readonly retries?: number;
  readonly forks?: number;
  /** This client's circuit breakers (per provider and method); `false`: none, whatever the application says. */
  readonly circuitBreaker?: CircuitBreakerOptions | false;
  /** Consumer-side rate limit of each method of this client (one limiter per method). Default none. */
  readonly rateLimit?: RateLimitOptions;
  /** Most calls of each method of this client running at once; beyond it calls fail with `resource_exhausted` (`concurrency_limited`). Default none. */
  readonly maxConcurrent?: number;
  /** This client's adaptive throttle (see the application option). */
  readonly adaptiveThrottle?: AdaptiveThrottleOptions | boolean;
  /**
   * Routing tag every call of this client asks for (sent as metadata `farcall-tag`; a provider
   * does not forward it on its own calls): calls go to providers registered with that tag, or to
   * untagged ones when none has it (unless `tagForce`). A call's own `farcall-tag` metadata wins.
   */
  readonly tag?: string;
  /** Options per method of the service, by method name, over this client's. */
  readonly methods?: Readonly<Record<string, MethodGovernanceOptions>>;
  /** Added after the application's interceptors. */
  readonly interceptors?: readonly Interceptor[];
  readonly attemptInterceptors?: readonly Interceptor[];
}

/** Provider-side limits of one method (`ProvideOptions.methods`). */
export interface ProvidedMethodOptions {
  /** Rate limit of the method on this provider; rejected calls are answered `resource_exhausted` (`rate_limited`). */
  readonly rateLimit?: RateLimitOptions | false;
  /** Most calls of the method running at once on this provider; beyond it `resource_exhausted` (`concurrency_limited`). */
  readonly maxConcurrent?: number | false;
}

/** Options of one provided service. */
export interface ProvideOptions {
  /** Rate limit of each method of the service on this provider (one limiter per method). Default none. */
  readonly rateLimit?: RateLimitOptions;
  /** Most calls of each method running at once on this provider. Default none. */
  readonly maxConcurrent?: number;
  /** Per-method limits, over the service's. */
  readonly methods?: Readonly<Record<string, ProvidedMethodOptions>>;
  readonly weight?: number;
  readonly warmupMs?: number;
  /** Routing tag of this service's registration, overriding the application's `tag`. */
  readonly tag?: string;
}

/** Defaults of every setting; docs/configuration.md repeats them (a test keeps them in sync). */
export const defaults = Object.freeze({
  name: "farcall-app",
  group: "",
  registry: "local",
  host: "127.0.0.1",
  port: 0,
  timeoutMs: 5000,
  retries: 2,
  loadBalancer: "random",
  faultTolerance: "failover",
  serializer: "msgpack",
  graceMs: 10_000,
  heartbeatIntervalMs: 10_000,
  idleTimeoutMs: 60_000,
  maxFrameBytes: 16 * 1024 * 1024,
  maxBufferedBytes: 8 * 1024 * 1024,
  maxPendingCalls: 65_536,
  weight: 100,
  warmupMs: 600_000,
  tag: "",
  includeStack: false,
  handleSignals: true,
  emptyProtection: true,
  forks: 2,
  retryBudget: { percent: 0.2, minPerSecond: 10, ttlMs: 10_000 } as RetryBudgetOptions | false,
  outlierDetection: {} as OutlierDetectionOptions | false,
  circuitBreaker: false as CircuitBreakerOptions | false,
  adaptiveThrottle: false as AdaptiveThrottleOptions | boolean,
  routes: [] as readonly (string | ConditionRuleOptions)[],
  tagForce: false,
  loadShedding: false as LoadSheddingOptions | boolean,
  loadReport: true as LoadReportOptions | boolean,
  clients: {} as Readonly<Record<string, ClientOptions>>,
  services: {} as Readonly<Record<string, ProvideOptions>>,
});

export type { FaultToleranceName, MethodGovernanceOptions } from "./config/client-policy.js";
