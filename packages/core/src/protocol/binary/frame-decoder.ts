import { constants as bufferConstants } from "node:buffer";
import { badOption, FarcallError } from "../../errors/farcall-error.js";
import {
  defaultMaxFrameBytes,
  type Frame,
  type ReceivedFrame,
  FrameFlags,
  headerBytes,
  magic0,
  magic1,
  maxRouteBytes,
  protocolVersion,
  unknownFlagBits,
} from "./frame.js";

/** Options of {@link FrameDecoder}. */
export interface FrameDecoderOptions {
  /** Largest accepted frame, header + route + metadata + body, in bytes. Default 16 MiB. */
  readonly maxFrameBytes?: number | undefined;
}

const emptyBytes: Buffer = Buffer.alloc(0);
/** A partial-frame buffer larger than this is dropped once its frame is complete. */
const retainBytes = 64 * 1024;
/** First capacity of the partial-frame buffer of a large frame; it doubles as bytes arrive. */
const firstPartialBytes = 4 * 1024;

/**
 * Streaming parser of wire protocol v1 frames (see `docs/wire-protocol.md`).
 *
 * Feed it every chunk read from the connection with {@link push}; it calls `onFrame` once per
 * complete frame, in order, whatever the chunk boundaries. Whole frames inside a chunk are handed
 * out as views of the chunk, without copying; only a frame that straddles chunks is accumulated,
 * into one buffer that grows by doubling as bytes arrive (never sized by a length the peer declared
 * but has not sent), so a frame costs at most a linear number of copied bytes.
 *
 * Limits are enforced on the 24-byte header, before any section byte is buffered. A malformed or
 * oversize header makes `push` throw a `FarcallError` with a stable `reason`:
 * - `resource_exhausted`: `frame_too_large` (over `maxFrameBytes`), `route_too_large` (over
 *   `maxRouteBytes`);
 * - `internal`: `bad_magic`, `bad_version`, `bad_flags` (undefined bits or a forbidden
 *   combination), `bad_header` (fields inconsistent with the frame kind).
 *
 * After a throw, including one from `onFrame`, the decoder is dead: every later `push` throws the
 * same error, and the connection must be closed.
 */
export class FrameDecoder {
  readonly #maxFrameBytes: number;
  /** Bytes of the frame that straddles chunks; the first `#filled` are valid. */
  #partial: Buffer = emptyBytes;
  #filled = 0;
  /** Size of the straddling frame; 0 while its header is incomplete. */
  #frameBytes = 0;
  #failed = false;
  #failure: unknown = undefined;

