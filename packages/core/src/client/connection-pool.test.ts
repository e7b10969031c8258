import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FarcallError } from "../errors/farcall-error.js";
import type { Endpoint } from "../registry/endpoint.js";
import { sampleEndpoint } from "../registry/sample-endpoint.js";
import { TimingWheel } from "../timing/timing-wheel.js";
import type { Link, Transport } from "../transport/transport.js";
import { memoryTransport } from "../transport/memory-transport.js";
import { encodeFrame } from "../protocol/binary/frame-encoder.js";
import { FrameFlags } from "../protocol/binary/frame.js";
import { ConnectionPool } from "./connection-pool.js";
import { msgpackSerializer } from "../serialization/msgpack-serializer.js";

const endpoint: Endpoint = sampleEndpoint("s", 9, { id: "e1", pid: 0 });
const empty = new Uint8Array(0);

function refusingPool(random: () => number) {
  const clock = { t: 1_000_000, now: () => clock.t };
  let attempts = 0;
  const transport: Transport = {
    connect: () => {
      attempts++;
      return Promise.reject(new Error("ECONNREFUSED"));
    },
    listen: () => Promise.reject(new Error("unused")),
  };
  const serializer = msgpackSerializer();
  const pool = new ConnectionPool({
    transport,
    connection: {
      serializer,
      serializers: new Map([[serializer.id, serializer]]),
      maxFrameBytes: 1 << 20,
      heartbeatIntervalMs: 0,
      maxPendingCalls: 10,
      maxBufferedBytes: 1 << 20,
      wheel: new TimingWheel({ autoTick: false }),
    },
    backoffInitialMs: 1000,
    backoffMaxMs: 120_000,
    closedHoldMs: 5000,
    serializersByName: new Map([[serializer.name, serializer]]),
    clock,
    random,
  });
  return { pool, clock, attempts: () => attempts };
}

/** How long after a failure the address stays unusable, found by stepping the fake clock (1 ms steps). */
function unusableFor(pool: ConnectionPool, clock: { t: number }): number {
  const start = clock.t;
  for (let waited = 0; waited <= 200_000; waited += 1) {
    if (pool.usable(endpoint, start + waited)) return waited;
  }
  return Infinity;
}

describe("ConnectionPool reconnect backoff", () => {
  it("backs off 1 s x 1.6^n after each failed connect, capped at backoffMaxMs, with jitter within ±20 %", async () => {
    for (const [random, factor] of [[() => 0.5, 1], [() => 0, 0.8], [() => 0.999999, 1.2]] as const) {
      const { pool, clock, attempts } = refusingPool(random);
      const expected = [1000, 1600, 2560, 4096, 6554, 10486, 16777, 26844, 42950, 68719, 109951, 120000, 120000];
      for (const [n, base] of expected.entries()) {
        const error = await pool.acquire(endpoint).catch((e: unknown) => e);
        assert.ok(error instanceof FarcallError);
        assert.equal(error.code, "unavailable");
        assert.equal(error.sent, false);
        assert.equal(error.details["address"], "127.0.0.1:9");
        assert.equal(attempts(), n + 1);
        const wait = unusableFor(pool, clock);
        assert.ok(Math.abs(wait - base * factor) <= 2, `failure ${n + 1}: unusable for ${wait} ms, expected ${base * factor}`);
        clock.t += wait;
      }
      pool.close();
    }
  });

  it("shares one connect between concurrent acquires", async () => {
    const { pool, attempts } = refusingPool(() => 0.5);
    const results = await Promise.all([pool.acquire(endpoint), pool.acquire(endpoint), pool.acquire(endpoint)].map((p) => p.catch((e: unknown) => e)));
    assert.equal(attempts(), 1);
    for (const r of results) assert.ok(r instanceof FarcallError);
    pool.close();
  });
});

describe("ConnectionPool.connected", () => {
  /** A pool over the memory transport, with the provider ends of its links in the test's hands. */
  async function connectedPool() {
    const transport = memoryTransport();
    const providerLinks: Link[] = [];
    const listener = await transport.listen({ host: "127.0.0.1", port: 0 }, (link) => providerLinks.push(link));
    const serializer = msgpackSerializer();
    const wheel = new TimingWheel({ autoTick: false });
    const pool = new ConnectionPool({
      transport,
      connection: { serializer, serializers: new Map([[serializer.id, serializer]]), maxFrameBytes: 1 << 20, heartbeatIntervalMs: 0, maxPendingCalls: 10, maxBufferedBytes: 1 << 20, wheel },
      backoffInitialMs: 1000,
      backoffMaxMs: 120_000,
      closedHoldMs: 5000,
      serializersByName: new Map([[serializer.name, serializer]]),
    });
    const provider = sampleEndpoint("s", listener.address.port);
    const close = async (): Promise<void> => {
      pool.close();
      await listener.close();
    };
    return { pool, provider, providerLinks, close };
  }

  /** Waits until `condition` holds (memory links deliver on setImmediate), at most 100 turns. */
  async function until(condition: () => boolean): Promise<void> {
    for (let i = 0; i < 100 && !condition(); i++) await new Promise((resolve) => setImmediate(resolve));
  }

  it("is true only while an open connection to the address has not received closing", async () => {
    const { pool, provider, providerLinks, close } = await connectedPool();
    try {
      assert.equal(pool.connected(provider), false, "no connection yet");
      await pool.acquire(provider);
      assert.equal(pool.connected(provider), true);
      assert.equal(pool.connected({ ...provider, id: "another record, same address" }), true, "by address");
      assert.equal(pool.connected(sampleEndpoint("s", provider.port + 1)), false, "another address");
      // What the pool's listeners (the directories) see when they are told of the change.
      const seen: Array<[connected: boolean, open: number]> = [];
      pool.onChange(() => seen.push([pool.connected(provider), pool.size]));
      const closing = encodeFrame({ flags: FrameFlags.closing, serializerId: 0, status: 0, requestId: 0, timeoutMs: 0, route: empty, metadata: empty, body: empty });
      providerLinks[0]?.write(closing);
      await until(() => seen.length > 0);
      assert.deepEqual(seen[0], [false, 1], "not connected as soon as closing arrives, while the connection is still open");
    } finally {
      await close();
    }
  });

  it("is false once the connection drops", async () => {
    const { pool, provider, providerLinks, close } = await connectedPool();
    try {
      await pool.acquire(provider);
      assert.equal(pool.connected(provider), true);
      providerLinks[0]?.destroy();
      await until(() => !pool.connected(provider));
      assert.equal(pool.connected(provider), false);
    } finally {
      await close();
    }
  });
});
