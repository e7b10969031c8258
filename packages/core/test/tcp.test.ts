// Real TCP on 127.0.0.1:0: the call path over sockets, leak checks, hostile frames, and a provider
// process killed with SIGKILL mid-call.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, it } from "node:test";
import { createApplication } from "../src/application.js";
import { withOptions } from "../src/client/stub.js";
import { FarcallError } from "../src/errors/farcall-error.js";
import { headerBytes } from "../src/protocol/binary/frame.js";
import { FrameWriter } from "../src/protocol/binary/frame-encoder.js";
import { encodeRoute } from "../src/protocol/binary/frame-encoder.js";
import { decodeFrames } from "../src/protocol/binary/frame-decoder.js";
import { Users } from "./fixtures.js";
import { trackResources } from "./resources.js";

const base = { env: {}, handleSignals: false, graceMs: 1000, warmupMs: 0, host: "127.0.0.1" } as const;

async function startProvider(extra: Record<string, unknown> = {}) {
  const app = createApplication({ ...base, ...extra, name: "p", registry: "memory" });
  app.provide(Users, {
    get: () => undefined,
    insert: () => 1,
    fail: () => {
      throw new Error("x");
    },
    slow: (_ctx, ms) => new Promise((r) => setTimeout(() => r("done"), ms)),
    echo: (_ctx, v) => v,
    notify: () => {},
    whoami: () => "p",
    big: (_ctx, bytes) => "x".repeat(bytes),
  });
  await app.start();
  return app;
}

function rawConnect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port }, () => resolve(socket));
    socket.once("error", reject);
  });
}

function readUntilClose(socket: net.Socket, timeoutMs: number): Promise<{ data: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on("data", (c) => chunks.push(c));
    socket.once("close", () => finish(true));
    socket.on("error", () => {});
    function finish(closed: boolean): void {
      clearTimeout(timer);
      socket.destroy();
      resolve({ data: Buffer.concat(chunks), closed });
    }
  });
}

