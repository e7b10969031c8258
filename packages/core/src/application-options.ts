import type { Interceptor } from "./call/call.js";
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
  /** `"failover"` (default) or `"failfast"`, or a `FaultTolerance`. */
  readonly faultTolerance?: "failover" | "failfast" | FaultTolerance;
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
  /** Per-call interceptors of every client (outermost first). */
  readonly interceptors?: readonly Interceptor[];
  /** Per-attempt interceptors of every client (outermost first). */
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
  readonly faultTolerance?: "failover" | "failfast" | FaultTolerance;
  readonly retries?: number;
  /** Added after the application's interceptors. */
  readonly interceptors?: readonly Interceptor[];
  readonly attemptInterceptors?: readonly Interceptor[];
}

/** Options of one provided service. */
export interface ProvideOptions {
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
});
