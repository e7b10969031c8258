import type { AttemptObserver } from "../../call/attempt-observer.js";
import type { Call, Reply } from "../../call/call.js";
import { type Code, FarcallError, statusToCode } from "../../errors/farcall-error.js";
import type { Serializer } from "../../serialization/serializer.js";
import { systemClock, type Clock } from "../../timing/clock.js";
import { tickNow } from "../../timing/tick-clock.js";
import type { TimerEntry, TimingWheel } from "../../timing/timing-wheel.js";
import type { Link } from "../../transport/transport.js";
import { FrameFlags, type ReceivedFrame } from "./frame.js";
import { FrameDecoder } from "./frame-decoder.js";
import { flushBatchBytes, FrameWriter } from "./frame-encoder.js";
import { Liveness } from "./liveness.js";
import { PendingTable } from "./pending-table.js";
import { decodeErrorBody, decodeMetadata, encodeMetadata } from "./payload.js";
import { loadMetadataKey, parseLoad, type ProviderLoad } from "./provider-load.js";

/** Options of {@link ClientConnection}. */
export interface ClientConnectionOptions {
  readonly serializer: Serializer;
  /** Serializers a response may use, by wire id; must include `serializer`. */
  readonly serializers: ReadonlyMap<number, Serializer>;
  /** Largest frame accepted from the peer, in bytes (checked on the header). */
  readonly maxFrameBytes: number;
  /** Ping after this many ms without reading anything; the peer is dead after 3 intervals. 0 disables. */
  readonly heartbeatIntervalMs: number;
  /** Most calls awaiting a reply at once; more are rejected with `resource_exhausted`. */
  readonly maxPendingCalls: number;
  /**
   * Most bytes queued towards the provider that its socket has not taken (a provider that stops
   * reading); new calls are rejected with `resource_exhausted`, `sent: false`, beyond it.
   */
  readonly maxBufferedBytes: number;
  readonly wheel: TimingWheel;
  readonly clock?: Clock;
  /** Where the provider's load reports (reply metadata `farcall-load`) go; none: ignored. */
  readonly load?: ProviderLoad;
}

/**
 * A call awaiting its reply; also its own deadline entry in the timing wheel and the carrier of its
 * attempt's observer (no extra allocation for either).
 */
class Pending implements TimerEntry {
  wheelSlot = -1;
  wheelNext: TimerEntry | undefined = undefined;
  wheelPrev: TimerEntry | undefined = undefined;
  onAbort: (() => void) | undefined = undefined;
  constructor(
    readonly connection: ClientConnection,
    readonly id: number,
    readonly onReply: (reply: Reply) => void,
    readonly onError: (error: FarcallError) => void,
    /** Flush generation in which the request is written: sent once `flushes > gen`. */
    readonly gen: number,
    readonly deadline: number,
    readonly timeoutMs: number,
    readonly signal: AbortSignal | undefined,
    readonly observer: AttemptObserver | undefined,
    readonly startedAt: number,
  ) {}
  expire(): void {
    this.connection.fail(this.id, "deadline_exceeded", `deadline of ${this.timeoutMs} ms exceeded`);
  }
  resolve(reply: Reply): void {
    if (this.observer !== undefined) this.observer.settled(this.startedAt, undefined);
    this.onReply(reply);
  }
  reject(error: FarcallError): void {
    if (this.observer !== undefined) this.observer.settled(this.startedAt, error);
    this.onError(error);
  }
}

/**
 * The consumer end of one long-lived, multiplexed TCP connection. Calls are matched to replies by
 * request id; the requests of one tick are written with one `write`; replies and errors are decoded
 * here. When the link drops, every pending call fails at once with `unavailable` (`sent` tells
 * whether its bytes had left). A `closing` frame from the provider makes `onClosing` fire; pending
 * calls still complete.
 */
