import { type Call, compose, type Interceptor, type Invoke, type MethodRef, type Reply } from "../call/call.js";
import type { Directory } from "../cluster/directory.js";
import type { EndpointStatsTable } from "../cluster/endpoint-stats.js";
import type { AttemptObserver } from "../call/attempt-observer.js";
import { type ClusterView, type FaultTolerance, type FinishingTolerance, settlesWith } from "../cluster/fault-tolerance/fault-tolerance.js";
import type { ClientConnection } from "../protocol/binary/client-connection.js";
import { addressOf } from "./connection-pool.js";
import type { ConnectionPool } from "./connection-pool.js";
import type { LoadBalancer } from "../cluster/load-balancers/load-balancer.js";
import type { ServiceDefinition } from "../contract/define-service.js";
import { badOption, FarcallError, type Metadata } from "../errors/farcall-error.js";
import { encodeRoute } from "../protocol/binary/frame-encoder.js";
import type { Endpoint } from "../registry/endpoint.js";
import { tickNow } from "../timing/tick-clock.js";
import { type CallOptions, type Stub, stubFactory } from "./stub.js";
import type { MethodDefinition } from "../contract/define-service.js";
import type { MethodHealth } from "../cluster/provider-health.js";
import type { AdaptiveThrottle } from "../governance/adaptive-throttle.js";
import type { ConcurrencyLimiter, RateLimiter } from "../governance/limiter.js";
import { type RouteContext, type Router, routeAll } from "../governance/routing/router.js";
import { tagMetadataKey } from "../governance/routing/tag-router.js";

/** Consumer-side protection of one method (see `guardCall`). */
export interface CallGuard {
  readonly rateLimiter?: RateLimiter;
  readonly concurrency?: ConcurrencyLimiter;
  readonly throttle?: AdaptiveThrottle;
}

/**
 * What one method of a client runs with, resolved by the application from the application's,
 * client's and method's options: the balancer, the fault-tolerance strategy, provider health
 * (outlier ejection, circuit breakers) and the consumer-side guard.
 */
export interface MethodPolicy {
  readonly loadBalancer: LoadBalancer;
  /**
   * The service's call statistics, when the balancer reads them (`needsStats`): every attempt is
   * then recorded (in flight from the pick until it settles, latency, outcome). Undefined: none.
   */
  readonly stats: EndpointStatsTable | undefined;
  readonly faultTolerance: FaultTolerance;
  /** Outlier ejection and circuit breakers; undefined when both are off. */
  readonly health: MethodHealth | undefined;
  /** Consumer-side rate and concurrency limits, run once per call; undefined for none. */
  readonly guard: CallGuard | undefined;
  /** Deadline in ms when neither the call nor the definition sets one; 0 for none. */
  readonly timeoutMs: number;
  /** This method's routing result cache. */
  readonly routeCache: RouteCache;
}

/** Routers applied before every pick, and what they know of this consumer; replaced when rules change. */
export interface Routing {
  readonly routers: readonly Router[];
  readonly context: RouteContext;
  /** Some router's result depends on more than the method and the call's tag (see `Router.perCall`). */
  readonly perCall?: boolean;
}

/**
 * The last routing result of one method: reused while the snapshot, the routing (rules) and the
 * call's tag are the same, unless a router reads more of the call. Saves walking the routers'
 * own caches on every attempt.
 */
export class RouteCache {
  #snapshot: readonly Endpoint[] | undefined;
  #routing: Routing | undefined;
  #tag: unknown;
  #result: readonly Endpoint[] = [];

