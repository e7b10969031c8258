import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { msgpackSerializer } from "../../serialization/msgpack-serializer.js";
import type { Link } from "../../transport/transport.js";
import { FrameFlags } from "./frame.js";
import { decodeFrames } from "./frame-decoder.js";
import { encodeRoute, FrameWriter } from "./frame-encoder.js";
import { ServerConnection, type ServerConnectionOptions } from "./server-connection.js";

const msgpack = msgpackSerializer();

/** A link driven by the test: records writes, ends, pauses; the test pushes data and drains. */
class FakeLink implements Link {
  readonly writes: Buffer[] = [];
  ends = 0;
  paused = false;
  bufferedBytes = 0;
  readonly remote = "fake:1";
  #data: ((chunk: Buffer) => void) | undefined;
  #close: ((error: Error | undefined) => void) | undefined;
  #drain: (() => void) | undefined;
  #closed = false;
  write(chunk: Uint8Array): boolean {
    this.writes.push(Buffer.from(chunk));
    return true;
  }
  end(): void {
    this.ends++;
  }
  destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#close?.(undefined);
  }
  onData(listener: (chunk: Buffer) => void): void {
    this.#data = listener;
  }
  onClose(listener: (error: Error | undefined) => void): void {
    this.#close = listener;
  }
  onDrain(listener: () => void): void {
    this.#drain = listener;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  push(bytes: Uint8Array): void {
    this.#data?.(Buffer.from(bytes));
  }
  drain(): void {
    this.#drain?.();
  }
  frames() {
    return decodeFrames(Buffer.concat(this.writes));
  }
}

function connect(link: FakeLink, overrides: Partial<ServerConnectionOptions> = {}): ServerConnection {
  return new ServerConnection(link, {
    maxFrameBytes: 1 << 20,
    fallbackSerializer: msgpack,
    includeStack: false,
    maxBufferedBytes: 64 * 1024,
    maxPingsPerSecond: 10,
    onRequest: () => {},
    onClose: () => {},
    ...overrides,
  });
}

const tick = (): Promise<void> => new Promise((resolve) => process.nextTick(resolve));

describe("ServerConnection", () => {
  it("stops reading when a flush leaves more than maxBufferedBytes unsent, and resumes on drain", async () => {
    const link = new FakeLink();
    const connection = connect(link, { onRequest: (frame, conn) => conn.respond(frame.requestId, msgpack, "ok") });
    const writer = new FrameWriter();
    writer.writeRequest(1, 0, msgpack.id, 0, encodeRoute("s", "1", "", "m"), undefined, msgpack.encode([]));
    link.bufferedBytes = 64 * 1024 + 1; // the consumer reads nothing
    link.push(writer.take());
    await tick();
    assert.equal(link.paused, true);
    link.drain(); // a drain that leaves too much queued changes nothing
    assert.equal(link.paused, true);
    link.bufferedBytes = 0;
    link.drain();
    assert.equal(link.paused, false);
    connection.close();
  });

  it("answers at most maxPingsPerSecond of a burst of pings", async () => {
    const link = new FakeLink();
    const connection = connect(link);
    const writer = new FrameWriter();
    for (let i = 1; i <= 100; i++) writer.writeHeartbeat(i, false);
    link.push(writer.take());
    await tick();
    const pongs = link.frames().filter((f) => f.flags === (FrameFlags.heartbeat | FrameFlags.response));
    assert.ok(pongs.length >= 10 && pongs.length <= 11, `${pongs.length} pongs`);
    connection.close();
  });

  it("after a malformed frame: one error reply, one timer, one end, and running calls still reply first", async () => {
    const link = new FakeLink();
    const timers: NodeJS.Timeout[] = [];
    const realSetTimeout = globalThis.setTimeout;
    let finish: () => void = () => {};
    const connection = connect(link, {
      onRequest: (frame, conn) => {
        const id = frame.requestId;
        conn.callStarted();
        finish = () => {
          conn.respond(id, msgpack, "late");
          conn.callFinished();
        };
      },
    });
    const writer = new FrameWriter();
    writer.writeRequest(5, 0, msgpack.id, 0, encodeRoute("s", "1", "", "m"), undefined, msgpack.encode([]));
    link.push(writer.take());
    globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
      const timer = realSetTimeout(...args);
      timers.push(timer);
      return timer;
    }) as typeof setTimeout;
    try {
      for (let i = 0; i < 5; i++) link.push(Buffer.from("garbage, not a frame"));
    } finally {
      globalThis.setTimeout = realSetTimeout;
    }
    await tick();
    assert.equal(timers.length, 1, "one close timer, not one per chunk");
    assert.equal(link.ends, 0, "the running call has not replied yet");
    finish();
    await tick();
    assert.equal(link.ends, 1);
    const frames = link.frames();
    assert.deepEqual(
      frames.map((f) => [f.requestId, f.status]),
      [
        [0, 9],
        [5, 0],
      ],
    );
    connection.close();
    for (const timer of timers) clearTimeout(timer);
  });
});