describe("tcp", () => {
  // Every test here must release every socket, server and timer it made.
  let assertReleased: () => Promise<void> = async () => {};
  beforeEach(() => {
    assertReleased = trackResources();
  });
  afterEach(() => assertReleased());

  it("serves 1000 concurrent calls over one socket and leaks nothing", async () => {
    const check = trackResources();
    const provider = await startProvider();
    const consumer = createApplication({ ...base, name: "c", registry: `direct://127.0.0.1:${provider.address?.port}` });
    const users = consumer.client(Users);
    const results = await Promise.all(Array.from({ length: 1000 }, (_, i) => users.echo({ i })));
    assert.equal(results.length, 1000);
    assert.deepEqual(results[999], { i: 999 });
    await consumer.close();
    await provider.close();
    await check();
  });

  it("rejects an oversized length header before any body byte arrives", async () => {
    const provider = await startProvider({ maxFrameBytes: 64 * 1024 });
    const socket = await rawConnect(provider.address?.port ?? 0);
    const header = Buffer.alloc(headerBytes);
    header.writeUInt16BE(0xfaca, 0);
    header[2] = 1;
    header[4] = 1;
    header.writeUInt32BE(7, 8);
    header.writeUInt32BE(0xffffffff, 20); // body length: 4 GiB, never sent
    socket.write(header);
    const { data, closed } = await readUntilClose(socket, 3000);
    assert.ok(closed, "the provider closes the connection without waiting for the body");
    const frames = decodeFrames(data);
    assert.equal(frames.length, 1);
    assert.equal(frames[0]?.status, 4, "resource_exhausted"); // 1 + index of resource_exhausted
    await provider.close();
  });

  it("answers unimplemented for an unknown route without decoding the (garbage) body", async () => {
    const provider = await startProvider();
    const socket = await rawConnect(provider.address?.port ?? 0);
    const writer = new FrameWriter();
    writer.writeRequest(9, 0, 1, 0, encodeRoute("no.Such", "1.0.0", "", "x"), undefined, Buffer.from([0xc1, 0xc1, 0xff]));
    socket.write(writer.take());
    const frames: Buffer[] = [];
    await new Promise<void>((resolve) => socket.once("data", (c) => (frames.push(c), resolve())));
    const [reply] = decodeFrames(Buffer.concat(frames));
    assert.equal(reply?.requestId, 9);
    assert.equal(reply?.status, 5, "unimplemented");
    socket.destroy();
    await provider.close();
  });

  it("answers an oversized reply with resource_exhausted and keeps the connection", async () => {
    const provider = await startProvider({ maxFrameBytes: 64 * 1024, graceMs: 5000 });
    const consumer = createApplication({ ...base, name: "c", registry: `direct://127.0.0.1:${provider.address?.port}`, faultTolerance: "failfast" });
    const users = consumer.client(Users);
    assert.equal(await users.whoami(), "p");
    // The request is small; the provider's reply is 100 KiB, over its 64 KiB limit.
    const big = (await users.big(100 * 1024).catch((e: unknown) => e)) as FarcallError;
    assert.equal(big.code, "resource_exhausted", big.message);
    assert.equal(await users.whoami(), "p", "the connection survives");
    await consumer.close();
    const closing = Date.now();
    await provider.close();
    assert.ok(Date.now() - closing < 2000, "no call is left counted as in flight");
  });

  it("rejects an oversized request locally with resource_exhausted, never sent, as a rejected promise", async () => {
    const provider = await startProvider();
    const consumer = createApplication({ ...base, name: "c", registry: `direct://127.0.0.1:${provider.address?.port}`, maxFrameBytes: 64 * 1024, faultTolerance: "failfast" });
    const users = consumer.client(Users);
    assert.equal(await users.whoami(), "p");
    let result: Promise<unknown> | undefined;
    assert.doesNotThrow(() => {
      result = users.echo("x".repeat(100 * 1024));
    });
    const error = (await result?.catch((e: unknown) => e)) as FarcallError;
    assert.equal(error.code, "resource_exhausted", error.message);
    assert.equal(error.sent, false);
    assert.equal(await users.whoami(), "p");
    await consumer.close();
    await provider.close();
  });

  it("serves a non-idempotent call that crosses the provider's closing frame (graceful shutdown race)", async () => {
    for (let i = 0; i < 10; i++) {
      let executed = 0;
      const provider = await startProvider({ graceMs: 5000 });
      const consumer = createApplication({ ...base, name: "c", registry: `direct://127.0.0.1:${provider.address?.port}` });
      const users = consumer.client(Users);
      await users.whoami();
      const closing = provider.close();
      // Written before the consumer reads `closing`: the provider must run it and reply.
      const outcome = await users.insert({ id: "1", name: "n", age: 1, tags: [] }).then(
        () => (executed++, "ok"),
        (e: FarcallError) => `${e.code} sent=${e.sent}: ${e.message}`,
      );
      await closing;
      await consumer.close();
      assert.equal(outcome, "ok", `iteration ${i}`);
      assert.equal(executed, 1);
    }
  });

  it("closes the connection on garbage and stays up for others", async () => {
    const provider = await startProvider();
    const socket = await rawConnect(provider.address?.port ?? 0);
    socket.write(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    const { closed } = await readUntilClose(socket, 3000);
    assert.ok(closed);
    const consumer = createApplication({ ...base, name: "c", registry: `direct://127.0.0.1:${provider.address?.port}` });
    assert.equal(await consumer.client(Users).whoami(), "p");
    await consumer.close();
    await provider.close();
  });

  it("fails pending calls with unavailable at once when the provider process is killed (SIGKILL)", async () => {
    const script = fileURLToPath(new URL("./provider-process.js", import.meta.url));
    const child: ChildProcess = spawn(process.execPath, [script, "victim"], {
      env: { ...process.env, FARCALL_REGISTRY: "memory", FARCALL_HANDLE_SIGNALS: "false" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        child.stdout?.once("data", (d: Buffer) => resolve(d.toString()));
        child.once("exit", () => reject(new Error("provider exited early")));
      });
      const { port } = JSON.parse(line) as { port: number };
      const consumer = createApplication({ ...base, name: "c", registry: `direct://127.0.0.1:${port}` });
      const users = withOptions(consumer.client(Users), { timeoutMs: 30_000 });
      assert.equal(await users.whoami(), "victim");
      const pending = Array.from({ length: 50 }, () => users.slow(20_000).catch((e: unknown) => e));
      await new Promise((r) => setTimeout(r, 200));
      const killedAt = Date.now();
      child.kill("SIGKILL");
      const errors = await Promise.all(pending);
      const elapsed = Date.now() - killedAt;
      for (const error of errors) {
        assert.ok(error instanceof FarcallError);
        assert.equal(error.code, "unavailable");
      }
      assert.ok(elapsed < 2000, `pending calls failed ${elapsed} ms after the kill, not at their timeout`);
      await consumer.close();
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
  });
});
