import { badOption, FarcallError } from "../../errors/farcall-error.js";
import {
  defaultMaxFrameBytes,
  type Frame,
  FrameFlags,
  headerBytes,
  magic0,
  magic1,
  maxRouteBytes,
  protocolVersion,
} from "./frame.js";

// Kept here too so code written against the first draft of this module keeps compiling.
export { decodeRoute, encodeRoute, routeKey } from "./route.js";

/** Options of {@link FrameWriter}. */
export interface FrameWriterOptions {
  /** Size of each output slab, and the size the writer shrinks back to after a burst. Default 64 KiB. */
  readonly initialBytes?: number | undefined;
  /**
   * Largest frame the writer produces; a bigger one fails that call alone with
   * `resource_exhausted` (reason `frame_too_large`, `sent: false`) instead of making the peer close
   * the connection. Default 16 MiB, the decoder's default.
   */
  readonly maxFrameBytes?: number | undefined;
}

const emptyBytes: Buffer = Buffer.alloc(0);
const defaultInitialBytes = 64 * 1024;

/**
 * Size in bytes at which a connection writes its batch at once instead of at the end of the tick.
 * Writing everything of a tick in one call is what makes small calls cheap, but one huge batch per
 * tick makes the two ends take turns: the peer idles until the whole batch arrives, then this side
 * idles until the whole answer comes back. Cutting batches at 16 KiB keeps both ends busy at once
 * (measured in docs/benchmarks.md) while a batch still carries a hundred small calls.
 */
export const flushBatchBytes = 16 * 1024;

/**
 * Encodes the frames of one tick into one buffer so the connection does one `socket.write` per
 * tick. Frames are appended to a slab; {@link take} hands out the bytes written since the previous
 * take as a view of that slab and never writes over them again (later frames go after them, or
 * into a fresh slab), so the taken buffer may be kept by `socket.write` without a copy. A frame
 * that does not fit starts a new slab (doubling from `initialBytes` until it fits, copying only
 * the not-yet-taken bytes); after a take, a slab bigger than `initialBytes` is dropped, so the
 * writer shrinks back after a burst.
 *
 * Section bytes (route, metadata, body) are copied during the call, so a serializer may reuse its
 * output buffer as soon as the call returns. Every `write*` method validates before writing: when
 * it throws (`invalid_argument` for an out-of-range field, `resource_exhausted` for an oversize
 * frame, always with `sent: false`) nothing was written.
 *
 * Positional parameters on purpose: this is the per-call hot path, and an options object per frame
 * would be an allocation.
 */
export class FrameWriter {
  readonly #initialBytes: number;
  readonly #maxFrameBytes: number;
  #slab: Buffer = emptyBytes;
  #start = 0;
  #end = 0;

