import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Call, Invoke } from "../../call/call.js";
import { FarcallError } from "../../errors/farcall-error.js";
import { failsafe } from "./failsafe.js";
import type { ClusterView } from "./fault-tolerance.js";

const cluster: ClusterView = { endpoints: () => [], pick: () => undefined };
const call: Call = {
  ref: { service: "audit", version: "1", group: "", method: "record", idempotent: false, oneway: false },
  args: ["entry"],
  metadata: {},
  deadline: Infinity,
  signal: undefined,
  attempt: 0,
  tried: [],
};

describe("failsafe", () => {
  it("passes a success through untouched, with one attempt", async () => {
    const reply = { value: 42, metadata: { k: "v" } };
    const calls: Call[] = [];
    const attempt: Invoke = (c) => (calls.push(c), Promise.resolve(reply));
    assert.equal(await failsafe()(call, attempt, cluster), reply);
    assert.deepEqual(calls, [call]);
  });

  it("resolves any failure with an empty reply and tells onError the error and the call, once, without retrying", async () => {
    for (const code of ["unavailable", "deadline_exceeded", "application", "canceled", "internal"] as const) {
      const error = new FarcallError(code, "boom");
      const told: [FarcallError, Call][] = [];
      let attempts = 0;
      const attempt: Invoke = () => (attempts++, Promise.reject(error));
      const reply = await failsafe({ onError: (e, c) => void told.push([e, c]) })(call, attempt, cluster);
      assert.deepEqual(reply, { value: undefined, metadata: undefined });
      assert.equal(attempts, 1);
      assert.equal(told.length, 1);
      assert.equal(told[0]?.[0], error);
      assert.equal(told[0]?.[1], call);
    }
  });

  it("normalises a foreign error for onError and survives an attempt that throws synchronously", async () => {
    const told: FarcallError[] = [];
    const onError = (e: FarcallError) => void told.push(e);
    const strategy = failsafe({ onError });
    await strategy(call, () => Promise.reject(new TypeError("odd")), cluster);
    const throwing: Invoke = () => {
      throw new RangeError("sync");
    };
    assert.deepEqual(await strategy(call, throwing, cluster), { value: undefined, metadata: undefined });
    assert.deepEqual(told.map((e) => [e instanceof FarcallError, e.code, e.message]), [[true, "unknown", "odd"], [true, "unknown", "sync"]]);
  });

  it("swallows what onError throws, and works without onError", async () => {
    const fail: Invoke = () => Promise.reject(new FarcallError("unavailable", "gone"));
    const loud = failsafe({
      onError: () => {
        throw new Error("observer broke");
      },
    });
    assert.deepEqual(await loud(call, fail, cluster), { value: undefined, metadata: undefined });
    assert.deepEqual(await failsafe()(call, fail, cluster), { value: undefined, metadata: undefined });
  });

  it("rejects a non-function onError with bad_option", () => {
    assert.throws(() => failsafe({ onError: "log" as never }), (e) => e instanceof FarcallError && e.reason === "bad_option" && e.details["option"] === "onError");
  });
});
