import { codeToStatus, FarcallError, type Metadata } from "../../errors/farcall-error.js";
import type { Serializer } from "../../serialization/serializer.js";
import type { Link } from "../../transport/transport.js";
import { FrameFlags, type ReceivedFrame } from "./frame.js";
import { FrameDecoder } from "./frame-decoder.js";
import { flushBatchBytes, FrameWriter } from "./frame-encoder.js";
import { encodeErrorBody, encodeMetadata } from "./payload.js";

/** Receives the request frames of a {@link ServerConnection}; must read the frame's views synchronously. */
export type RequestHandler = (frame: ReceivedFrame, connection: ServerConnection) => void;

/** Options of {@link ServerConnection}; {@link Server} resolves and validates them. */
export interface ServerConnectionOptions {
  /** Largest frame accepted or written, in bytes. */
  readonly maxFrameBytes: number;
  /** Serializer used for errors when the request's own serializer is unknown. */
  readonly fallbackSerializer: Serializer;
  /** Send the provider's stack trace with `application` errors. */
  readonly includeStack: boolean;
  /**
   * High-water mark of reply bytes the link holds unsent, in bytes. When a flush leaves more than
   * this queued (the consumer is not reading), the connection stops reading requests
   * (`link.pause()`) until the link drains.
   */
  readonly maxBufferedBytes: number;
  /**
   * Heartbeat pings answered per second (a token bucket holding at most this many, so bursts of
   * up to this many are answered). Pings beyond it are ignored: no pong is written.
   */
  readonly maxPingsPerSecond: number;
  readonly onRequest: RequestHandler;
  readonly onClose: (connection: ServerConnection) => void;
}

/** How long, in ms, a connection that received a malformed frame waits for its running calls before it is destroyed. */
const malformedGraceMs = 1000;

/**
 * The provider end of one connection: decodes frames, answers heartbeats (at most
 * `maxPingsPerSecond`), writes the replies of one tick with one `write`, stops reading while the
 * consumer leaves more than `maxBufferedBytes` unread, and announces shutdown with a `closing`
 * frame. A malformed frame gets an error reply to request id 0 (`internal`, or `resource_exhausted`
 * for an oversized frame); nothing more is read, the replies of calls already running are still
 * written, and the link is ended once they are (destroyed after 1 s at the latest). Nothing here
 * throws into the transport.
 */
