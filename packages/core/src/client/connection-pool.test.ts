import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FarcallError } from "../errors/farcall-error.js";
import type { Endpoint } from "../registry/endpoint.js";
import { sampleEndpoint } from "../registry/sample-endpoint.js";
import { TimingWheel } from "../timing/timing-wheel.js";
import type { Transport } from "../transport/transport.js";
import { ConnectionPool } from "./connection-pool.js";
import { msgpackSerializer } from "../serialization/msgpack-serializer.js";

const endpoint: Endpoint = sampleEndpoint("s", 9, { id: "e1", pid: 0 });

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
