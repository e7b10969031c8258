import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ServerConnection } from "../protocol/binary/server-connection.js";
import { TimingWheel } from "../timing/timing-wheel.js";
import { ServerCallContext } from "./server-call-context.js";

function fakeConnection(closed = false): ServerConnection {
  return { closed, remote: "127.0.0.1:1", aborts: new Set<() => void>() } as unknown as ServerConnection;
}

describe("ServerCallContext", () => {
  it("registers a hook and a wheel entry for a running call and removes both on release", () => {
    const wheel = new TimingWheel({ autoTick: false });
    const connection = fakeConnection();
    const context = new ServerCallContext("s", "m", {}, Date.now() + 60_000, connection, wheel);
    assert.equal(context.signal.aborted, false);
    assert.equal(connection.aborts.size, 1);
    assert.equal(wheel.size, 1);
    context.release();
    assert.equal(connection.aborts.size, 0);
    assert.equal(wheel.size, 0);
    assert.equal(context.settled, true);
  });

  it("registers nothing when signal is first read after the call settled", () => {
    const wheel = new TimingWheel({ autoTick: false });
    const connection = fakeConnection();
    const context = new ServerCallContext("s", "m", {}, Date.now() + 60_000, connection, wheel);
    context.release();
    const signal = context.signal;
    assert.equal(signal.aborted, false);
    assert.equal(connection.aborts.size, 0, "no abort hook left on the connection");
    assert.equal(wheel.size, 0, "no wheel entry left behind");
    assert.equal(context.signal, signal, "the same signal on every read");
  });

  it("read after settling, the signal reflects a deadline already passed or a closed connection", () => {
    const wheel = new TimingWheel({ autoTick: false });
    const late = new ServerCallContext("s", "m", {}, Date.now() - 1, fakeConnection(), wheel);
    late.release();
    assert.equal((late.signal.reason as { code?: string }).code, "deadline_exceeded");
    const dropped = new ServerCallContext("s", "m", {}, Infinity, fakeConnection(true), wheel);
    dropped.release();
    assert.equal((dropped.signal.reason as { code?: string }).code, "canceled");
    assert.equal(wheel.size, 0);
  });
});
