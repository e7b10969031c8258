// Liveness over real sockets: a silent peer is declared dead within 3 heartbeats, a healthy idle
// link survives, and the provider closes links idle past idleTimeoutMs.
import assert from "node:assert/strict";
import net from "node:net";
import { afterEach, beforeEach, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createApplication } from "../src/application.js";
import { withOptions } from "../src/client/stub.js";
import { FarcallError } from "../src/errors/farcall-error.js";
import { tcpTransport } from "../src/transport/tcp-transport.js";
import type { Transport } from "../src/transport/transport.js";
import { Users } from "./fixtures.js";
import { trackResources } from "./resources.js";

const base = { env: {}, handleSignals: false, graceMs: 200, warmupMs: 0, host: "127.0.0.1" } as const;

function blackHole(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
    s.resume(); // read everything, answer nothing
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve({
        port: (server.address() as net.AddressInfo).port,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

function provider(extra: Record<string, unknown> = {}) {
  const app = createApplication({ ...base, ...extra, name: "p", registry: "memory" });
  app.provide(Users, {
    get: () => undefined,
    insert: () => 1,
    fail: () => undefined,
    slow: (_ctx, ms) => sleep(ms).then(() => "done"),
    echo: (_ctx, v) => v,
    notify: () => {},
    whoami: () => "p",
    big: (_ctx, bytes) => "x".repeat(bytes),
  });
  return app;
}

describe("heartbeat and idle", () => {
  // Every test here must release every socket, server and timer it made.
  let assertReleased: () => Promise<void> = async () => {};
  beforeEach(() => {
    assertReleased = trackResources();
  });
  afterEach(() => assertReleased());

  it("declares a silent peer dead within 3 heartbeats and fails its pending calls with unavailable", async () => {
    const hole = await blackHole();
    const consumer = createApplication({ ...base, name: "c", registry: `direct://127.0.0.1:${hole.port}`, heartbeatIntervalMs: 100, retries: 0 });
    try {
      const users = withOptions(consumer.client(Users), { timeoutMs: 10_000 });
      const started = Date.now();
      const error = (await users.whoami().catch((e: unknown) => e)) as FarcallError;
      const elapsed = Date.now() - started;
      assert.ok(error instanceof FarcallError);
      assert.equal(error.code, "unavailable", error.message);
      assert.match(error.message, /3 heartbeats/);
      // Dead after 3 intervals without data, checked once per interval: at most 4 intervals.
      assert.ok(elapsed < 10_000 / 2, `detected after ${elapsed} ms, not at the call's deadline`);
    } finally {
      await consumer.close();
      await hole.close();
    }
  });

  it("keeps a healthy idle link open: heartbeats answer and the provider does not close it", async () => {
    const p = provider({ idleTimeoutMs: 300 });
    await p.start();
    const tcp = tcpTransport();
    let connects = 0;
    const counting: Transport = { ...tcp, connect: (address) => (connects++, tcp.connect(address)) };
    const consumer = createApplication({ ...base, name: "c", registry: `direct://127.0.0.1:${p.address?.port}`, heartbeatIntervalMs: 50, transport: counting });
    try {
      const users = consumer.client(Users);
      await users.whoami();
      await sleep(1000); // more than 3 idle timeouts and 6 dead-peer windows
      assert.equal(await users.whoami(), "p");
      assert.equal(connects, 1, "no reconnect on a healthy idle link");
    } finally {
      await consumer.close();
      await p.close();
    }
  });

  it("closes a link that stays idle past idleTimeoutMs", async () => {
    const p = provider({ idleTimeoutMs: 200 });
    await p.start();
    try {
      const socket = net.connect({ host: "127.0.0.1", port: p.address?.port ?? 0 });
      socket.on("error", () => {});
      socket.resume(); // read the polite `closing` frame, then see the close
      const closed = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 3000);
        socket.once("close", () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      socket.destroy();
      assert.ok(closed, "the provider closed the idle link");
    } finally {
      await p.close();
    }
  });
});
