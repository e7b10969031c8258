import { badOption, FarcallError, type Metadata } from "../errors/farcall-error.js";
import { type Frame, FrameFlags, type ReceivedFrame } from "../protocol/binary/frame.js";
import { decodeMetadata } from "../protocol/binary/payload.js";
import { ServerConnection } from "../protocol/binary/server-connection.js";
import type { Serializer } from "../serialization/serializer.js";
import { type TimerEntry, TimingWheel } from "../timing/timing-wheel.js";
import type { Address, Link, Listener, Transport } from "../transport/transport.js";
import { LoadReporter, type LoadReportOptions } from "./load-reporter.js";
import { type EventLoopDelayMeter, eventLoopDelayMeter, LoadShedder, type LoadSheddingOptions, type ResolvedLoadShedding, resolveLoadShedding } from "./load-shedder.js";
import { ServerCallContext } from "./server-call-context.js";
import { toWireError } from "./to-wire-error.js";
import type { ServiceTable, Target } from "./service-table.js";

/** Options of {@link Server}. */
export interface ServerOptions {
  readonly transport: Transport;
  readonly table: ServiceTable;
  /**
   * The serializers the provider accepts in requests, by wire id: a request naming any other id is
   * answered `invalid_argument` without its body being decoded. Pass only the provider's configured
   * serializer (a consumer must not pick the decoder the provider runs on its bytes).
   */
  readonly serializers: ReadonlyMap<number, Serializer>;
  /** Serializer of error replies to requests whose serializer is not accepted. */
  readonly fallbackSerializer: Serializer;
  /** Largest frame accepted, in bytes, checked on the header. */
  readonly maxFrameBytes: number;
  /**
   * A connection with no running call from which nothing was read for this long, in ms, is sent
   * `closing`; if it is still open and quiet one more `idleTimeoutMs` later, it is closed. 0
   * disables. Heartbeats count as reads, so a consumer that heartbeats is never idle.
   */
  readonly idleTimeoutMs: number;
  /** Send stack traces with `application` errors. */
  readonly includeStack: boolean;
  /**
   * Reply bytes a connection may hold unsent, in bytes, before it stops reading requests from its
   * consumer until the link drains (backpressure). Default 8 MiB (8388608).
   */
  readonly maxBufferedBytes?: number;
  /**
   * Calls running at once on one connection; a request beyond it is answered `resource_exhausted`
   * without running (a oneway one is dropped). Default 1024.
   */
  readonly maxConcurrentCallsPerConnection?: number;
  /**
   * Heartbeat pings answered per second and connection, with bursts of up to this many; pings
   * beyond it get no pong. Default 20, enough for a consumer heartbeating every 50 ms.
   */
  readonly maxPingsPerSecond?: number;
  /**
   * Server-wide load shedding, checked on the request's header after the per-connection cap and
   * before the method's own guards (see {@link LoadSheddingOptions}): a request refused is answered
   * `resource_exhausted` with `details` `{ reason: "overloaded", retryAfterMs }` without its body
   * being decoded (a oneway one is dropped). With an object, event-loop-delay admission is on (an
   * unref'd timer every `intervalMs` and a `monitorEventLoopDelay` histogram, both owned by the
   * server from `listen` to `close`). Default `false`: off.
   * @see LoadShedder
   */
  readonly loadShedding?: LoadSheddingOptions | false;
  /**
   * Load reports to consumers (reply metadata `farcall-load`, at most one per connection per
   * interval), read by their `adaptive` and `shortestResponse` balancers. Default off (`false`);
   * the application turns it on.
   */
  readonly loadReport?: LoadReportOptions | false;
}

