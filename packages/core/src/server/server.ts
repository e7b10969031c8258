import { badOption, FarcallError, type Metadata } from "../errors/farcall-error.js";
import { type Frame, FrameFlags, type ReceivedFrame } from "../protocol/binary/frame.js";
import { decodeMetadata } from "../protocol/binary/payload.js";
import { ServerConnection } from "../protocol/binary/server-connection.js";
import type { Serializer } from "../serialization/serializer.js";
import { TimingWheel } from "../timing/timing-wheel.js";
import type { Address, Link, Listener, Transport } from "../transport/transport.js";
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
}

/** A snapshot of a {@link Server}'s load. */
export interface ServerStats {
  /** Open connections. */
  readonly connections: number;
  /** Calls being executed. */
  readonly inFlight: number;
  /** Reply bytes written by the server and not yet taken by the kernel, summed over connections. */
  readonly bufferedBytes: number;
}

export const defaultMaxBufferedBytes = 8 * 1024 * 1024;
export const defaultMaxConcurrentCallsPerConnection = 1024;
export const defaultMaxPingsPerSecond = 20;

const emptyMetadata: Metadata = Object.freeze({});

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

  /** @throws FarcallError `invalid_argument` (reason `bad_option`) for a limit that is not a positive integer. */
  constructor(options: ServerOptions) {
    this.#options = options;
    this.#maxBufferedBytes = positiveInteger("maxBufferedBytes", options.maxBufferedBytes, defaultMaxBufferedBytes);
    this.#maxConcurrentCalls = positiveInteger("maxConcurrentCallsPerConnection", options.maxConcurrentCallsPerConnection, defaultMaxConcurrentCallsPerConnection);
    this.#maxPingsPerSecond = positiveInteger("maxPingsPerSecond", options.maxPingsPerSecond, defaultMaxPingsPerSecond);
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

  /** Open connections, running calls and unsent reply bytes, read now. */
  stats(): ServerStats {
    let bufferedBytes = 0;
    for (const connection of this.#connections) bufferedBytes += connection.bufferedBytes;
    return { connections: this.#connections.size, inFlight: this.#inFlight, bufferedBytes };
  }

  /** Starts listening. @throws FarcallError `unavailable` when the address cannot be bound. */
  async listen(address: Address): Promise<Address> {
    this.#listener = await this.#options.transport.listen(address, (link) => this.#accept(link));
    const idle = this.#options.idleTimeoutMs;
    if (idle > 0) {
      this.#idleTimer = setInterval(() => this.#closeIdle(idle), Math.max(100, idle / 4));
      this.#idleTimer.unref();
    }
    return this.#listener.address;
  }

  /**
   * Graceful shutdown: stop accepting, send `closing` on every connection, then wait until every
   * consumer has closed its connection (a consumer closes once its calls on it have settled) and
   * every running call has finished, or until `graceMs` passes. Requests that cross the `closing`
   * frame on the wire are still served, and so is a link the transport hands over late (it gets
   * `closing` at once and counts like the others). Whatever remains at the deadline is closed
   * (running calls' signals abort). Idempotent: later calls return the first call's promise (and
   * their `graceMs` is ignored).
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
    let args: unknown[];
    let metadata: Metadata;
    try {
      const { source, metadataStart, bodyStart } = frame;
      const decoded = serializer.decode(source, bodyStart, frame.bodyEnd);
      if (!Array.isArray(decoded)) throw new FarcallError("invalid_argument", "request body is not an argument list");
      args = decoded;
      metadata = bodyStart > metadataStart ? decodeMetadata(serializer, source, metadataStart, bodyStart) : emptyMetadata;
    } catch (error) {
      if (!oneway) connection.respondError(id, serializer, FarcallError.from(error, "invalid_argument"));
      return;
    }
    // Measured from when the chunk holding the request was read (one clock read per chunk).
    const deadline = frame.timeoutMs > 0 ? connection.lastReadAt + frame.timeoutMs : Infinity;
    const context = new ServerCallContext(target.definition.name, target.method.name, metadata, deadline, connection, this.#wheel);
    // The context goes first: whatever the consumer sends lands after it, never in its place.
    args.unshift(context);
    this.#inFlight++;
    connection.callStarted();
    let result: unknown;
    let then: unknown;
    try {
      result = target.fn.apply(target.self, args);
      // Reading `then` may run a getter: it is part of the implementation's outcome.
      if ((typeof result === "object" && result !== null) || typeof result === "function") then = (result as { then?: unknown }).then;
    } catch (error) {
      this.#finish(connection, context, id, oneway, serializer, error, true);
      return;
    }
    if (typeof then !== "function") {
      this.#finish(connection, context, id, oneway, serializer, result, false);
      return;
    }
    // A thenable may call both callbacks, call them twice, or throw: `Promise.resolve` settles once.
    try {
      Promise.resolve(result).then(
        (value) => this.#finish(connection, context, id, oneway, serializer, value, false),
        (error: unknown) => this.#finish(connection, context, id, oneway, serializer, error, true),
      );
    } catch (error) {
      this.#finish(connection, context, id, oneway, serializer, error, true);
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
   * Replies (unless oneway) and updates the counters, exactly once per call (`context.settled`
   * guards against a second outcome). Never throws.
   */
  #finish(connection: ServerConnection, context: ServerCallContext, id: number, oneway: boolean, serializer: Serializer, outcome: unknown, failed: boolean): void {
    if (context.settled) return;
    context.release();
    try {
      if (!oneway) {
        if (failed) connection.respondError(id, serializer, toWireError(outcome));
        else connection.respond(id, serializer, outcome);
      }
    } catch {
      // respond and respondError already turn every failure into an error reply; nothing is left to send.
    } finally {
      connection.callFinished();
      if (--this.#inFlight === 0) this.#checkDrained();
    }
  }
}

function unimplemented(frame: Frame): FarcallError {
  const route = Buffer.from(frame.route).toString("utf8").split("\u0000");
  return new FarcallError("unimplemented", `no provider here for ${route[0] ?? "?"}:${route[1] ?? "?"}#${route[3] ?? "?"} (group ${JSON.stringify(route[2] ?? "")})`);
}
