// The provider against hostile or careless peers, over real sockets on 127.0.0.1:0: spoofed
// contexts, floods that never read, ping floods, exotic thrown values and thenables, late links
// while draining, idle links, malformed frames after running calls, repeated close().
import assert from "node:assert/strict";
import net from "node:net";
import { afterEach, beforeEach, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { CallContext } from "../src/call/call-context.js";
import { defineService } from "../src/contract/define-service.js";
import { codeToStatus } from "../src/errors/farcall-error.js";
import { defaultMaxFrameBytes, FrameFlags } from "../src/protocol/binary/frame.js";
import { FrameDecoder } from "../src/protocol/binary/frame-decoder.js";
import { encodeRoute, FrameWriter } from "../src/protocol/binary/frame-encoder.js";
import { jsonSerializer } from "../src/serialization/json-serializer.js";
import { msgpackSerializer } from "../src/serialization/msgpack-serializer.js";
import { Server, type ServerOptions } from "../src/server/server.js";
import { ServiceTable } from "../src/server/service-table.js";
import { tcpTransport } from "../src/transport/tcp-transport.js";
import type { Link, Transport } from "../src/transport/transport.js";
import { trackResources } from "./resources.js";

interface Hardening {
  inspect(...args: unknown[]): unknown;
  slow(ms: number): Promise<string>;
  sized(bytes: number): string;
  weird(kind: string): unknown;
  echo(value: unknown): unknown;
}

const Hard = defineService<Hardening>("test.Hardening", {
  version: "1.0.0",
  methods: { inspect: {}, slow: {}, sized: {}, weird: {}, echo: {} },
});

const msgpack = msgpackSerializer();
let runs = 0;

/** Exotic results and thrown values, by name. */
const weird: Record<string, () => unknown> = {
  thenGetterThrows: () => ({
    get then(): never {
      throw new Error("then getter");
    },
  }),
  thenSettlesTwice: () => ({
    then(resolve: (v: unknown) => void, reject: (e: unknown) => void) {
      resolve("first");
      reject(new Error("second"));
      resolve("third");
    },
  }),
  throwNullProto: () => {
    throw Object.create(null);
  },
  throwBadToString: () => {
    throw {
      toString(): never {
        throw new Error("toString");
      },
    };
  },
  throwSymbol: () => {
    throw Symbol("boom");
  },
  throwBadMessage: () => {
    const error = new Error("x");
    Object.defineProperty(error, "message", {
      get(): never {
        throw new Error("message getter");
      },
    });
    throw error;
  },
  rejectNullProto: () => Promise.reject(Object.create(null) as Error),
};

const implementation = {
  inspect: (ctx: CallContext, ...args: unknown[]) => ({
    service: ctx?.service,
    method: ctx?.method,
    remote: ctx?.remote,
    meta: ctx?.metadata?.["k"],
    args,
  }),
  slow: (_ctx: CallContext, ms: number) => {
    runs++;
    return sleep(ms).then(() => "done");
  },
  sized: (_ctx: CallContext, bytes: number) => "x".repeat(bytes),
  weird: (_ctx: CallContext, kind: string) => weird[kind]?.(),
  echo: (_ctx: CallContext, value: unknown) => (runs++, value),
};

async function startServer(overrides: Partial<ServerOptions> = {}): Promise<{ server: Server; port: number }> {
  const table = new ServiceTable();
  table.add(Hard, implementation as never);
  const server = new Server({
    transport: tcpTransport(),
    table,
    serializers: new Map([[msgpack.id, msgpack]]),
    fallbackSerializer: msgpack,
    maxFrameBytes: defaultMaxFrameBytes,
    idleTimeoutMs: 0,
    includeStack: false,
    ...overrides,
  });
  const address = await server.listen({ host: "127.0.0.1", port: 0 });
  return { server, port: address.port };
}

interface Received {
  flags: number;
  status: number;
  requestId: number;
  serializerId: number;
  body: Buffer;
}

/** A hand-driven consumer: writes raw frames, collects the frames it reads (when reading). */
class RawPeer {
  readonly frames: Received[] = [];
  closed = false;
  readonly #socket: net.Socket;
  readonly #decoder = new FrameDecoder({ maxFrameBytes: 256 * 1024 * 1024 });
  readonly #checks = new Set<() => void>();
  readonly #writer = new FrameWriter();

  private constructor(socket: net.Socket, read: boolean) {
    this.#socket = socket;
    socket.on("error", () => {});
    socket.once("close", () => {
      this.closed = true;
      for (const check of this.#checks) check();
    });
    if (read) this.read();
  }

  static connect(port: number, options: { read?: boolean; allowHalfOpen?: boolean } = {}): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: "127.0.0.1", port, allowHalfOpen: options.allowHalfOpen ?? false }, () =>
        resolve(new RawPeer(socket, options.read ?? true)),
      );
      socket.once("error", reject);
    });
  }

  get localAddress(): string {
    return `${this.#socket.localAddress ?? "?"}:${this.#socket.localPort ?? 0}`;
  }

  /** Starts reading (a peer created with `read: false` reads nothing until then). */
  read(): void {
    this.#socket.on("data", (chunk: Buffer) => {
      this.#decoder.push(chunk, (f) =>
        this.frames.push({ flags: f.flags, status: f.status, requestId: f.requestId, serializerId: f.serializerId, body: Buffer.from(f.body) }),
      );
      for (const check of this.#checks) check();
    });
  }

  /** Queues a request frame; `flush()` (or `request(..., true)`) writes it. */
  request(id: number, method: string, args: unknown[], options: { metadata?: Record<string, string>; serializerId?: number; body?: Uint8Array; oneway?: boolean } = {}): this {
    const body = options.body ?? msgpack.encode(args);
    const metadata = options.metadata === undefined ? undefined : msgpack.encode(options.metadata);
    this.#writer.writeRequest(id, options.oneway ? FrameFlags.oneway : 0, options.serializerId ?? msgpack.id, 0, encodeRoute(Hard.name, Hard.version, "", method), metadata, body);
    return this;
  }

  ping(id: number): this {
    this.#writer.writeHeartbeat(id, false);
    return this;
  }

  flush(): boolean {
    return this.#socket.write(Buffer.from(this.#writer.take()));
  }

  writeRaw(bytes: Uint8Array): void {
    this.#socket.write(bytes);
  }

  reply(id: number): Received | undefined {
    return this.frames.find((f) => f.requestId === id && (f.flags & FrameFlags.response) !== 0 && (f.flags & FrameFlags.heartbeat) === 0);
  }

  /** Resolves once `done()` holds (checked on every read and on close); rejects after `timeoutMs`. */
  until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!done()) return;
        clearTimeout(timer);
        this.#checks.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#checks.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got ${this.frames.length} frames, closed=${this.closed}`));
      }, timeoutMs);
      this.#checks.add(check);
    });
  }

  async replyOf(id: number, timeoutMs = 3000): Promise<Received> {
    await this.until(() => this.reply(id) !== undefined, timeoutMs, `the reply to ${id}`);
    return this.reply(id) as Received;
  }

  close(): Promise<void> {
    this.#socket.destroy();
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => this.#socket.once("close", () => resolve()));
  }
}