  constructor(options: FrameDecoderOptions = {}) {
    const maxFrameBytes = options.maxFrameBytes ?? defaultMaxFrameBytes;
    const { MAX_LENGTH } = bufferConstants;
    if (!Number.isSafeInteger(maxFrameBytes) || maxFrameBytes < headerBytes || maxFrameBytes > MAX_LENGTH) {
      badOption("maxFrameBytes", `must be an integer from ${headerBytes} to ${MAX_LENGTH}`);
    }
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** Bytes held of a frame not yet complete (for buffer budgets, and to detect truncation at end). */
  get bufferedBytes(): number {
    return this.#filled;
  }

  /**
   * Parses `chunk` and calls `onFrame` for each frame it completes. The frame's `route`, `metadata`
   * and `body` are views valid only during the callback: copy (or decode) what must outlive it.
   * The chunk itself is never modified and is not retained after `push` returns.
   *
   * @throws FarcallError for a malformed or oversize frame (see the class documentation).
   */
  push(chunk: Buffer, onFrame: (frame: ReceivedFrame) => void): void {
    if (this.#failed) throw this.#failure;
    try {
      this.#consume(chunk, onFrame);
    } catch (error) {
      this.#failed = true;
      this.#failure = error;
      this.#partial = emptyBytes;
      this.#filled = 0;
      throw error;
    }
  }

  #consume(chunk: Buffer, onFrame: (frame: ReceivedFrame) => void): void {
    const end = chunk.length;
    let offset = 0;
    if (this.#filled > 0) {
      offset = this.#continuePartial(chunk, onFrame);
      if (this.#filled > 0) return;
    }
    // Fast path: whole frames are views of the chunk.
    while (end - offset >= headerBytes) {
      const frameBytes = checkHeader(chunk, offset, this.#maxFrameBytes);
      if (end - offset < frameBytes) {
        this.#frameBytes = frameBytes;
        this.#append(chunk, offset, end);
        return;
      }
      emitFrame(chunk, offset, onFrame);
      offset += frameBytes;
    }
    if (offset < end) {
      this.#frameBytes = 0;
      this.#append(chunk, offset, end);
    }
  }

  /** Adds the start of `chunk` to the straddling frame; returns the offset of the unused rest. */
  #continuePartial(chunk: Buffer, onFrame: (frame: ReceivedFrame) => void): number {
    let offset = 0;
    if (this.#frameBytes === 0) {
      offset = Math.min(headerBytes - this.#filled, chunk.length);
      this.#append(chunk, 0, offset);
      if (this.#filled < headerBytes) return offset;
      // Checked as soon as the header is complete, before any section byte is kept.
      this.#frameBytes = checkHeader(this.#partial, 0, this.#maxFrameBytes);
    }
    const take = Math.min(this.#frameBytes - this.#filled, chunk.length - offset);
    this.#append(chunk, offset, offset + take);
    offset += take;
    if (this.#filled < this.#frameBytes) return offset;
    const partial = this.#partial;
    this.#filled = 0;
    this.#frameBytes = 0;
    if (partial.length > retainBytes) this.#partial = emptyBytes;
    emitFrame(partial, 0, onFrame);
    return offset;
  }

  #append(chunk: Buffer, start: number, end: number): void {
    const required = this.#filled + (end - start);
    if (required > this.#partial.length) this.#grow(required);
    chunk.copy(this.#partial, this.#filled, start, end);
    this.#filled = required;
  }

  /** Capacity grows by doubling, up to the (validated) frame size, never beyond what is needed now. */
  #grow(required: number): void {
    const floor = this.#frameBytes === 0 ? headerBytes : firstPartialBytes;
    let capacity = Math.max(required, this.#partial.length * 2, floor);
    if (this.#frameBytes > 0) capacity = Math.max(required, Math.min(capacity, this.#frameBytes));
    const partial = Buffer.allocUnsafe(capacity);
    if (this.#filled > 0) this.#partial.copy(partial, 0, 0, this.#filled);
    this.#partial = partial;
  }
}

/**
 * Parses a byte string that holds whole frames only. The frames' sections are views of `bytes`.
 *
 * @throws FarcallError as {@link FrameDecoder.push} does, and `internal` with reason `truncated`
 *   when the bytes end inside a frame.
 */
export function decodeFrames(bytes: Uint8Array, options: FrameDecoderOptions = {}): Frame[] {
  const frames: Frame[] = [];
  const decoder = new FrameDecoder(options);
  const chunk = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  decoder.push(chunk, (frame) => frames.push(frame));
  if (decoder.bufferedBytes > 0) {
    throw new FarcallError("internal", `bytes end inside a frame (${decoder.bufferedBytes} bytes left)`, {
      reason: "truncated",
    });
  }
  return frames;
}

/**
 * Validates the header at `offset` (24 bytes available) and returns the frame's total size.
 * Lengths are summed as doubles (exact up to 2^53), so no u32 overflow can sneak past the limit.
 */
function checkHeader(buf: Buffer, offset: number, maxFrameBytes: number): number {
  if (u8(buf, offset) !== magic0 || u8(buf, offset + 1) !== magic1) {
    throw malformed("bad_magic", "frame does not start with the magic bytes 0xFA 0xCA");
  }
  const version = u8(buf, offset + 2);
  if (version !== protocolVersion) throw malformed("bad_version", `unsupported protocol version ${version}`);
  const flags = u8(buf, offset + 3);
  if ((flags & unknownFlagBits) !== 0) throw malformed("bad_flags", `undefined flag bits in 0x${hex(flags)}`);
  const routeBytes = u16(buf, offset + 6);
  const metadataBytes = u32(buf, offset + 16);
  const bodyBytes = u32(buf, offset + 20);
  if (routeBytes > maxRouteBytes) {
    throw new FarcallError("resource_exhausted", `route of ${routeBytes} bytes exceeds ${maxRouteBytes}`, {
      reason: "route_too_large",
      details: { routeBytes, maxRouteBytes },
    });
  }
  const frameBytes = headerBytes + routeBytes + metadataBytes + bodyBytes;
  if (frameBytes > maxFrameBytes) {
    const message = `frame of ${frameBytes} bytes exceeds maxFrameBytes ${maxFrameBytes}`;
    throw new FarcallError("resource_exhausted", message, {
      reason: "frame_too_large",
      details: { frameBytes, maxFrameBytes },
    });
  }
  const serializerId = u8(buf, offset + 4);
  const status = u8(buf, offset + 5);
  const timeoutMs = u32(buf, offset + 12);
  if ((flags & (FrameFlags.heartbeat | FrameFlags.closing)) !== 0) {
    // Control frames: exactly `heartbeat`, `heartbeat|response` or `closing`, and nothing else set.
    const pong = FrameFlags.heartbeat | FrameFlags.response;
    if (flags !== FrameFlags.heartbeat && flags !== pong && flags !== FrameFlags.closing) {
      throw malformed("bad_flags", `forbidden flag combination 0x${hex(flags)}`);
    }
    if (serializerId !== 0 || status !== 0 || timeoutMs !== 0 || frameBytes !== headerBytes) {
      throw malformed("bad_header", "a heartbeat or closing frame carries fields or sections");
    }
    if (flags === FrameFlags.closing && u32(buf, offset + 8) !== 0) {
      throw malformed("bad_header", "a closing frame has a request id");
    }
    return frameBytes;
  }
  if ((flags & FrameFlags.response) !== 0) {
    if ((flags & FrameFlags.oneway) !== 0) throw malformed("bad_flags", "a response is marked oneway");
    if (routeBytes !== 0 || timeoutMs !== 0) throw malformed("bad_header", "a response carries a route or a timeout");
  } else if (status !== 0 || routeBytes === 0) {
    throw malformed("bad_header", "a request carries a status or has no route");
  }
  if (serializerId === 0 && metadataBytes + bodyBytes > 0) {
    throw malformed("bad_header", "metadata or body without a serializer id");
  }
  return frameBytes;
}

/** A decoded frame over its source bytes; section views are made only when asked for. */
class DecodedFrame implements ReceivedFrame {
  readonly flags: number;
  readonly serializerId: number;
  readonly status: number;
  readonly requestId: number;
  readonly timeoutMs: number;
  readonly routeStart: number;
  readonly metadataStart: number;
  readonly bodyStart: number;
  readonly bodyEnd: number;
  constructor(
    readonly source: Buffer,
    offset: number,
  ) {
    this.flags = u8(source, offset + 3);
    this.serializerId = u8(source, offset + 4);
    this.status = u8(source, offset + 5);
    this.requestId = u32(source, offset + 8);
    this.timeoutMs = u32(source, offset + 12);
    this.routeStart = offset + headerBytes;
    this.metadataStart = this.routeStart + u16(source, offset + 6);
    this.bodyStart = this.metadataStart + u32(source, offset + 16);
    this.bodyEnd = this.bodyStart + u32(source, offset + 20);
  }
  get route(): Uint8Array {
    return view(this.source, this.routeStart, this.metadataStart - this.routeStart);
  }
  get metadata(): Uint8Array {
    return view(this.source, this.metadataStart, this.bodyStart - this.metadataStart);
  }
  get body(): Uint8Array {
    return view(this.source, this.bodyStart, this.bodyEnd - this.bodyStart);
  }
}

/** Calls `onFrame` with the frame at `offset` (already checked, wholly inside `buf`). */
function emitFrame(buf: Buffer, offset: number, onFrame: (frame: ReceivedFrame) => void): void {
  onFrame(new DecodedFrame(buf, offset));
}

/**
 * A plain `Uint8Array` view: about 3x cheaper than `Buffer#subarray`, which goes through
 * `Symbol.species` and argument validation (measured ~45 ns vs ~140 ns on Node 20).
 */
function view(buf: Buffer, start: number, length: number): Uint8Array {
  return length === 0 ? emptyBytes : new Uint8Array(buf.buffer, buf.byteOffset + start, length);
}

// Index reads instead of Buffer#readUInt*: no per-call bounds validation, the caller checked the
// range. `?? 0` only satisfies noUncheckedIndexedAccess.
function u8(buf: Buffer, at: number): number {
  return buf[at] ?? 0;
}

function u16(buf: Buffer, at: number): number {
  return ((buf[at] ?? 0) << 8) | (buf[at + 1] ?? 0);
}

function u32(buf: Buffer, at: number): number {
  return (buf[at] ?? 0) * 0x100_0000 + (((buf[at + 1] ?? 0) << 16) | ((buf[at + 2] ?? 0) << 8) | (buf[at + 3] ?? 0));
}

function malformed(reason: string, message: string): FarcallError {
  return new FarcallError("internal", `malformed frame: ${message}`, { reason });
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}
