import { FarcallError, type Metadata } from "../errors/farcall-error.js";
import type { Frame, ReceivedFrame } from "../protocol/binary/frame.js";
import { decodeMetadata } from "../protocol/binary/payload.js";
import { ServerConnection } from "../protocol/binary/server-connection.js";
import type { Serializer } from "../serialization/serializer.js";
import { TimingWheel } from "../timing/timing-wheel.js";
import type { Address, Listener, Transport } from "../transport/transport.js";
import { ServerCallContext } from "./server-call-context.js";
import type { ServiceTable, Target } from "./service-table.js";

/** Options of {@link Server}. */
export interface ServerOptions {
  readonly transport: Transport;
  readonly table: ServiceTable;
  /** Serializers accepted in requests, by wire id. */
  readonly serializers: ReadonlyMap<number, Serializer>;
  readonly fallbackSerializer: Serializer;
  /** Largest frame accepted, in bytes, checked on the header. */
  readonly maxFrameBytes: number;
  /** Close connections from which nothing was read for this long, in ms (0 disables). */
  readonly idleTimeoutMs: number;
  /** Send stack traces with `application` errors. */
  readonly includeStack: boolean;
}

const emptyMetadata: Metadata = Object.freeze({});

/**
 * The provider's server: accepts connections, routes each request by its header (an unknown route
 * is answered `unimplemented` without decoding the body), runs the implementation and replies.
 */
export class Server {
  readonly #options: ServerOptions;
  readonly #connections = new Set<ServerConnection>();
  readonly #wheel = new TimingWheel();
  #listener: Listener | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  #draining = false;
  #drained: (() => void) | undefined;
  #inFlight = 0;

  constructor(options: ServerOptions) {
    this.#options = options;
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

  /** Starts listening. @throws FarcallError `unavailable` when the address cannot be bound. */
  async listen(address: Address): Promise<Address> {
    this.#listener = await this.#options.transport.listen(address, (link) => {
      if (this.#draining) {
        link.destroy();
        return;
      }
      const connection = new ServerConnection(link, {
        maxFrameBytes: this.#options.maxFrameBytes,
        fallbackSerializer: this.#options.fallbackSerializer,
        includeStack: this.#options.includeStack,
        onRequest: (frame, conn) => this.#onRequest(frame, conn),
        onClose: (conn) => {
          this.#connections.delete(conn);
          this.#checkDrained();
        },
      });
      this.#connections.add(connection);
    });
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
   * frame on the wire are still served. Whatever remains at the deadline is closed (running calls'
   * signals abort).
   */
  async close(graceMs: number): Promise<void> {
    if (!this.#draining) {
      this.#draining = true;
      for (const connection of this.#connections) connection.sendClosing();
    }
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
    for (const connection of this.#connections) connection.close();
    this.#connections.clear();
    if (this.#idleTimer !== undefined) clearInterval(this.#idleTimer);
    this.#wheel.stop();
    await listenerClosed;
  }

  /** Nothing running and no consumer connected. */
  #settled(): boolean {
    return this.#inFlight === 0 && this.#connections.size === 0;
  }

  #checkDrained(): void {
    if (this.#drained !== undefined && this.#settled()) this.#drained();
  }

  #closeIdle(idleMs: number): void {
    const now = Date.now();
    for (const connection of this.#connections) {
      if (connection.inFlight === 0 && now - connection.lastReadAt >= idleMs) connection.close();
    }
  }

  #onRequest(frame: ReceivedFrame, connection: ServerConnection): void {
    const id = frame.requestId;
    const oneway = (frame.flags & 0x02) !== 0;
    const target = this.#route(frame, connection);
    const serializer = this.#options.serializers.get(frame.serializerId);
    if (target === undefined) {
      if (!oneway) connection.respondError(id, serializer ?? this.#options.fallbackSerializer, unimplemented(frame));
      return;
    }
    if (serializer === undefined) {
      if (!oneway) connection.respondError(id, this.#options.fallbackSerializer, new FarcallError("invalid_argument", `unknown serializer id ${frame.serializerId}`));
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
    const deadline = frame.timeoutMs > 0 ? Date.now() + frame.timeoutMs : Infinity;
    const context = new ServerCallContext(target.definition.name, target.method.name, metadata, deadline, connection, this.#wheel);
    while (args.length < target.arity) args.push(undefined);
    args.push(context);
    this.#inFlight++;
    connection.inFlight++;
    let result: unknown;
    try {
      result = target.fn.apply(target.self, args);
    } catch (error) {
      this.#finish(connection, context, id, oneway, serializer, undefined, error, target);
      return;
    }
    if (isPromiseLike(result)) {
      result.then(
        (value) => this.#finish(connection, context, id, oneway, serializer, value, undefined, undefined),
        (error: unknown) => this.#finish(connection, context, id, oneway, serializer, undefined, error, target),
      );
    } else {
      this.#finish(connection, context, id, oneway, serializer, result, undefined, undefined);
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

  #finish(
    connection: ServerConnection,
    context: ServerCallContext,
    id: number,
    oneway: boolean,
    serializer: Serializer,
    value: unknown,
    error: unknown,
    failed: Target | undefined,
  ): void {
    context.release();
    connection.inFlight--;
    if (!oneway) {
      if (failed === undefined) connection.respond(id, serializer, value);
      else connection.respondError(id, serializer, toWireError(error));
    }
    if (--this.#inFlight === 0) this.#checkDrained();
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof value === "object" && value !== null && typeof (value as { then?: unknown }).then === "function";
}

function unimplemented(frame: Frame): FarcallError {
  const route = Buffer.from(frame.route).toString("utf8").split("\u0000");
  return new FarcallError("unimplemented", `no provider here for ${route[0] ?? "?"}:${route[1] ?? "?"}#${route[3] ?? "?"} (group ${JSON.stringify(route[2] ?? "")})`);
}

/** What a throwing implementation sends: its `FarcallError` as is, anything else as `application`. */
function toWireError(error: unknown): FarcallError {
  if (error instanceof FarcallError) return error;
  if (error instanceof Error) {
    return new FarcallError("application", error.message, { details: { name: error.name }, cause: error });
  }
  return new FarcallError("application", String(error), { details: { name: "Error" }, cause: error });
}