/** A snapshot of a {@link Server}'s load. */
export interface ServerStats {
  /** Open connections. */
  readonly connections: number;
  /** Calls being executed. */
  readonly inFlight: number;
  /** Reply bytes written by the server and not yet taken by the kernel, summed over connections. */
  readonly bufferedBytes: number;
  /** Calls admitted by a leaky bucket and waiting for their turn (counted in `inFlight` too). */
  readonly delayed: number;
  /** Probability, in [0.05, 1], with which load shedding admits a request now; 1 when it is off. */
  readonly admissionProbability: number;
  /** Requests answered `overloaded` (server-wide cap or admission probability) since the server was built. */
  readonly shedCount: number;
}

/** `details.reason` of a `resource_exhausted` reply from provider-side protection. */
export type ProtectionReason = "concurrency_limited" | "rate_limited" | "overloaded";

export const defaultMaxBufferedBytes = 8 * 1024 * 1024;
export const defaultMaxConcurrentCallsPerConnection = 1024;
export const defaultMaxPingsPerSecond = 20;

const emptyMetadata: Metadata = Object.freeze({});
const concurrencyLimited = Object.freeze({ reason: "concurrency_limited", retryAfterMs: 0 });
const rateLimited = Object.freeze({ reason: "rate_limited", retryAfterMs: 0 });
const overloadedNow = Object.freeze({ reason: "overloaded", retryAfterMs: 0 });

/** Why a request is refused before it runs: the error replied and its code's details. */
function refusal(message: string, details: Readonly<Record<string, unknown>>): FarcallError {
  return new FarcallError("resource_exhausted", message, { details });
}

/**
 * A call admitted by a leaky bucket, waiting in the server's wheel until its turn (`deadline` here
 * is the turn, not the call's deadline). Decoded already: a frame's bytes are only valid during
 * the request handler.
 */
class DelayedCall implements TimerEntry {
  wheelSlot = -1;
  wheelNext: TimerEntry | undefined = undefined;
  wheelPrev: TimerEntry | undefined = undefined;
  constructor(
    readonly deadline: number,
    readonly run: (call: DelayedCall) => void,
    readonly context: ServerCallContext,
    readonly target: Target,
    readonly args: unknown[],
    readonly id: number,
    readonly oneway: boolean,
    readonly serializer: Serializer,
  ) {}
  expire(): void {
    this.run(this);
  }
}

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  const resolved = value ?? fallback;
  if (!Number.isSafeInteger(resolved) || resolved < 1) badOption(name, "must be a positive integer");
  return resolved;
}

/**
 * The provider's server: accepts connections, routes each request by its header (an unknown route
 * is answered `unimplemented` and an unaccepted serializer `invalid_argument`, without decoding the
 * body), runs the implementation with the call context first and replies. The reply path never
 * throws: whatever an implementation returns, throws or settles its thenable with gets exactly one
 * reply.
 *
 * Protection, all on the header, before the body is decoded, in this order; each refusal is
 * `resource_exhausted` (a oneway request is dropped instead): the per-connection cap; server-wide
 * load shedding (`details.reason` `"overloaded"`); the method's concurrency limit
 * (`"concurrency_limited"`) and rate limiter (`"rate_limited"`), see `MethodGuard`. A call a
 * leaky bucket delays waits in the server's timing wheel, counted in flight; one whose deadline
 * falls before its turn is answered `deadline_exceeded` without running; on `close` waiting calls
 * run when their turn comes within the grace period, and the rest are answered `unavailable`.
 */
export class Server {
  readonly #options: ServerOptions;
  readonly #maxBufferedBytes: number;
  readonly #maxConcurrentCalls: number;
  readonly #maxPingsPerSecond: number;
  readonly #connections = new Set<ServerConnection>();
  readonly #wheel = new TimingWheel();
  #listener: Listener | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  #draining = false;
  #closed = false;
  #closing: Promise<void> | undefined;
  #drained: (() => void) | undefined;
  #inFlight = 0;
  readonly #delayed = new Set<DelayedCall>();
  readonly #runDelayed = (call: DelayedCall): void => this.#onTurn(call);
  readonly #shedding: ResolvedLoadShedding | undefined;
  readonly #shedder: LoadShedder | undefined;
  readonly #loadReporter: LoadReporter | undefined;
  /** Details of a request shed by probability: retry after one measurement interval. */
  readonly #shedDetails: Readonly<Record<string, unknown>> | undefined;
  #meter: EventLoopDelayMeter | undefined;
  /** Requests refused by the server-wide cap (the shedder counts its own). */
  #overCap = 0;