export class ServerConnection {
  readonly #link: Link;
  readonly #options: ServerConnectionOptions;
  readonly #decoder: FrameDecoder;
  readonly #writer: FrameWriter;
  #flushScheduled = false;
  #closed = false;
  /** Reading stopped because the consumer leaves replies unread. */
  #paused = false;
  /** A malformed frame arrived: nothing more is read, the link ends when the running calls have replied. */
  #malformed = false;
  #ended = false;
  #malformedTimer: NodeJS.Timeout | undefined;
  #inFlight = 0;
  #pingTokens: number;
  #pingRefilledAt = Date.now();
  #closingSentAt: number | undefined;
  /** Epoch ms of the last byte read. */
  lastReadAt = Date.now();
  /** When a reply last carried the provider's load report (see `server/load-reporter.ts`), epoch ms. */
  loadReportedAt = 0;
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
    this.#pingTokens = options.maxPingsPerSecond;
    this.#decoder = new FrameDecoder({ maxFrameBytes: options.maxFrameBytes });
    this.#writer = new FrameWriter({ maxFrameBytes: options.maxFrameBytes });
    link.onData((chunk) => this.#onData(chunk));
    link.onDrain(() => this.#onDrain());
    link.onClose(() => this.#onClosed());
  }

  get remote(): string {
    return this.#link.remote;
  }
  get closed(): boolean {
    return this.#closed;
  }
  /** Requests being executed (counted by the request handler through {@link callStarted} and {@link callFinished}). */
  get inFlight(): number {
    return this.#inFlight;
  }
  /** Reply bytes written but not yet taken by the kernel, including this tick's unflushed frames. */
  get bufferedBytes(): number {
    return this.#closed ? 0 : this.#link.bufferedBytes + this.#writer.size;
  }
  /** Epoch ms at which `closing` was sent, or undefined. */
  get closingSentAt(): number | undefined {
    return this.#closingSentAt;
  }

  /** A request starts running on this connection. */
  callStarted(): void {
    this.#inFlight++;
  }

  /** A request finished (after its reply, if any, was written). */
  callFinished(): void {
    this.#inFlight--;
    if (this.#malformed) this.#endWhenIdle();
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

  /**
   * Writes an error reply with the error's code (a code outside `codes` is sent as `unknown`).
   * Never throws: an error record that cannot be encoded or sent is replaced by its code alone.
   */
  respondError(requestId: number, serializer: Serializer, error: FarcallError): void {
    if (this.#closed) return;
    let status = codeToStatus("unknown");
    try {
      status = codeToStatus(error.code) || status;
      const body = encodeErrorBody(serializer, error, this.#options.includeStack);
      const meta = encodeMetadata(serializer, error.metadata);
      this.#writer.writeResponse(requestId, FrameFlags.response, serializer.id, status, meta, body);
    } catch {
      // An error record too large (or too strange) to send: send the code alone.
      try {
        this.#writer.writeResponse(requestId, FrameFlags.response, serializer.id, status, undefined, serializer.encode({ message: "error too large to send" }));
      } catch {
        return; // a serializer that cannot encode a plain record: the consumer's deadline ends the call
      }
    }
    this.#scheduleFlush();
  }

  /** Tells the consumer to send nothing new on this connection. Sent once; later calls do nothing. */
  sendClosing(): void {
    if (this.#closed || this.#closingSentAt !== undefined) return;
    this.#closingSentAt = Date.now();
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
    // A batch that has grown past flushBatchBytes goes out now: the peer starts on it while this
    // side is still producing the rest, instead of both sides taking turns (see frame-encoder.ts).
    if (this.#writer.size >= flushBatchBytes) {
      this.#doFlush();
      return;
    }
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    process.nextTick(this.#flush);
  }

  #doFlush(): void {
    this.#flushScheduled = false;
    if (this.#closed || this.#writer.size === 0) return;
    this.#link.write(this.#writer.take());
    // Backpressure: a consumer that does not read its replies gets no more requests read. The
    // write that crossed the mark returned false, so the link emits `drain` once it empties.
    if (!this.#paused && this.#link.bufferedBytes > this.#options.maxBufferedBytes) {
      this.#paused = true;
      this.#link.pause();
    }
  }

  #onDrain(): void {
    if (!this.#paused || this.#closed || this.#link.bufferedBytes > this.#options.maxBufferedBytes) return;
    this.#paused = false;
    this.#link.resume();
  }

  #onData(chunk: Buffer): void {
    if (this.#malformed) return; // the decoder's state is lost: nothing after a malformed frame is read
    this.lastReadAt = Date.now();
    try {
      this.#decoder.push(chunk, (frame) => this.#onFrame(frame));
    } catch (error) {
      this.#onMalformed(error);
    }
  }

  #onMalformed(error: unknown): void {
    this.#malformed = true;
    const reason = FarcallError.from(error, "internal");
    // Best effort: tell the peer why before closing.
    this.respondError(0, this.#options.fallbackSerializer, new FarcallError(reason.code, `malformed frame: ${reason.message}`));
    this.#malformedTimer = setTimeout(() => this.close(), malformedGraceMs);
    this.#malformedTimer.unref();
    this.#endWhenIdle();
  }

  /** Ends the link once the calls dispatched before the malformed frame have replied. */
  #endWhenIdle(): void {
    if (this.#ended || this.#inFlight > 0 || this.#closed) return;
    this.#ended = true;
    this.#doFlush();
    this.#link.end();
  }

  #onFrame(frame: ReceivedFrame): void {
    const flags = frame.flags;
    if (flags & FrameFlags.heartbeat) {
      if (!(flags & FrameFlags.response) && this.#takePingToken()) {
        this.#writer.writeHeartbeat(frame.requestId, true);
        this.#scheduleFlush();
      }
      return;
    }
    if (flags & (FrameFlags.response | FrameFlags.closing)) return; // nothing a consumer should send; ignored
    this.#options.onRequest(frame, this);
  }

  /** Token bucket of `maxPingsPerSecond`; `lastReadAt` is the time of the chunk holding the ping. */
  #takePingToken(): boolean {
    const rate = this.#options.maxPingsPerSecond;
    const now = this.lastReadAt;
    this.#pingTokens = Math.min(rate, this.#pingTokens + ((now - this.#pingRefilledAt) * rate) / 1000);
    this.#pingRefilledAt = now;
    if (this.#pingTokens < 1) return false;
    this.#pingTokens -= 1;
    return true;
  }

  #closeNotified = false;
  #onClosedOnce(): void {
    if (this.#closeNotified) return;
    this.#closeNotified = true;
    if (this.#malformedTimer !== undefined) clearTimeout(this.#malformedTimer);
    for (const abort of this.aborts) abort();
    this.aborts.clear();
    this.#options.onClose(this);
  }

  #onClosed(): void {
    this.#closed = true;
    this.#onClosedOnce();
  }
}