export class ClientConnection {
  readonly #link: Link;
  readonly #address: string;
  readonly #options: ClientConnectionOptions;
  readonly #clock: Clock;
  readonly #pending = new PendingTable<Pending>();
  readonly #writer: FrameWriter;
  readonly #decoder: FrameDecoder;
  #nextId = 1;
  /** Set once request ids wrapped around: from then on an id still pending is skipped. */
  #wrapped = false;
  #flushes = 0;
  #flushScheduled = false;
  readonly #liveness: Liveness | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #closed: FarcallError | undefined;
  #closing = false;
  #closeListeners: Array<(error: FarcallError) => void> = [];
  #closingListeners: Array<() => void> = [];
  readonly #flush = (): void => this.#doFlush();

  /**
   * @param address the pool's key for this provider (`host:port` as the registry reports it); errors
   *   carry it as `details.address` so failover can exclude the provider.
   */
  constructor(link: Link, options: ClientConnectionOptions, address: string = link.remote) {
    this.#link = link;
    this.#address = address;
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#decoder = new FrameDecoder({ maxFrameBytes: options.maxFrameBytes });
    this.#writer = new FrameWriter({ maxFrameBytes: options.maxFrameBytes });
    link.onData((chunk) => this.#onData(chunk));
    link.onClose((error) => this.#onLinkClosed(error));
    if (options.heartbeatIntervalMs > 0) {
      this.#liveness = new Liveness(options.heartbeatIntervalMs, this.#clock);
      this.#heartbeat = setInterval(() => this.#checkHeartbeat(), Math.max(1, options.heartbeatIntervalMs / 2));
      this.#heartbeat.unref();
    }
  }

  /** The peer, as `host:port`. */
  get remote(): string {
    return this.#link.remote;
  }
  /** Calls awaiting a reply. */
  get pendingCount(): number {
    return this.#pending.size;
  }
  /** True once the provider announced shutdown or the connection closed: route new calls elsewhere. */
  get closing(): boolean {
    return this.#closing || this.#closed !== undefined;
  }
  get closed(): boolean {
    return this.#closed !== undefined;
  }

  /** Runs `listener` once when the connection is closed, with the reason. */
  onClose(listener: (error: FarcallError) => void): void {
    if (this.#closed) listener(this.#closed);
    else this.#closeListeners.push(listener);
  }
  /** Runs `listener` once when the provider sends `closing`. */
  onClosing(listener: () => void): void {
    this.#closingListeners.push(listener);
  }

  /**
   * Sends `call` to `route` (bytes from `encodeRoute`). Rejects with `unavailable` when the
   * connection is closed or closing (`sent: false`), `deadline_exceeded` at the deadline,
   * `canceled` when the call's signal aborts, or the error the provider returned.
   * @param observer told once, with `startedAt`, when the attempt settles, whichever way
   *   (`observer.started()` was called by the caller). A oneway call settles when it is queued.
   */
  invoke(call: Call, route: Uint8Array, observer?: AttemptObserver, startedAt = 0): Promise<Reply> {
    if (this.#closed || this.#closing) {
      return refuse(new FarcallError("unavailable", `connection to ${this.remote} is closing`, { sent: false, details: { address: this.#address } }), observer, startedAt);
    }
    if (this.#pending.size >= this.#options.maxPendingCalls) {
      const message = `more than ${this.#options.maxPendingCalls} calls pending on ${this.remote}`;
      return refuse(new FarcallError("resource_exhausted", message, { sent: false, details: { address: this.#address } }), observer, startedAt);
    }
    if (this.#link.bufferedBytes + this.#writer.size > this.#options.maxBufferedBytes) {
      const message = `${this.#link.bufferedBytes} bytes are waiting for ${this.remote} to read (maxBufferedBytes ${this.#options.maxBufferedBytes})`;
      return refuse(new FarcallError("resource_exhausted", message, { sent: false, details: { address: this.#address } }), observer, startedAt);
    }
    const signal = call.signal;
    if (signal?.aborted) return refuse(new FarcallError("canceled", "call canceled before it was sent", { sent: false }), observer, startedAt);
    let timeoutMs = 0;
    if (call.deadline !== Infinity) {
      // The consumer enforces the exact deadline itself (wheel); the provider gets the remaining
      // budget, read from the per-burst clock unless a test clock is in use.
      timeoutMs = Math.ceil(call.deadline - (this.#clock === systemClock ? tickNow() : this.#clock.now()));
      if (timeoutMs <= 0) return refuse(new FarcallError("deadline_exceeded", "deadline passed before the call was sent", { sent: false }), observer, startedAt);
    }
    const serializer = this.#options.serializer;
    const id = this.#takeId();
    const oneway = call.ref.oneway;
    // The flush that will carry this request: read before writing, since a batch reaching
    // flushBatchBytes is written (and counted) at once, and a request counted as not yet flushed
    // when it was would be failed with sent: false, and retried even when not idempotent.
    const gen = this.#flushes;
    try {
      const body = serializer.encode(call.args);
      const metadata = encodeMetadata(serializer, call.metadata);
      // Checks every field and the frame size before writing a byte: a failure leaves nothing behind.
      this.#writer.writeRequest(id, oneway ? FrameFlags.oneway : 0, serializer.id, timeoutMs, route, metadata, body);
    } catch (error) {
      return refuse(FarcallError.from(error, "invalid_argument").withSent(false), observer, startedAt);
    }
    this.#scheduleFlush();
    if (oneway) {
      if (observer !== undefined) observer.settled(startedAt, undefined);
      return Promise.resolve(onewayReply);
    }
    return new Promise<Reply>((resolve, reject) => {
      const pending = new Pending(this, id, resolve, reject, gen, call.deadline, timeoutMs, signal, observer, startedAt);
      if (timeoutMs > 0) this.#options.wheel.add(pending);
      if (signal) {
        pending.onAbort = () => this.fail(id, "canceled", "call canceled");
        signal.addEventListener("abort", pending.onAbort, { once: true });
      }
      this.#pending.set(pending);
    });
  }

  /** Closes the connection at once; pending calls fail with `unavailable`. Idempotent. */
  close(reason = "connection closed"): void {
    this.#shutdown(new FarcallError("unavailable", reason));
    this.#link.destroy();
  }

  /** Closes after writing what is queued (oneway calls, pongs): for the provider's `closing`. */
  #closeGracefully(reason: string): void {
    if (this.#closed) return;
    this.#doFlush();
    this.#shutdown(new FarcallError("unavailable", reason));
    this.#link.end();
  }

  /** The next request id: never 0 (reserved), never one still pending after the ids wrapped. */
  #takeId(): number {
    let id = this.#nextId;
    while (this.#wrapped && this.#pending.has(id)) id = id === 0xffffffff ? 1 : id + 1;
    if (id === 0xffffffff) {
      this.#nextId = 1;
      this.#wrapped = true;
    } else {
      this.#nextId = id + 1;
    }
    return id;
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
    this.#flushes++;
  }

  #onData(chunk: Buffer): void {
    this.#liveness?.read(this.#clock.now());
    try {
      this.#decoder.push(chunk, (frame) => this.#onFrame(frame));
    } catch (error) {
      const reason = FarcallError.from(error, "internal");
      this.#shutdown(new FarcallError("unavailable", `malformed data from ${this.remote}: ${reason.message}`, { cause: reason }));
      this.#link.destroy();
    }
  }

  #onFrame(frame: ReceivedFrame): void {
    const flags = frame.flags;
    if (flags & FrameFlags.closing) {
      this.#markClosing();
      return;
    }
    if (flags & FrameFlags.heartbeat) {
      if (!(flags & FrameFlags.response)) {
        this.#writer.writeHeartbeat(frame.requestId, true);
        this.#scheduleFlush();
      }
      return;
    }
    if (!(flags & FrameFlags.response)) throw new FarcallError("internal", "a provider sent a request frame");
    const pending = this.#pending.get(frame.requestId);
    if (pending === undefined) return; // settled already (deadline or cancel)
    if (pending.timeoutMs > 0 && tickNow() >= pending.deadline) {
      // The reply beat the wheel's next tick but not the deadline: the call has timed out.
      this.fail(frame.requestId, "deadline_exceeded", `deadline of ${pending.timeoutMs} ms exceeded`);
      return;
    }
    this.#settle(frame.requestId, pending);
    if (frame.serializerId === 0) {
      // No metadata and no body: a bare status (allowed by the protocol).
      if (frame.status === 0) pending.resolve(emptyReply);
      else pending.reject(new FarcallError(statusToCode(frame.status), `remote error (${statusToCode(frame.status)})`, { details: { address: this.#address } }));
      return;
    }
    const serializer = this.#options.serializers.get(frame.serializerId);
    if (serializer === undefined) {
      pending.reject(new FarcallError("internal", `reply uses unknown serializer ${frame.serializerId}`));
      return;
    }
    try {
      const { source, bodyStart, bodyEnd } = frame;
      const metadata = bodyStart > frame.metadataStart ? decodeMetadata(serializer, source, frame.metadataStart, bodyStart) : undefined;
      if (frame.status === 0) {
        if (metadata !== undefined && this.#options.load !== undefined) {
          const report = parseLoad(metadata[loadMetadataKey]);
          if (report !== undefined) this.#options.load.report(report);
        }
        pending.resolve({ value: serializer.decode(source, bodyStart, bodyEnd), metadata });
      } else {
        pending.reject(decodeErrorBody(serializer, statusToCode(frame.status), source, bodyStart, bodyEnd, metadata, this.#address));
      }
    } catch (error) {
      pending.reject(FarcallError.from(error, "internal"));
    }
  }

  #settle(id: number, pending: Pending): void {
    this.#pending.delete(id);
    if (pending.wheelSlot >= 0) this.#options.wheel.remove(pending);
    if (pending.onAbort) pending.signal?.removeEventListener("abort", pending.onAbort);
    if (this.#closing && this.#pending.size === 0) this.#closeGracefully("provider closed the connection after draining");
  }

  /** Settles call `id` with an error (deadline or cancellation); internal to the connection's pending calls. */
  fail(id: number, code: Code, message: string): void {
    const pending = this.#pending.get(id);
    if (pending === undefined) return;
    this.#settle(id, pending);
    // The request is queued or written: it will reach the provider either way, so it counts as sent.
    pending.reject(new FarcallError(code, message, { sent: true, details: { address: this.#address } }));
  }

  #markClosing(): void {
    if (this.#closing) return;
    this.#closing = true;
    for (const listener of this.#closingListeners) listener();
    this.#closingListeners = [];
    if (this.#pending.size === 0) this.#closeGracefully("provider is shutting down");
  }

  #checkHeartbeat(): void {
    const verdict = this.#liveness?.check(this.#link.bufferedBytes);
    if (verdict === "dead") {
      this.close(`no data from ${this.remote} for ${this.#liveness?.idleMs()} ms (3 heartbeats, a ping unanswered)`);
    } else if (verdict === "ping") {
      this.#writer.writeHeartbeat(0, false);
      this.#scheduleFlush();
    }
  }

  #onLinkClosed(error: Error | undefined): void {
    const message = `connection to ${this.remote} closed${error ? `: ${error.message}` : ""}`;
    this.#shutdown(new FarcallError("unavailable", message, error === undefined ? {} : { cause: error }));
  }

  #shutdown(cause: FarcallError): void {
    if (this.#closed) return;
    const reason = new FarcallError(cause.code, cause.message, { cause: cause.cause, details: { address: this.#address } });
    this.#closed = reason;
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    for (const p of this.#pending.drain()) {
      if (p.wheelSlot >= 0) this.#options.wheel.remove(p);
      if (p.onAbort) p.signal?.removeEventListener("abort", p.onAbort);
      p.reject(reason.withSent(this.#flushes > p.gen));
    }
    for (const listener of this.#closeListeners) listener(reason);
    this.#closeListeners = [];
  }
}

/** A call refused before anything was queued: its observer hears of it too. */
function refuse(error: FarcallError, observer: AttemptObserver | undefined, startedAt: number): Promise<Reply> {
  if (observer !== undefined) observer.settled(startedAt, error);
  return Promise.reject(error);
}

const onewayReply: Reply = Object.freeze({ value: undefined, metadata: undefined });
const emptyReply = onewayReply;
