// Consumer-side limits and edge cases: a provider that stops reading, waits bounded by the call's
// deadline, bare status replies.
import assert from "node:assert/strict";
import net from "node:net";
import { describe, it } from "node:test";
import { createApplication } from "../src/application.js";
import { withOptions } from "../src/client/stub.js";
import { FarcallError } from "../src/errors/farcall-error.js";
import { FrameFlags } from "../src/protocol/binary/frame.js";
import { FrameDecoder } from "../src/protocol/binary/frame-decoder.js";
import { encodeFrame } from "../src/protocol/binary/frame-encoder.js";
import type { Registry } from "../src/registry/registry.js";
import { Users } from "./fixtures.js";

const base = { env: {}, handleSignals: false, warmupMs: 0, host: "127.0.0.1" } as const;

/** A TCP server on 127.0.0.1:0 that hands each accepted socket to `onSocket`. */
async function rawServer(onSocket: (socket: net.Socket) => void): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe("consumer limits", () => {
  it("rejects new calls with resource_exhausted, never sent, once a provider stops reading", async () => {
    const server = await rawServer((socket) => socket.pause()); // accepts, never reads
    const consumer = createApplication({ ...base, name: "c", registry: `direct://127.0.0.1:${server.port}`, maxBufferedBytes: 256 * 1024, faultTolerance: "failfast" });
    try {
      const users = withOptions(consumer.client(Users), { timeoutMs: 5000 });
      const chunk = "x".repeat(64 * 1024);
      const calls: Array<Promise<unknown>> = [];
      let rejected: FarcallError | undefined;
      // Bounded: at most 2000 x 64 KiB; the kernel takes a few MiB, then the budget must bite.
      for (let i = 0; i < 2000 && rejected === undefined; i++) {
        calls.push(users.echo(chunk).catch((e: unknown) => e));
        await new Promise((r) => setImmediate(r));
        const settled = await Promise.race([calls[calls.length - 1], Promise.resolve("pending")]);
        if (settled instanceof FarcallError) rejected = settled;
      }
      assert.ok(rejected, "a call was rejected before 2000 x 64 KiB were queued");
      assert.equal(rejected.code, "resource_exhausted", rejected.message);
      assert.equal(rejected.sent, false);
      assert.match(rejected.message, /maxBufferedBytes/);
    } finally {
      await consumer.close();
      await server.close();
    }
  });

  it("reports a large request written before the connection dropped as sent (never retried as unsent)", async () => {
    // A request of 16 KiB or more is written at once rather than at the end of the burst; the
    // provider reads it and drops the connection. The call must fail with sent: true, or failover
    // would run a non-idempotent method again.
    let received = 0;
    const server = await rawServer((socket) => {
      socket.on("data", (chunk: Buffer) => {
        received += chunk.length;
        if (received >= 20 * 1024) socket.destroy();
      });
    });
    const consumer = createApplication({ ...base, name: "c", registry: `direct://127.0.0.1:${server.port}`, faultTolerance: "failfast" });
    try {
      const users = withOptions(consumer.client(Users), { timeoutMs: 5000 });
      const error = (await users.echo("x".repeat(20 * 1024)).catch((e: unknown) => e)) as FarcallError;
      assert.ok(error instanceof FarcallError, String(error));
      assert.equal(error.code, "unavailable", error.message);
      assert.equal(error.sent, true, "the provider read the whole request");
    } finally {
      await consumer.close();
      await server.close();
    }
  });

  it("bounds the wait for the registry's first list by the call's deadline", async () => {
    const silent: Registry = {
      kind: "silent",
      register: () => Promise.reject(new Error("unused")),
      watch: () => () => {},
      close: () => Promise.resolve(),
    };
    const consumer = createApplication({ ...base, name: "c", registry: silent });
    try {
      const started = Date.now();
      const error = (await withOptions(consumer.client(Users), { timeoutMs: 100 }).whoami().catch((e: unknown) => e)) as FarcallError;
      assert.equal(error.code, "deadline_exceeded", error.message);
      assert.equal(error.sent, false);
      assert.ok(Date.now() - started < 2000, "not the 3 s discovery wait");
    } finally {
      await consumer.close();
    }
  });

  it("reads a bare status reply (serializer 0, no body) as that status's code", async () => {
    const server = await rawServer((socket) => {
      const decoder = new FrameDecoder();
      socket.on("data", (chunk: Buffer) =>
        decoder.push(chunk, (frame) => {
          if (frame.flags & FrameFlags.heartbeat) return;
          const none = new Uint8Array(0);
          const bare = { flags: FrameFlags.response, serializerId: 0, status: 4, requestId: frame.requestId, timeoutMs: 0, route: none, metadata: none, body: none };
          socket.write(encodeFrame(bare));
        }),
      );
    });
    const consumer = createApplication({ ...base, name: "c", registry: `direct://127.0.0.1:${server.port}`, faultTolerance: "failfast" });
    try {
      const error = (await consumer.client(Users).whoami().catch((e: unknown) => e)) as FarcallError;
      assert.equal(error.code, "resource_exhausted", error.message);
    } finally {
      await consumer.close();
      await server.close();
    }
  });
});
