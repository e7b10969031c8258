import { codeToStatus, FarcallError, type Metadata } from "../../errors/farcall-error.js";
import type { Serializer } from "../../serialization/serializer.js";
import type { Link } from "../../transport/transport.js";
import { FrameFlags, type ReceivedFrame } from "./frame.js";
import { FrameDecoder } from "./frame-decoder.js";
import { FrameWriter } from "./frame-encoder.js";
import { encodeErrorBody, encodeMetadata } from "./payload.js";

/** Receives the request frames of a {@link ServerConnection}; must read the frame's views synchronously. */
export type RequestHandler = (frame: ReceivedFrame, connection: ServerConnection) => void;

/** Options of {@link ServerConnection}. */
export interface ServerConnectionOptions {
  readonly maxFrameBytes: number;
  /** Serializer used for errors when the request's own serializer is unknown. */
  readonly fallbackSerializer: Serializer;
  /** Send the provider's stack trace with `application` errors. */
  readonly includeStack: boolean;
  readonly onRequest: RequestHandler;
  readonly onClose: (connection: ServerConnection) => void;
}

/**
 * The provider end of one connection: decodes frames, answers heartbeats, writes the replies of one
 * tick with one `write`, and announces shutdown with a `closing` frame. A malformed frame gets an
 * `internal` error (when it can be addressed) and closes the connection; the process never throws.
 */
export class ServerConnection {
  readonly #link: Link;
  readonly #options: ServerConnectionOptions;
  readonly #decoder: FrameDecoder;
  readonly #writer: FrameWriter;
  #flushScheduled = false;
  #closed = false;
  /** Epoch ms of the last byte read. */
  lastReadAt = Date.now();
  /** Requests being executed. */
  inFlight = 0;
  /**
   * The request handler's one-entry route cache: the last route's bytes and what they resolved to.
   * Consecutive requests on a connection mostly share a route; comparing ~30 bytes beats building
   * a string key and hashing it.
   */
  lastRoute: Uint8Array | undefined;
  lastRouteTarget: unknown;
  /** Abort hooks of running calls whose context signal was used. */
  readonly aborts = new Set<() => void>();
  readonly #flush = (): void => this.#doFlush();

  constructor(link: Link, options: ServerConnectionOptions) {
    this.#link = link;
    this.#options = options;
    this.#decoder = new FrameDecoder({ maxFrameBytes: options.maxFrameBytes });
    this.#writer = new FrameWriter({ maxFrameBytes: options.maxFrameBytes });
    link.onData((chunk) => this.#onData(chunk));
    link.onClose(() => this.#onClosed());
  }

  get remote(): string {
    return this.#link.remote;
  }
  get closed(): boolean {
    return this.#closed;
  }

  /** Writes a success reply. A value the serializer cannot encode becomes an `internal` error reply. */
  respond(requestId: number, serializer: Serializer, value: unknown, metadata?: Metadata): void {
    if (this.#closed) return;
    try {
      const body = serializer.encode(value);
      const meta = encodeMetadata(serializer, metadata);
      this.#writer.writeResponse(requestId, FrameFlags.response, serializer.id, 0, meta, body);
    } catch (error) {
      // Nothing was written (the writer checks before writing): answer with the reason instead.
      const reason = FarcallError.from(error, "internal");
      const code = reason.code === "resource_exhausted" ? "resource_exhausted" : "internal";
      this.respondError(requestId, serializer, new FarcallError(code, `cannot send the reply: ${reason.message}`));
      return;
    }
    this.#scheduleFlush();
  }

  /** Writes an error reply with the error's code. */
  respondError(requestId: number, serializer: Serializer, error: FarcallError): void {
    if (this.#closed) return;
    const status = codeToStatus(error.code);
    try {
      const body = encodeErrorBody(serializer, error, this.#options.includeStack);
      const meta = encodeMetadata(serializer, error.metadata);
      this.#writer.writeResponse(requestId, FrameFlags.response, serializer.id, status, meta, body);
    } catch {
      // An error record too large to send (a huge message or metadata): send the code alone.
      this.#writer.writeResponse(requestId, FrameFlags.response, serializer.id, status, undefined, serializer.encode({ message: "error too large to send" }));
    }
    this.#scheduleFlush();
  }

  /** Tells the consumer to send nothing new on this connection. */
  sendClosing(): void {
    if (this.#closed) return;
    this.#writer.writeClosing();
    this.#scheduleFlush();
  }

  /** Closes at once and aborts running calls' signals. Idempotent. */
  close(): void {
    this.#doFlush();
    this.#link.destroy();
    this.#onClosed();
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    process.nextTick(this.#flush);
  }

  #doFlush(): void {
    this.#flushScheduled = false;
    if (this.#closed || this.#writer.size === 0) return;
    this.#link.write(this.#writer.take());
  }

  #onData(chunk: Buffer): void {
    this.lastReadAt = Date.now();
    try {
      this.#decoder.push(chunk, (frame) => this.#onFrame(frame));
    } catch (error) {
      const reason = FarcallError.from(error, "internal");
      // Best effort: tell the peer why before closing.
      this.respondError(0, this.#options.fallbackSerializer, new FarcallError(reason.code, `malformed frame: ${reason.message}`));
      this.#doFlush();
      this.#link.end();
      setTimeout(() => this.close(), 1000).unref();
      this.#closed = true;
      this.#onClosedOnce();
    }
  }

  #onFrame(frame: ReceivedFrame): void {
    const flags = frame.flags;
    if (flags & FrameFlags.heartbeat) {
      if (!(flags & FrameFlags.response)) {
        this.#writer.writeHeartbeat(frame.requestId, true);
        this.#scheduleFlush();
      }
      return;
    }
    if (flags & (FrameFlags.response | FrameFlags.closing)) return; // nothing a consumer should send; ignored
    this.#options.onRequest(frame, this);
  }

  #closeNotified = false;
  #onClosedOnce(): void {
    if (this.#closeNotified) return;
    this.#closeNotified = true;
    for (const abort of this.aborts) abort();
    this.aborts.clear();
    this.#options.onClose(this);
  }

  #onClosed(): void {
    this.#closed = true;
    this.#onClosedOnce();
  }
}