  /**
   * @throws FarcallError `invalid_argument` (reason `bad_option`) for a limit that is not a positive
   *   integer, or load-shedding options out of range (see {@link resolveLoadShedding}).
   */
  constructor(options: ServerOptions) {
    this.#options = options;
    this.#maxBufferedBytes = positiveInteger("maxBufferedBytes", options.maxBufferedBytes, defaultMaxBufferedBytes);
    this.#maxConcurrentCalls = positiveInteger("maxConcurrentCallsPerConnection", options.maxConcurrentCallsPerConnection, defaultMaxConcurrentCallsPerConnection);
    this.#maxPingsPerSecond = positiveInteger("maxPingsPerSecond", options.maxPingsPerSecond, defaultMaxPingsPerSecond);
    this.#loadReporter = options.loadReport === undefined || options.loadReport === false ? undefined : new LoadReporter(options.loadReport);
    if (options.loadShedding !== undefined && options.loadShedding !== false) {
      const shedding = resolveLoadShedding(options.loadShedding);
      this.#shedding = shedding;
      this.#shedDetails = Object.freeze({ reason: "overloaded", retryAfterMs: shedding.intervalMs });
      this.#shedder = new LoadShedder({
        targetDelayMs: shedding.targetDelayMs,
        intervalMs: shedding.intervalMs,
        measureDelayMs: () => this.#meter?.measureDelayMs() ?? 0,
        random: shedding.random,
      });
    }
  }

  /** Bound address once listening. */
  get address(): Address | undefined {
    return this.#listener?.address;
  }
  /** Calls being executed. */
  get inFlight(): number {
    return this.#inFlight;
  }
  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Open connections, running calls, unsent reply bytes and load-shedding state, read now. */
  stats(): ServerStats {
    let bufferedBytes = 0;
    for (const connection of this.#connections) bufferedBytes += connection.bufferedBytes;
    const shedder = this.#shedder;
    return {
      connections: this.#connections.size,
      inFlight: this.#inFlight,
      bufferedBytes,
      delayed: this.#delayed.size,
      admissionProbability: shedder?.admissionProbability ?? 1,
      shedCount: this.#overCap + (shedder?.shedCount ?? 0),
    };
  }

  /** Starts listening. @throws FarcallError `unavailable` when the address cannot be bound. */
  async listen(address: Address): Promise<Address> {
    this.#listener = await this.#options.transport.listen(address, (link) => this.#accept(link));
    const idle = this.#options.idleTimeoutMs;
    if (idle > 0) {
      this.#idleTimer = setInterval(() => this.#closeIdle(idle), Math.max(100, idle / 4));
      this.#idleTimer.unref();
    }
    // The first report goes out after one whole interval: a sample over an instant is all busy.
    if (this.#loadReporter !== undefined && !this.#draining) this.#loadReporter.start();
    if (this.#shedder !== undefined && !this.#draining && this.#meter === undefined) {
      this.#meter = eventLoopDelayMeter();
      this.#shedder.start();
    }
    return this.#listener.address;
  }

  /**
   * Graceful shutdown: stop accepting, send `closing` on every connection, then wait until every
   * consumer has closed its connection (a consumer closes once its calls on it have settled) and
   * every running call has finished, or until `graceMs` passes. Requests that cross the `closing`
   * frame on the wire are still served, and so is a link the transport hands over late (it gets
   * `closing` at once and counts like the others). Calls waiting for their leaky bucket turn count
   * as running: they run when their turn comes. Whatever remains at the deadline is closed (running
   * calls' signals abort; waiting calls are answered `unavailable` without running, and their
   * permits released). The load-shedding timer and meter stop. Idempotent: later calls return the
   * first call's promise (and their `graceMs` is ignored).
   */
  close(graceMs: number): Promise<void> {
    this.#closing ??= this.#close(graceMs);
    return this.#closing;
  }

  async #close(graceMs: number): Promise<void> {
    this.#draining = true;
    for (const connection of this.#connections) connection.sendClosing();
    const listenerClosed = this.#listener?.close();
    if (!this.#settled() && graceMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.#drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.#drained = undefined;
    this.#closed = true;
    // Answered before the connections close, so the reply is flushed with their last write.
    for (const call of this.#delayed) {
      this.#wheel.remove(call);
      this.#finish(call.context, call.target, call.id, call.oneway, call.serializer, new FarcallError("unavailable", "the provider closed before the call's turn came"), true);
    }
    this.#delayed.clear();
    this.#shedder?.stop();
    this.#loadReporter?.stop();
    this.#meter?.close();
    for (const connection of this.#connections) connection.close();
    this.#connections.clear();
    if (this.#idleTimer !== undefined) clearInterval(this.#idleTimer);
    this.#wheel.stop();
    await listenerClosed;
  }

  #accept(link: Link): void {
    if (this.#closed) {
      link.destroy();
      return;
    }
    const connection = new ServerConnection(link, {
      maxFrameBytes: this.#options.maxFrameBytes,
      fallbackSerializer: this.#options.fallbackSerializer,
      includeStack: this.#options.includeStack,
      maxBufferedBytes: this.#maxBufferedBytes,
      maxPingsPerSecond: this.#maxPingsPerSecond,
      onRequest: (frame, conn) => this.#onRequest(frame, conn),
      onClose: (conn) => {
        this.#connections.delete(conn);
        this.#checkDrained();
      },
    });
    this.#connections.add(connection);
    // Accepted while draining: serve it like the others, but tell it at once to send nothing new.
    if (this.#draining) connection.sendClosing();
  }

  /** Nothing running and no consumer connected. */
  #settled(): boolean {
    return this.#inFlight === 0 && this.#connections.size === 0;
  }

  #checkDrained(): void {
    if (this.#drained !== undefined && this.#settled()) this.#drained();
  }

  /** Sends `closing` on connections quiet for `idleMs`, and closes them after another quiet `idleMs`. */
  #closeIdle(idleMs: number): void {
    const now = Date.now();
    for (const connection of this.#connections) {
      if (connection.inFlight > 0) continue;
      const closingSentAt = connection.closingSentAt;
      const quietSince = closingSentAt === undefined ? connection.lastReadAt : Math.max(connection.lastReadAt, closingSentAt);
      if (now - quietSince < idleMs) continue;
      if (closingSentAt === undefined) connection.sendClosing();
      else connection.close();
    }
  }

  #onRequest(frame: ReceivedFrame, connection: ServerConnection): void {
    const id = frame.requestId;
    const oneway = (frame.flags & FrameFlags.oneway) !== 0;
    const target = this.#route(frame, connection);
    const serializer = this.#options.serializers.get(frame.serializerId);
    if (target === undefined) {
      if (!oneway) connection.respondError(id, serializer ?? this.#options.fallbackSerializer, unimplemented(frame));
      return;
    }
    if (serializer === undefined) {
      if (!oneway) connection.respondError(id, this.#options.fallbackSerializer, new FarcallError("invalid_argument", `serializer id ${frame.serializerId} is not accepted by this provider`));
      return;
    }
    if (connection.inFlight >= this.#maxConcurrentCalls) {
      if (!oneway) {
        const message = `${connection.inFlight} calls are already running on this connection (maxConcurrentCallsPerConnection ${this.#maxConcurrentCalls})`;
        connection.respondError(id, serializer, new FarcallError("resource_exhausted", message));
      }
      return;
    }
    if (this.#shedding !== undefined && !this.#admit(id, oneway, serializer, connection, this.#shedding)) return;
    // The call's deadline and the limiters' `now`: when the chunk holding the request was read (one clock read per chunk).
    const readAt = connection.lastReadAt;
    const guard = target.guard;
    let delayMs = 0;
    if (guard !== undefined) {
      const concurrency = guard.concurrency;
      if (concurrency !== undefined && !concurrency.tryAcquire()) {
        if (!oneway) connection.respondError(id, serializer, refusal(`${target.method.name}: ${concurrency.limit} calls are already running (concurrency limit)`, concurrencyLimited));
        return;
      }
      if (guard.rateLimiter !== undefined) {
        delayMs = guard.rateLimiter.tryAcquire(readAt);
        if (delayMs < 0) {
          concurrency?.release();
          if (!oneway) connection.respondError(id, serializer, refusal(`${target.method.name}: rate limit exceeded`, rateLimited));
          return;
        }
      }
    }
    let args: unknown[];
    let metadata: Metadata;
    try {
      const { source, metadataStart, bodyStart } = frame;
      const decoded = serializer.decode(source, bodyStart, frame.bodyEnd);
      if (!Array.isArray(decoded)) throw new FarcallError("invalid_argument", "request body is not an argument list");
      args = decoded;
      metadata = bodyStart > metadataStart ? decodeMetadata(serializer, source, metadataStart, bodyStart) : emptyMetadata;
    } catch (error) {
      guard?.concurrency?.release();
      if (!oneway) connection.respondError(id, serializer, FarcallError.from(error, "invalid_argument"));
      return;
    }
    const deadline = frame.timeoutMs > 0 ? readAt + frame.timeoutMs : Infinity;
    const context = new ServerCallContext(target.definition.name, target.method.name, metadata, deadline, connection, this.#wheel);
    // The context goes first: whatever the consumer sends lands after it, never in its place.
    args.unshift(context);
    this.#inFlight++;
    connection.callStarted();
    if (delayMs > 0) {
      const turn = readAt + delayMs;
      if (deadline <= turn) {
        this.#finish(context, target, id, oneway, serializer, new FarcallError("deadline_exceeded", `the call's deadline comes before its turn in the rate limiter (${delayMs} ms away)`), true);
        return;
      }
      const call = new DelayedCall(turn, this.#runDelayed, context, target, args, id, oneway, serializer);
      this.#delayed.add(call);
      this.#wheel.add(call);
      return;
    }
    this.#run(context, target, args, id, oneway, serializer);
  }

  /**
   * Server-wide load shedding: the cap on calls running, then the admission probability. Answers
   * (unless oneway) and returns false when the request is refused.
   */
  #admit(id: number, oneway: boolean, serializer: Serializer, connection: ServerConnection, shedding: ResolvedLoadShedding): boolean {
    if (this.#inFlight >= shedding.maxConcurrentCalls) {
      this.#overCap++;
      if (!oneway) connection.respondError(id, serializer, refusal(`${this.#inFlight} calls are already running on this provider (loadShedding.maxConcurrentCalls ${shedding.maxConcurrentCalls})`, overloadedNow));
      return false;
    }
    const shedder = this.#shedder as LoadShedder;
    if (shedder.admit()) return true;
    if (!oneway) {
      const message = `the provider is overloaded (admitting ${Math.round(shedder.admissionProbability * 100)}% of requests)`;
      connection.respondError(id, serializer, refusal(message, this.#shedDetails as Readonly<Record<string, unknown>>));
    }
    return false;
  }

  /** A delayed call's turn: run it, unless its deadline passed or its consumer left meanwhile. */
  #onTurn(call: DelayedCall): void {
    if (!this.#delayed.delete(call)) return;
    const { context, target, id, oneway, serializer } = call;
    if (Date.now() >= context.deadline) {
      this.#finish(context, target, id, oneway, serializer, new FarcallError("deadline_exceeded", "the call's deadline passed while it waited for its turn in the rate limiter"), true);
    } else if (!oneway && context.connection.closed) {
      this.#finish(context, target, id, oneway, serializer, new FarcallError("canceled", "the consumer's connection closed"), true);
    } else {
      this.#run(context, target, call.args, id, oneway, serializer);
    }
  }

  /** Runs an admitted call (counted in flight, `args` starting with its context) and replies once it settles. */
  #run(context: ServerCallContext, target: Target, args: unknown[], id: number, oneway: boolean, serializer: Serializer): void {
    let result: unknown;
    let then: unknown;
    try {
      result = target.fn.apply(target.self, args);
      // Reading `then` may run a getter: it is part of the implementation's outcome.
      if ((typeof result === "object" && result !== null) || typeof result === "function") then = (result as { then?: unknown }).then;
    } catch (error) {
      this.#finish(context, target, id, oneway, serializer, error, true);
      return;
    }
    if (typeof then !== "function") {
      this.#finish(context, target, id, oneway, serializer, result, false);
      return;
    }
    // A thenable may call both callbacks, call them twice, or throw: `Promise.resolve` settles once.
    try {
      Promise.resolve(result).then(
        (value) => this.#finish(context, target, id, oneway, serializer, value, false),
        (error: unknown) => this.#finish(context, target, id, oneway, serializer, error, true),
      );
    } catch (error) {
      this.#finish(context, target, id, oneway, serializer, error, true);
    }
  }

  /** The target of the frame's route, through the connection's one-entry cache; no body is read. */
  #route(frame: ReceivedFrame, connection: ServerConnection): Target | undefined {
    const { source, routeStart, metadataStart } = frame;
    const length = metadataStart - routeStart;
    const last = connection.lastRoute;
    if (last !== undefined && last.length === length) {
      let i = 0;
      while (i < length && last[i] === source[routeStart + i]) i++;
      if (i === length) return connection.lastRouteTarget as Target;
    }
    // The route key is the route's bytes as latin1 (see routeKey): same string, no view needed.
    const target = this.#options.table.get(source.toString("latin1", routeStart, metadataStart));
    if (target !== undefined) {
      connection.lastRoute = Uint8Array.prototype.slice.call(source, routeStart, metadataStart);
      connection.lastRouteTarget = target;
    }
    return target;
  }

  /**
   * Replies (unless oneway), releases the method's concurrency permit and updates the counters,
   * exactly once per call (`context.settled` guards against a second outcome). Never throws.
   */
  #finish(context: ServerCallContext, target: Target, id: number, oneway: boolean, serializer: Serializer, outcome: unknown, failed: boolean): void {
    if (context.settled) return;
    context.release();
    const connection = context.connection;
    try {
      if (!oneway) {
        if (failed) connection.respondError(id, serializer, toWireError(outcome));
        else {
          const reporter = this.#loadReporter;
          if (reporter !== undefined && reporter.metadata !== undefined && connection.lastReadAt - connection.loadReportedAt >= reporter.intervalMs) {
            connection.loadReportedAt = connection.lastReadAt;
            connection.respond(id, serializer, outcome, reporter.metadata);
          } else {
            connection.respond(id, serializer, outcome);
          }
        }
      }
    } catch {
      // respond and respondError already turn every failure into an error reply; nothing is left to send.
    } finally {
      target.guard?.concurrency?.release();
      connection.callFinished();
      if (--this.#inFlight === 0) this.#checkDrained();
    }
  }
}

function unimplemented(frame: Frame): FarcallError {
  const route = Buffer.from(frame.route).toString("utf8").split("\u0000");
  return new FarcallError("unimplemented", `no provider here for ${route[0] ?? "?"}:${route[1] ?? "?"}#${route[3] ?? "?"} (group ${JSON.stringify(route[2] ?? "")})`);
}
