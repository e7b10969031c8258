import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Call, Invoke, Reply } from "../../call/call.js";
import { FarcallError } from "../../errors/farcall-error.js";
import { sampleEndpoint } from "../../registry/sample-endpoint.js";
import { broadcast } from "./broadcast.js";
import type { ClusterView } from "./fault-tolerance.js";

function makeCall(idempotent: boolean): Call {
  return {
    ref: { service: "s", version: "1", group: "", method: "refresh", idempotent, oneway: false },
    args: ["cache"],
    metadata: {},
    deadline: Infinity,
    signal: undefined,
    attempt: 0,
    tried: [],
  };
}

function fakeCluster(ports: readonly number[]): { cluster: ClusterView; picks: number } {
  const endpoints = ports.map((port) => sampleEndpoint("s", port));
  const state = {
    picks: 0,
    cluster: {
      endpoints: () => endpoints,
      pick: () => {
        state.picks++;
        return endpoints[0];
      },
    } satisfies ClusterView,
  };
  return state;
}

interface Pending {
  readonly call: Call;
  resolve(reply: Reply): void;
  reject(error: unknown): void;
}

function controlled(): { attempt: Invoke; pending: Pending[] } {
  const pending: Pending[] = [];
  const attempt: Invoke = (call) => new Promise<Reply>((resolve, reject) => void pending.push({ call, resolve, reject }));
  return { attempt, pending };
}

const at = (pending: readonly Pending[], i: number): Pending => pending[i] ?? assert.fail(`no attempt ${i}`);
const reply = (value: unknown): Reply => ({ value, metadata: undefined });

describe("broadcast", () => {
  it("runs the call once on every provider at once, each with its target, even for a non-idempotent method", async () => {
    const { cluster } = fakeCluster([3000, 3001, 3002]);
    const { attempt, pending } = controlled();
    const call = makeCall(false);
    const result = broadcast()(call, attempt, cluster);
    assert.deepEqual(pending.map((p) => p.call.target), ["127.0.0.1:3000", "127.0.0.1:3001", "127.0.0.1:3002"]);
    assert.ok(pending.every((p) => p.call.attempt === 0 && p.call.args === call.args && p.call.signal === call.signal));
    at(pending, 2).resolve(reply("third"));
    at(pending, 0).resolve(reply("first"));
    let settled = false;
    void result.then(() => (settled = true));
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(settled, false, "waits for every provider");
    at(pending, 1).resolve(reply("second"));
    assert.deepEqual(await result, reply("third"), "the last provider's reply, whatever the order they answered in");
  });

  it("rejects with the first provider's error in list order, counting failed and total, after all settled", async () => {
    const { cluster } = fakeCluster([3000, 3001, 3002, 3003]);
    const { attempt, pending } = controlled();
    const result = broadcast()(makeCall(true), attempt, cluster);
    at(pending, 3).reject(new FarcallError("internal", "fourth broke"));
    at(pending, 1).reject(new FarcallError("unavailable", "second down", { sent: false, details: { address: "127.0.0.1:3001" } }));
    at(pending, 0).resolve(reply(1));
    at(pending, 2).reject(new TypeError("third odd"));
    await assert.rejects(
      result,
      (e) =>
        e instanceof FarcallError &&
        e.code === "unavailable" &&
        e.message === "second down" &&
        e.sent === false &&
        e.details["address"] === "127.0.0.1:3001" &&
        e.details["failed"] === 3 &&
        e.details["total"] === 4,
    );
  });

  it("makes one plain attempt when there is no provider, which reports it", async () => {
    const { cluster } = fakeCluster([]);
    const { attempt, pending } = controlled();
    const call = makeCall(true);
    const result = broadcast()(call, attempt, cluster);
    assert.equal(pending.length, 1);
    assert.equal(at(pending, 0).call, call);
    const none = new FarcallError("unavailable", "no available provider", { sent: false });
    at(pending, 0).reject(none);
    await assert.rejects(result, (e) => e === none);
  });

  it("does not ask the balancer, and survives an attempt that throws synchronously", async () => {
    const state = fakeCluster([3000, 3001]);
    const throwing: Invoke = (call) => {
      if (call.target === "127.0.0.1:3000") throw new Error("sync");
      return Promise.resolve(reply("ok"));
    };
    await assert.rejects(broadcast()(makeCall(true), throwing, state.cluster), (e) => e instanceof FarcallError && e.message === "sync" && e.details["failed"] === 1 && e.details["total"] === 2);
    assert.equal(state.picks, 0);
  });
});
