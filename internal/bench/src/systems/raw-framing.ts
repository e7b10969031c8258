import type { Socket } from "node:net";
import { pack, RESERVE_START_SPACE, unpack } from "msgpackr";

/**
 * The raw echo's wire format: `u32 frameBytes | u32 requestId | msgpack body`, big-endian,
 * where frameBytes counts everything after itself.
 */
const headerBytes = 8;
const packOptions = RESERVE_START_SPACE | headerBytes;

/**
 * Collects the frames of one tick and writes them with one `socket.write` on
 * `process.nextTick` (BENCHMARKS.md: beats cork/uncork and setImmediate flushing).
 */
export class FrameWriter {
  private chunks: Buffer[] = [];
  private pendingBytes = 0;
  private flushScheduled = false;

  constructor(private readonly socket: Socket) {}

  write(requestId: number, value: unknown): void {
    // msgpackr reserves the header space in front of the body, so the frame is one buffer.
    const frame = pack(value, packOptions);
    frame.writeUInt32BE(frame.length - 4, 0);
    frame.writeUInt32BE(requestId, 4);
    this.chunks.push(frame);
    this.pendingBytes += frame.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(flushWriter, this);
    }
  }

  flush(): void {
    this.flushScheduled = false;
    const chunks = this.chunks;
    if (chunks.length === 0 || this.socket.destroyed) return;
    const out = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, this.pendingBytes);
    this.chunks = [];
    this.pendingBytes = 0;
    this.socket.write(out);
  }
}

function flushWriter(writer: FrameWriter): void {
  writer.flush();
}

/** Splits a byte stream into frames; tolerates frames split across or packed into chunks. */
export class FrameReader {
  private buffered: Buffer | null = null;

  constructor(private readonly onFrame: (requestId: number, value: unknown) => void) {}

  push(chunk: Buffer): void {
    const data = this.buffered === null ? chunk : Buffer.concat([this.buffered, chunk]);
    let offset = 0;
    while (data.length - offset >= headerBytes) {
      const end = offset + 4 + data.readUInt32BE(offset);
      if (end > data.length) break;
      const requestId = data.readUInt32BE(offset + 4);
      this.onFrame(requestId, unpack(data.subarray(offset + headerBytes, end)));
      offset = end;
    }
    this.buffered = offset === data.length ? null : data.subarray(offset);
  }
}