  constructor(options: FrameWriterOptions = {}) {
    const initialBytes = options.initialBytes ?? defaultInitialBytes;
    const maxFrameBytes = options.maxFrameBytes ?? defaultMaxFrameBytes;
    if (!Number.isSafeInteger(initialBytes) || initialBytes < headerBytes) {
      badOption("initialBytes", `must be an integer >= ${headerBytes}`);
    }
    if (!Number.isSafeInteger(maxFrameBytes) || maxFrameBytes < headerBytes) {
      badOption("maxFrameBytes", `must be an integer >= ${headerBytes}`);
    }
    this.#initialBytes = initialBytes;
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** Bytes written since the last {@link take}. */
  get size(): number {
    return this.#end - this.#start;
  }

  /**
   * Appends a request. `flags` is 0 or `FrameFlags.oneway`; `timeoutMs` is the time remaining
   * (integer ms, 0 = none); `route` comes from `encodeRoute`; `metadata` is the serializer's
   * encoding of the call metadata, or `undefined` for none; `body` the encoded argument array.
   */
  writeRequest(
    requestId: number,
    flags: number,
    serializerId: number,
    timeoutMs: number,
    route: Uint8Array,
    metadata: Uint8Array | undefined,
    body: Uint8Array,
  ): void {
    if ((flags & ~FrameFlags.oneway) !== 0) throw badField("flags", flags);
    if (route.length === 0 || route.length > maxRouteBytes) throw badField("route length", route.length);
    if ((timeoutMs >>> 0) !== timeoutMs) throw badField("timeoutMs", timeoutMs);
    this.#write(flags, serializerId, 0, requestId, timeoutMs, route, metadata ?? emptyBytes, body);
  }

  /**
   * Appends a response to `requestId`. `flags` is 0 in v1 (the response bit is added); `status` is
   * 0 for success or `codeToStatus(code)`; `body` is the encoded value, or the encoded error record
   * when `status` is not 0.
   */
  writeResponse(
    requestId: number,
    flags: number,
    serializerId: number,
    status: number,
    metadata: Uint8Array | undefined,
    body: Uint8Array,
  ): void {
    if ((flags & ~FrameFlags.response) !== 0) throw badField("flags", flags);
    if ((status & 0xff) !== status) throw badField("status", status);
    const responseFlags = flags | FrameFlags.response;
    this.#write(responseFlags, serializerId, status, requestId, 0, emptyBytes, metadata ?? emptyBytes, body);
  }

  /** Appends a heartbeat ping (`isResponse` false) or the pong answering ping `requestId`. */
  writeHeartbeat(requestId: number, isResponse: boolean): void {
    if ((requestId >>> 0) !== requestId) throw badField("requestId", requestId);
    const flags = isResponse ? FrameFlags.heartbeat | FrameFlags.response : FrameFlags.heartbeat;
    this.#ensure(headerBytes);
    this.#end = writeFrameAt(this.#slab, this.#end, flags, 0, 0, requestId, 0, emptyBytes, emptyBytes, emptyBytes);
  }

  /** Appends a `closing` frame (server to client: send no new requests on this connection). */
  writeClosing(): void {
    this.#ensure(headerBytes);
    this.#end = writeFrameAt(this.#slab, this.#end, FrameFlags.closing, 0, 0, 0, 0, emptyBytes, emptyBytes, emptyBytes);
  }

  /**
   * Returns exactly the bytes written since the previous take (an empty buffer when there are none)
   * and forgets them. The returned buffer is never written to again by this writer.
   */
  take(): Buffer {
    const out = this.#end === this.#start ? emptyBytes : this.#slab.subarray(this.#start, this.#end);
    this.#start = this.#end;
    if (this.#slab.length > this.#initialBytes) {
      // Shrink after a burst: the big slab stays alive only as long as `out` does.
      this.#slab = emptyBytes;
      this.#start = 0;
      this.#end = 0;
    }
    return out;
  }

  #write(
    flags: number,
    serializerId: number,
    status: number,
    requestId: number,
    timeoutMs: number,
    route: Uint8Array,
    metadata: Uint8Array,
    body: Uint8Array,
  ): void {
    if ((requestId >>> 0) !== requestId) throw badField("requestId", requestId);
    if ((serializerId & 0xff) !== serializerId || serializerId === 0) throw badField("serializerId", serializerId);
    const frameBytes = headerBytes + route.length + metadata.length + body.length;
    if (frameBytes > this.#maxFrameBytes) {
      const message = `frame of ${frameBytes} bytes exceeds maxFrameBytes ${this.#maxFrameBytes}`;
      throw new FarcallError("resource_exhausted", message, {
        reason: "frame_too_large",
        sent: false,
        details: { frameBytes, maxFrameBytes: this.#maxFrameBytes },
      });
    }
    this.#ensure(frameBytes);
    const slab = this.#slab;
    this.#end = writeFrameAt(slab, this.#end, flags, serializerId, status, requestId, timeoutMs, route, metadata, body);
  }

  /** Makes room for `frameBytes` more bytes after the not-yet-taken ones. */
  #ensure(frameBytes: number): void {
    if (this.#end + frameBytes <= this.#slab.length) return;
    const pendingBytes = this.#end - this.#start;
    let capacity = this.#initialBytes;
    while (capacity < pendingBytes + frameBytes) capacity *= 2;
    const slab = Buffer.allocUnsafe(capacity);
    // Taken bytes stay in the old slab, untouched; only pending ones move.
    if (pendingBytes > 0) this.#slab.copy(slab, 0, this.#start, this.#end);
    this.#slab = slab;
    this.#start = 0;
    this.#end = pendingBytes;
  }
}

/**
 * Encodes one frame exactly as given (no semantic checks beyond field ranges, so tests can build
 * frames a conforming peer would never send). For golden vectors and tests; connections use
 * {@link FrameWriter}.
 *
 * @throws FarcallError `invalid_argument` (reason `bad_frame_field`) when a field does not fit its width.
 */
export function encodeFrame(frame: Frame): Buffer {
  const { flags, serializerId, status, requestId, timeoutMs, route, metadata, body } = frame;
  if ((flags & 0xff) !== flags) throw badField("flags", flags);
  if ((serializerId & 0xff) !== serializerId) throw badField("serializerId", serializerId);
  if ((status & 0xff) !== status) throw badField("status", status);
  if ((requestId >>> 0) !== requestId) throw badField("requestId", requestId);
  if ((timeoutMs >>> 0) !== timeoutMs) throw badField("timeoutMs", timeoutMs);
  if (route.length > 0xffff) throw badField("route length", route.length);
  const out = Buffer.allocUnsafe(headerBytes + route.length + metadata.length + body.length);
  writeFrameAt(out, 0, flags, serializerId, status, requestId, timeoutMs, route, metadata, body);
  return out;
}

/** Writes one frame at `offset` (the caller made room) and returns the offset after it. */
function writeFrameAt(
  buf: Buffer,
  offset: number,
  flags: number,
  serializerId: number,
  status: number,
  requestId: number,
  timeoutMs: number,
  route: Uint8Array,
  metadata: Uint8Array,
  body: Uint8Array,
): number {
  const routeBytes = route.length;
  const metadataBytes = metadata.length;
  const bodyBytes = body.length;
  buf[offset] = magic0;
  buf[offset + 1] = magic1;
  buf[offset + 2] = protocolVersion;
  buf[offset + 3] = flags;
  buf[offset + 4] = serializerId;
  buf[offset + 5] = status;
  buf[offset + 6] = routeBytes >>> 8;
  buf[offset + 7] = routeBytes & 0xff;
  writeUint32(buf, offset + 8, requestId);
  writeUint32(buf, offset + 12, timeoutMs);
  writeUint32(buf, offset + 16, metadataBytes);
  writeUint32(buf, offset + 20, bodyBytes);
  let at = offset + headerBytes;
  if (routeBytes > 0) buf.set(route, at);
  at += routeBytes;
  if (metadataBytes > 0) buf.set(metadata, at);
  at += metadataBytes;
  if (bodyBytes > 0) buf.set(body, at);
  return at + bodyBytes;
}

function writeUint32(buf: Buffer, offset: number, value: number): void {
  buf[offset] = value >>> 24;
  buf[offset + 1] = (value >>> 16) & 0xff;
  buf[offset + 2] = (value >>> 8) & 0xff;
  buf[offset + 3] = value & 0xff;
}

function badField(field: string, value: number): FarcallError {
  return new FarcallError("invalid_argument", `frame field ${field} is invalid: ${value}`, {
    reason: "bad_frame_field",
    sent: false,
    details: { field, value },
  });
}