  route(endpoints: readonly Endpoint[], call: Call, routing: Routing): readonly Endpoint[] {
    const tag = call.metadata[tagMetadataKey];
    if (endpoints === this.#snapshot && routing === this.#routing && tag === this.#tag) return this.#result;
    const result = routeAll(routing.routers, endpoints, call, routing.context);
    if (routing.perCall !== true) {
      this.#snapshot = endpoints;
      this.#routing = routing;
      this.#tag = tag;
      this.#result = result;
    }
    return result;
  }
}

/** Per-service settings of a client, resolved by the application. */
export interface ServiceClientOptions {
  readonly directory: Directory;
  readonly pool: ConnectionPool;
  /** The policy of one method of the service. */
  readonly policyOf: (method: MethodDefinition) => MethodPolicy;
  /** Read on every attempt, so rules pushed through the registry apply to the next call. */
  readonly routing: { readonly current: Routing };
  /** Run once per call, before the provider is picked (outermost first). */
  readonly interceptors: readonly Interceptor[];
  /** Run once per attempt (first and retries), before routing and the pick (outermost first). */
  readonly attemptInterceptors: readonly Interceptor[];
  /** How long, in ms, a first call waits for the registry's first list of providers. */
  readonly discoveryTimeoutMs: number;
}

const noMetadata: Metadata = Object.freeze({});
/** Largest deadline in ms (the wire carries it as u32; setTimeout takes up to 2^31 - 1). */
const maxTimeoutMs = 2 ** 31 - 1;
const noneTried: readonly string[] = Object.freeze([]);

function valueOf(reply: Reply): unknown {
  return reply.value;
}

/**
 * Builds the stub of one service: per method, the chain interceptors → fault tolerance → pick →
 * attempt interceptors → connection, assembled once at construction.
 */
export function createStub<T>(definition: ServiceDefinition<T>, options: ServiceClientOptions): Stub<T> {
  const invokers = new Map<string, { ref: MethodRef; invoke: (call: Call) => Promise<unknown>; timeoutMs: number }>();
  for (const method of definition.methods.values()) {
    const ref: MethodRef = Object.freeze({
      service: definition.name,
      version: definition.version,
      group: definition.group,
      method: method.name,
      idempotent: method.idempotent,
      oneway: method.oneway,
    });
    const policy = options.policyOf(method);
    const route = encodeRoute(definition.name, definition.version, definition.group, method.name);
    const attempt = compose(options.attemptInterceptors, (call) => send(call, route, options, policy));
    const cluster: ClusterView = {
      endpoints: (call) => candidates(call, options, policy, tickNow()),
      pick: (call) => {
        const now = tickNow();
        return policy.loadBalancer.pick(candidates(call, options, policy, now), call, now, policy.stats);
      },
    };
    // Strategies read the cluster before their first attempt (broadcast, forking): a client's
    // first calls wait for the registry's first list, or each would see no provider at all.
    const tolerate = (call: Call): Promise<Reply> =>
      options.directory.received ? policy.faultTolerance(call, attempt, cluster) : afterDiscovery(call, options, policy).then(() => policy.faultTolerance(call, attempt, cluster));
    invokers.set(method.name, { ref, invoke: valueInvoke(options, policy, tolerate, attempt, cluster), timeoutMs: method.timeoutMs ?? policy.timeoutMs });
  }
  const build = (callOptions: CallOptions): Stub<T> => {
    if (callOptions.timeoutMs !== undefined && !(callOptions.timeoutMs > 0 && callOptions.timeoutMs <= maxTimeoutMs)) {
      badOption("timeoutMs", `must be a positive number of milliseconds, at most ${maxTimeoutMs}`);
    }
    const stub: Record<string | symbol, unknown> = Object.create(null) as Record<string | symbol, unknown>;
    const metadata = callOptions.metadata ?? noMetadata;
    const signal = callOptions.signal;
    for (const [name, { ref, invoke, timeoutMs: methodTimeout }] of invokers) {
      const timeoutMs = callOptions.timeoutMs ?? methodTimeout;
      stub[name] = (...args: unknown[]): Promise<unknown> => {
        const call: Call = {
          ref,
          args,
          metadata,
          // The per-burst clock: calls issued together share one clock read (see tickNow).
          deadline: timeoutMs > 0 ? tickNow() + timeoutMs : Infinity,
          signal,
          attempt: 0,
          tried: noneTried,
        };
        try {
          return invoke(call);
        } catch (error) {
          // An interceptor that throws synchronously: a stub method always returns a promise.
          return Promise.reject(error);
        }
      };
    }
    stub[stubFactory] = build;
    return Object.freeze(stub) as unknown as Stub<T>;
  };
  return build({});
}

/**
 * One method's fault tolerance with the caller's reactions: settles with `finish(reply)` or
 * `fail(error)` (each at most once), in the strategy's own derived promise when it has a
 * `settlesWith` variant, otherwise in one `then` after it.
 */
type Settle = <R>(call: Call, finish: (reply: Reply) => R, fail: ((error: unknown) => R) | undefined) => Promise<R>;

/**
 * One method's whole per-call chain, settling with the reply's value: interceptors → guard → fault
 * tolerance. Without per-call interceptors (which see replies, so the value is taken after them),
 * the guard's bookkeeping and the value are the strategy's reactions: a call whose first attempt
 * succeeds costs one derived promise beyond the connection's, whatever is on.
 */
function valueInvoke(options: ServiceClientOptions, policy: MethodPolicy, tolerate: Invoke, attempt: Invoke, cluster: ClusterView): (call: Call) => Promise<unknown> {
  const finishing = (policy.faultTolerance as { [settlesWith]?: FinishingTolerance })[settlesWith];
  const { directory } = options;
  const settle: Settle =
    finishing === undefined
      ? (call, finish, fail) => tolerate(call).then(finish, fail)
      : (call, finish, fail) => (directory.received ? finishing(call, attempt, cluster, finish, fail) : tolerate(call).then(finish, fail));
  const guard = policy.guard;
  if (options.interceptors.length > 0) {
    const last: Invoke = guard === undefined ? tolerate : guardCall(guard, settle, identity);
    const perCall = compose(options.interceptors, last);
    return (call) => perCall(call).then(valueOf);
  }
  if (guard !== undefined) return guardCall(guard, settle, valueOf);
  return (call) => settle(call, valueOf, undefined);
}

function identity(reply: Reply): Reply {
  return reply;
}

/**
 * The endpoints an attempt of `call` may use at `now`: the directory's snapshot, routed, without
 * ejected providers and open breakers, minus the tried ones (or just the target).
 */
function candidates(call: Call, options: ServiceClientOptions, policy: MethodPolicy, now: number): readonly Endpoint[] {
  let endpoints = options.directory.current(now);
  const routing = options.routing.current;
  if (routing.routers.length > 0 && endpoints.length > 0) endpoints = policy.routeCache.route(endpoints, call, routing);
  if (policy.health !== undefined && endpoints.length > 0) endpoints = policy.health.filter(endpoints, now);
  if (call.target !== undefined) return endpoints.filter((e) => addressOf(e) === call.target);
  if (call.tried.length > 0) return endpoints.filter((e) => !call.tried.includes(addressOf(e)));
  return endpoints;
}

function send(call: Call, route: Uint8Array, options: ServiceClientOptions, policy: MethodPolicy): Promise<Reply> {
  const now = tickNow();
  const endpoints = candidates(call, options, policy, now);
  const stats = policy.stats;
  let endpoint = policy.loadBalancer.pick(endpoints, call, now, stats);
  if (endpoint === undefined) {
    if (!options.directory.received) return sendPicked(call, route, options, policy);
    return Promise.reject(noProvider(call, options, policy, now));
  }
  // A oneway call is never in flight for long: no statistics, no breaker admission or feedback
  // (its breakers never see a result, so they stay closed).
  const health = policy.health;
  let observer: AttemptObserver | undefined;
  if (call.ref.oneway) {
    observer = undefined;
  } else if (health !== undefined) {
    let recorder = health.observer(endpoint);
    if (recorder.breaker !== undefined && !recorder.breaker.tryAcquire(now)) {
      endpoint = admitOther(endpoints, endpoint, call, policy, now);
      if (endpoint === undefined) return Promise.reject(circuitOpen(call));
      recorder = health.observer(endpoint);
    }
    observer = recorder;
  } else {
    observer = stats?.get(endpoint);
  }
  const startedAt = observer === undefined ? 0 : observer.started();
  const connection = options.pool.ready(endpoint);
  if (connection !== undefined) return connection.invoke(call, route, observer, startedAt);
  return acquireAndInvoke(endpoint, call, route, options, observer, startedAt);
}

/**
 * The picked provider's half-open breaker has no probe left: pick among the others, each at most
 * once, until one admits the attempt.
 */
function admitOther(endpoints: readonly Endpoint[], refused: Endpoint, call: Call, policy: MethodPolicy, now: number): Endpoint | undefined {
  const health = policy.health as MethodHealth;
  let rest = endpoints.filter((e) => e !== refused);
  while (rest.length > 0) {
    const next = policy.loadBalancer.pick(rest, call, now, policy.stats);
    if (next === undefined) return undefined;
    if (health.admit(next, now)) return next;
    rest = rest.filter((e) => e !== next);
  }
  return undefined;
}

async function acquireAndInvoke(
  endpoint: Endpoint,
  call: Call,
  route: Uint8Array,
  options: ServiceClientOptions,
  observer: AttemptObserver | undefined,
  startedAt: number,
): Promise<Reply> {
  let connection: ClientConnection;
  try {
    connection = await withinCall(options.pool.acquire(endpoint), call, "connecting to the provider");
  } catch (error) {
    observer?.settled(startedAt, FarcallError.from(error));
    throw error;
  }
  // Latency is the provider's: connecting does not count.
  return connection.invoke(call, route, observer, observer?.resumed === undefined ? startedAt : observer.resumed());
}

/** Waits for the registry's first list within the call's deadline; `noProvider` when it never came. */
async function afterDiscovery(call: Call, options: ServiceClientOptions, policy: MethodPolicy): Promise<void> {
  await withinCall(options.directory.whenReceived(options.discoveryTimeoutMs), call, "waiting for the registry's first list of providers");
  if (!options.directory.received) throw noProvider(call, options, policy, Date.now());
}

async function sendPicked(call: Call, route: Uint8Array, options: ServiceClientOptions, policy: MethodPolicy): Promise<Reply> {
  await withinCall(options.directory.whenReceived(options.discoveryTimeoutMs), call, "waiting for the registry's first list of providers");
  if (!options.directory.received) throw noProvider(call, options, policy, Date.now());
  return send(call, route, options, policy);
}

/**
 * Waits for `work` (shared with other calls, so never canceled here) no longer than the call's
 * deadline and signal allow: `deadline_exceeded` or `canceled`, with `sent: false`.
 */
function withinCall<T>(work: Promise<T>, call: Call, what: string): Promise<T> {
  const { deadline, signal } = call;
  if (deadline === Infinity && signal === undefined) return work;
  return new Promise<T>((resolve, reject) => {
    const done = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    const onAbort = (): void => {
      done();
      reject(new FarcallError("canceled", `call canceled while ${what}`, { sent: false }));
    };
    const timer =
      deadline === Infinity
        ? undefined
        : setTimeout(() => {
            done();
            reject(new FarcallError("deadline_exceeded", `deadline passed while ${what}`, { sent: false }));
          }, Math.max(0, deadline - Date.now()));
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    work.then(
      (value) => {
        done();
        resolve(value);
      },
      (error: unknown) => {
        done();
        reject(error);
      },
    );
  });
}

/**
 * No provider for this attempt: `circuit_open` when providers exist and every one is behind an
 * open breaker for this method, otherwise `unavailable` with no reason.
 */
function noProvider(call: Call, options: ServiceClientOptions, policy: MethodPolicy, now: number): FarcallError {
  const health = policy.health;
  if (health !== undefined && health.hasBreakers) {
    const routing = options.routing.current;
    let routed = options.directory.current(now);
    if (routing.routers.length > 0 && routed.length > 0) routed = routeAll(routing.routers, routed, call, routing.context);
    const available = routed.filter((e) => !call.tried.includes(addressOf(e)));
    if (available.length > 0) return circuitOpen(call);
  }
  const { service, version, group } = call.ref;
  return new FarcallError("unavailable", `no available provider of ${service}:${version}${group ? ` (group ${group})` : ""}`, { sent: false });
}

function circuitOpen(call: Call): FarcallError {
  const { service, version, method } = call.ref;
  return new FarcallError("unavailable", `circuit breaker open for every provider of ${service}:${version}#${method}`, {
    sent: false,
    details: { reason: "circuit_open" },
  });
}

/**
 * Consumer-side protection of one method, once per call (not per attempt): the adaptive throttle,
 * then the rate limit, then the concurrency limit. A refused call fails at once with
 * `resource_exhausted`, `sent: false` and `details.reason` `throttled`, `rate_limited` or
 * `concurrency_limited` (never retried: every provider would get the same answer).
 */
function guardCall<R>(guard: CallGuard, settle: Settle, finish: (reply: Reply) => R): (call: Call) => Promise<R> {
  const { rateLimiter, concurrency, throttle } = guard;
  // Built once per method, not per call: the per-call work is the checks; the throttle's count,
  // the permit's release and what the caller gets (`finish`) are the strategy's reactions.
  const settledOk =
    throttle === undefined
      ? concurrency === undefined
        ? finish
        : (reply: Reply): R => {
            concurrency.release();
            return finish(reply);
          }
      : (reply: Reply): R => {
          concurrency?.release();
          throttle.completed(tickNow(), true);
          return finish(reply);
        };
  const settledError =
    throttle === undefined
      ? concurrency === undefined
        ? undefined
        : (error: unknown): never => {
            concurrency.release();
            throw error;
          }
      : (error: unknown): never => {
          concurrency?.release();
          // Accepted: any answer from a provider but an overload rejection.
          throttle.completed(tickNow(), error instanceof FarcallError && error.sent && !rejectedByProvider(error));
          throw error;
        };
  const run = (call: Call): Promise<R> => {
    try {
      return settle(call, settledOk, settledError);
    } catch (error) {
      // A synchronous throw (an interceptor's) still settles the call's bookkeeping once.
      return Promise.reject(error).then(undefined, settledError);
    }
  };
  return (call) => {
    const now = tickNow();
    if (throttle !== undefined && throttle.shouldReject(now, Math.random())) {
      return Promise.reject(refused("throttled", call, "the adaptive throttle refused the call: most recent calls were rejected by the providers"));
    }
    let delay = 0;
    if (rateLimiter !== undefined) {
      delay = rateLimiter.tryAcquire(now);
      if (delay < 0) return Promise.reject(refused("rate_limited", call, "the consumer's rate limit is reached"));
    }
    if (concurrency !== undefined && !concurrency.tryAcquire()) {
      return Promise.reject(refused("concurrency_limited", call, `${concurrency.limit} calls of this method are already running (maxConcurrent)`));
    }
    if (delay === 0) return run(call);
    return waitTurn(delay, call).then(
      () => run(call),
      (error: unknown) => {
        concurrency?.release();
        throw error;
      },
    );
  };
}

/**
 * Waits `delayMs` for a leaky bucket's turn, no longer than the call's deadline and signal allow:
 * `deadline_exceeded` (at the deadline, when the turn comes after it) or `canceled`, `sent: false`.
 */
function waitTurn(delayMs: number, call: Call): Promise<void> {
  const { deadline, signal } = call;
  const what = `waiting for the consumer's rate limit (${call.ref.service}#${call.ref.method})`;
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(new FarcallError("canceled", `call canceled while ${what}`, { sent: false }));
    const late = deadline !== Infinity && Date.now() + delayMs > deadline;
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new FarcallError("canceled", `call canceled while ${what}`, { sent: false }));
    };
    const timer = setTimeout(
      () => {
        signal?.removeEventListener("abort", onAbort);
        if (late) reject(new FarcallError("deadline_exceeded", `deadline passed while ${what}`, { sent: false }));
        else resolve();
      },
      late ? Math.max(0, deadline - Date.now()) : delayMs,
    );
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** A provider's overload answer: the call was not accepted. */
function rejectedByProvider(error: FarcallError): boolean {
  return error.code === "resource_exhausted" && error.sent;
}

function refused(reason: string, call: Call, message: string): FarcallError {
  const { service, method } = call.ref;
  return new FarcallError("resource_exhausted", `${message} (${service}#${method})`, { sent: false, details: { reason } });
}