function decoded(frame: Received): unknown {
  return msgpack.decode(frame.body);
}

function message(frame: Received): string {
  const value = decoded(frame) as { message?: unknown } | undefined;
  return typeof value?.message === "string" ? value.message : "";
}

describe("server hardening", () => {
  let assertReleased: () => Promise<void> = async () => {};
  beforeEach(() => {
    runs = 0;
    assertReleased = trackResources();
  });
  afterEach(() => assertReleased());

  it("passes the real context first: extra arguments never take its place", async () => {
    const { server, port } = await startServer();
    const peer = await RawPeer.connect(port);
    try {
      const fake = { service: "fake", method: "fake", remote: "fake", metadata: { k: "spoof" } };
      peer.request(1, "inspect", [fake, fake, fake], { metadata: { k: "real" } }).request(2, "inspect", []).flush();
      const spoofed = await peer.replyOf(1);
      assert.equal(spoofed.status, 0, message(spoofed));
      assert.deepEqual(decoded(spoofed), { service: Hard.name, method: "inspect", remote: peer.localAddress, meta: "real", args: [fake, fake, fake] });
      const none = await peer.replyOf(2);
      assert.deepEqual(decoded(none), { service: Hard.name, method: "inspect", remote: peer.localAddress, meta: undefined, args: [] });
    } finally {
      await peer.close();
      await server.close(1000);
    }
  });

  it("stops reading from a consumer that never reads: buffered reply bytes stay bounded", async () => {
    const maxBufferedBytes = 256 * 1024;
    const { server, port } = await startServer({ maxBufferedBytes });
    const flooder = await RawPeer.connect(port, { read: false });
    const other = await RawPeer.connect(port);
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, server.stats().bufferedBytes)), 5);
    try {
      // 20000 requests of ~70 bytes, each answered with 1 KiB: ~20 MiB of replies nobody reads.
      const count = 20_000;
      for (let i = 1; i <= count; i++) flooder.request(i, "sized", [1024]);
      flooder.flush();
      await sleep(1000);
      peak = Math.max(peak, server.stats().bufferedBytes);
      // Bound: the high-water mark plus the replies of one read chunk (64 KiB of requests) and slack.
      assert.ok(peak < maxBufferedBytes + 4 * 1024 * 1024, `the provider buffered ${peak} bytes`);
      // The process stays healthy: another consumer is answered at once.
      other.request(1, "echo", ["still here"]).flush();
      const started = Date.now();
      assert.equal(decoded(await other.replyOf(1, 2000)), "still here");
      assert.ok(Date.now() - started < 1000);
      // Once the flooder reads, reading resumes and every request is answered.
      flooder.read();
      await flooder.until(() => flooder.frames.length === count, 20_000, "every reply");
    } finally {
      clearInterval(sampler);
      await flooder.close();
      await other.close();
      await server.close(1000);
    }
  });

  it("answers resource_exhausted beyond maxConcurrentCallsPerConnection without running the call", async () => {
    const { server, port } = await startServer({ maxConcurrentCallsPerConnection: 2 });
    const peer = await RawPeer.connect(port);
    const other = await RawPeer.connect(port);
    try {
      peer.request(1, "slow", [300]).request(2, "slow", [300]).request(3, "slow", [300]).flush();
      const third = await peer.replyOf(3, 250);
      assert.equal(third.status, codeToStatus("resource_exhausted"));
      assert.match(message(third), /maxConcurrentCallsPerConnection/);
      assert.equal(runs, 2, "the third call never ran");
      assert.equal(server.stats().inFlight, 2);
      // The cap is per connection.
      other.request(1, "slow", [10]).flush();
      assert.equal((await other.replyOf(1)).status, 0);
      assert.equal((await peer.replyOf(1)).status, 0);
      assert.equal((await peer.replyOf(2)).status, 0);
      peer.request(4, "slow", [1]).flush();
      assert.equal((await peer.replyOf(4)).status, 0, "room again once calls finished");
    } finally {
      await peer.close();
      await other.close();
      await server.close(1000);
    }
  });

  it("answers at most maxPingsPerSecond pings and ignores the rest", async () => {
    const { server, port } = await startServer();
    const peer = await RawPeer.connect(port);
    try {
      for (let i = 1; i <= 200; i++) peer.ping(i);
      peer.flush();
      peer.request(1000, "echo", [1]).flush();
      await peer.replyOf(1000);
      await sleep(200);
      const pongs = peer.frames.filter((f) => (f.flags & FrameFlags.heartbeat) !== 0).length;
      assert.ok(pongs >= 1 && pongs <= 25, `${pongs} pongs for 200 pings`);
    } finally {
      await peer.close();
      await server.close(1000);
    }
  });

  it("serves a link accepted while draining: sends closing, answers its requests, waits for it", async () => {
    // A transport that holds accepted links until released: the link arrives after close() began.
    const tcp = tcpTransport();
    const held: Link[] = [];
    let hold = false;
    let deliver: (link: Link) => void = () => {};
    const gated: Transport = {
      connect: (address, signal) => tcp.connect(address, signal),
      listen: (address, onLink) => {
        deliver = onLink;
        return tcp.listen(address, (link) => (hold ? held.push(link) : onLink(link)));
      },
    };
    const { server, port } = await startServer({ transport: gated });
    const early = await RawPeer.connect(port);
    hold = true;
    const late = await RawPeer.connect(port);
    try {
      early.request(1, "slow", [300]).flush();
      await sleep(50);
      for (let i = 0; i < 40 && held.length === 0; i++) await sleep(5);
      assert.equal(held.length, 1);
      const started = Date.now();
      const closed = server.close(5000);
      late.request(7, "echo", ["late"]).flush();
      for (const link of held) deliver(link);
      const reply = await late.replyOf(7);
      assert.equal(reply.status, 0, message(reply));
      assert.equal(decoded(reply), "late");
      assert.ok(late.frames.some((f) => (f.flags & FrameFlags.closing) !== 0), "the late link was told the server is closing");
      assert.equal((await early.replyOf(1)).status, 0);
      assert.equal(server.stats().connections, 2, "close() waits for the late link too");
      await early.close();
      await late.close();
      await closed;
      assert.ok(Date.now() - started < 2000, "close() returned once both links closed");
    } finally {
      await early.close();
      await late.close();
      await server.close(1000);
    }
  });

  for (const kind of Object.keys(weird)) {
    it(`replies exactly once and keeps the connection when the implementation ${kind}`, async () => {
      const { server, port } = await startServer();
      const peer = await RawPeer.connect(port);
      try {
        peer.request(1, "weird", [kind]).flush();
        const reply = await peer.replyOf(1);
        if (kind === "thenSettlesTwice") {
          assert.equal(reply.status, 0, message(reply));
          assert.equal(decoded(reply), "first");
        } else {
          assert.equal(reply.status, codeToStatus("application"), message(reply));
          assert.equal(typeof message(reply), "string");
        }
        peer.request(2, "echo", ["after"]).flush();
        assert.equal(decoded(await peer.replyOf(2)), "after", "the connection survives");
        await sleep(20);
        assert.equal(peer.frames.filter((f) => f.requestId === 1).length, 1, "one reply per request");
        assert.equal(server.stats().inFlight, 0);
        assert.equal(server.inFlight, 0);
      } finally {
        await peer.close();
        await server.close(1000);
      }
    });
  }

  it("closes an idle link politely: closing first, the socket later", async () => {
    const { server, port } = await startServer({ idleTimeoutMs: 200 });
    const peer = await RawPeer.connect(port);
    try {
      const started = Date.now();
      await peer.until(() => peer.closed, 3000, "the idle close");
      const elapsed = Date.now() - started;
      assert.ok(peer.frames.some((f) => (f.flags & FrameFlags.closing) !== 0), "a closing frame came before the close");
      assert.ok(elapsed >= 400, `closed ${elapsed} ms after connecting: a second idle period follows the closing frame`);
    } finally {
      await peer.close();
      await server.close(1000);
    }
  });

  it("after a malformed frame, still writes the replies of calls already running, then closes", async () => {
    const { server, port } = await startServer();
    const peer = await RawPeer.connect(port, { allowHalfOpen: true });
    try {
      peer.request(1, "slow", [200]).flush();
      await sleep(30);
      peer.writeRaw(Buffer.from("GET / HTTP/1.1\r\n\r\n"));
      for (let i = 0; i < 5; i++) {
        await sleep(10);
        peer.writeRaw(Buffer.from("more garbage after the first"));
      }
      const reply = await peer.replyOf(1);
      assert.equal(reply.status, 0, message(reply));
      assert.equal(decoded(reply), "done");
      const error = peer.frames.find((f) => f.requestId === 0);
      assert.equal(error?.status, codeToStatus("internal"));
      assert.equal(peer.frames.filter((f) => f.requestId === 0).length, 1, "one error reply");
    } finally {
      await peer.close();
      await server.close(1000);
    }
  });

  it("returns the same promise from a second close(): the first caller is not left waiting", async () => {
    const { server, port } = await startServer();
    const peer = await RawPeer.connect(port);
    try {
      peer.request(1, "slow", [100]).flush();
      await sleep(20);
      const started = Date.now();
      const first = server.close(5000);
      const second = server.close(5000);
      assert.equal(first, second);
      await peer.replyOf(1);
      await peer.close();
      await first;
      assert.ok(Date.now() - started < 2000, `the first close() took ${Date.now() - started} ms`);
    } finally {
      await peer.close();
      await server.close(1000);
    }
  });

  it("answers invalid_argument to a serializer it does not accept, without decoding the body or running the call", async () => {
    const json = jsonSerializer();
    const { server, port } = await startServer();
    const peer = await RawPeer.connect(port);
    try {
      // A body the JSON serializer would decode fine: only the provider's accepted set counts.
      peer.request(1, "echo", [], { serializerId: json.id, body: json.encode(["x"]) }).flush();
      const reply = await peer.replyOf(1);
      assert.equal(reply.status, codeToStatus("invalid_argument"));
      assert.equal(reply.serializerId, msgpack.id, "the error is written with the provider's serializer");
      assert.match(message(reply), /serializer/);
      assert.equal(runs, 0);
    } finally {
      await peer.close();
      await server.close(1000);
    }
  });
});
