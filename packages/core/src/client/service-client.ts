import { type Call, compose, type Interceptor, type Invoke, type MethodRef, type Reply } from "../call/call.js";
import type { Directory } from "../cluster/directory.js";
import type { EndpointStats, EndpointStatsTable } from "../cluster/endpoint-stats.js";
import type { ClusterView, FaultTolerance } from "../cluster/fault-tolerance/fault-tolerance.js";
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

/** Per-service settings of a client, resolved by the application. */
export interface ServiceClientOptions {
  readonly directory: Directory;
  readonly pool: ConnectionPool;
  readonly loadBalancer: LoadBalancer;
  /**
   * The service's call statistics, when the balancer reads them (`needsStats`): every attempt is
   * then recorded (in flight from the pick until it settles, latency, outcome). Undefined: none.
   */
  readonly stats: EndpointStatsTable | undefined;
  readonly faultTolerance: FaultTolerance;
  /** Run once per call, before the provider is picked (outermost first). */
  readonly interceptors: readonly Interceptor[];
  /** Run once per attempt, after the pick (outermost first). */
  readonly attemptInterceptors: readonly Interceptor[];
  /** Deadline in ms when neither the call nor the definition sets one; 0 for none. */
  readonly timeoutMs: number;
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
  const invokers = new Map<string, { ref: MethodRef; invoke: Invoke; timeoutMs: number }>();
  for (const method of definition.methods.values()) {
    const ref: MethodRef = Object.freeze({
      service: definition.name,
      version: definition.version,
      group: definition.group,
      method: method.name,
      idempotent: method.idempotent,
      oneway: method.oneway,
    });
    const route = encodeRoute(definition.name, definition.version, definition.group, method.name);
    const attempt = compose(options.attemptInterceptors, (call) => send(call, route, options));
    const cluster: ClusterView = {
      endpoints: (call) => candidates(call, options, tickNow()),
      pick: (call) => {
        const now = tickNow();
        return options.loadBalancer.pick(candidates(call, options, now), call, now, options.stats);
      },
    };
    const perCall = compose(options.interceptors, (call) => options.faultTolerance(call, attempt, cluster));
    invokers.set(method.name, { ref, invoke: perCall, timeoutMs: method.timeoutMs ?? options.timeoutMs });
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
        return invoke(call).then(valueOf);
      };
    }
    stub[stubFactory] = build;
    return Object.freeze(stub) as unknown as Stub<T>;
  };
  return build({});
}

/** The endpoints an attempt of `call` may use at `now`: the directory's snapshot minus the tried ones, or just the target. */
function candidates(call: Call, options: ServiceClientOptions, now: number): readonly Endpoint[] {
  const endpoints = options.directory.current(now);
  if (call.target !== undefined) return endpoints.filter((e) => addressOf(e) === call.target);
  if (call.tried.length > 0) return endpoints.filter((e) => !call.tried.includes(addressOf(e)));
  return endpoints;
}

function send(call: Call, route: Uint8Array, options: ServiceClientOptions): Promise<Reply> {
  const now = tickNow();
  const endpoints = candidates(call, options, now);
  const stats = options.stats;
  const endpoint = options.loadBalancer.pick(endpoints, call, now, stats);
  if (endpoint === undefined) {
    if (!options.directory.received) return sendPicked(call, route, options);
    return Promise.reject(noProvider(call));
  }
  // Statistics only when the balancer reads them; a oneway call is never in flight for long.
  const observer = stats === undefined || call.ref.oneway ? undefined : stats.get(endpoint);
  const startedAt = observer === undefined ? 0 : observer.started();
  const connection = options.pool.ready(endpoint);
  if (connection !== undefined) return connection.invoke(call, route, observer, startedAt);
  return acquireAndInvoke(endpoint, call, route, options, observer, startedAt);
}

async function acquireAndInvoke(
  endpoint: Endpoint,
  call: Call,
  route: Uint8Array,
  options: ServiceClientOptions,
  observer: EndpointStats | undefined,
  startedAt: number,
): Promise<Reply> {
  let connection: ClientConnection;
  try {
    connection = await withinCall(options.pool.acquire(endpoint), call, "connecting to the provider");
  } catch (error) {
    observer?.settled(startedAt, FarcallError.from(error));
    throw error;
  }
  return connection.invoke(call, route, observer, startedAt);
}

async function sendPicked(call: Call, route: Uint8Array, options: ServiceClientOptions): Promise<Reply> {
  await withinCall(options.directory.whenReceived(options.discoveryTimeoutMs), call, "waiting for the registry's first list of providers");
  const now = Date.now();
  const stats = options.stats;
  const endpoint = options.loadBalancer.pick(options.directory.current(now), call, now, stats);
  if (endpoint === undefined) throw noProvider(call);
  const observer = stats === undefined || call.ref.oneway ? undefined : stats.get(endpoint);
  return acquireAndInvoke(endpoint, call, route, options, observer, observer === undefined ? 0 : observer.started());
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

function noProvider(call: Call): FarcallError {
  const { service, version, group } = call.ref;
  return new FarcallError("unavailable", `no available provider of ${service}:${version}${group ? ` (group ${group})` : ""}`, { sent: false });
}
