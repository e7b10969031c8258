import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { describe, it } from "node:test";
import type { Call, Invoke, Reply } from "../../call/call.js";
import { FarcallError } from "../../errors/farcall-error.js";
import { sampleEndpoint } from "../../registry/sample-endpoint.js";
import type { ClusterView } from "./fault-tolerance.js";
import { forking } from "./forking.js";

function makeCall(idempotent: boolean, overrides: Partial<Call> = {}): Call {
  return {
    ref: { service: "s", version: "1", group: "", method: "get", idempotent, oneway: false },
    args: [],
    metadata: {},
    deadline: Infinity,
    signal: undefined,
    attempt: 0,
    tried: ["127.0.0.1:2999"],
    ...overrides,
  };
}

/** A cluster whose balancer picks the first provider not tried; records what each pick was asked. */
function fakeCluster(ports: readonly number[]): { cluster: ClusterView; asked: (readonly string[])[] } {
  const endpoints = ports.map((port) => sampleEndpoint("s", port));
  const asked: (readonly string[])[] = [];
  const cluster: ClusterView = {
    endpoints: (call) => endpoints.filter((e) => !call.tried.includes(`${e.host}:${e.port}`)),
    pick: (call) => {
      asked.push(call.tried);
      return endpoints.find((e) => !call.tried.includes(`${e.host}:${e.port}`));
    },
  };
  return { cluster, asked };
}

interface Fork {
  readonly call: Call;
  resolve(reply: Reply): void;
  reject(error: unknown): void;
}

/** An attempt settled by the test, fork by fork. */
function controlled(): { attempt: Invoke; forks: Fork[] } {
  const forks: Fork[] = [];
  const attempt: Invoke = (call) => new Promise<Reply>((resolve, reject) => void forks.push({ call, resolve, reject }));
  return { attempt, forks };
}

const fork = (forks: readonly Fork[], i: number): Fork => forks[i] ?? assert.fail(`no fork ${i}`);
const down = (port: number) => new FarcallError("unavailable", `127.0.0.1:${port} down`, { details: { address: `127.0.0.1:${port}` } });

describe("forking", () => {
  it("starts one attempt on each of `forks` providers the balancer picks, at once, each with its target", async () => {
    const { cluster, asked } = fakeCluster([3000, 3001, 3002, 3003]);
    const { attempt, forks } = controlled();
    const call = makeCall(true);
    const result = forking({ forks: 3 })(call, attempt, cluster);
    assert.deepEqual(asked, [["127.0.0.1:2999"], ["127.0.0.1:2999", "127.0.0.1:3000"], ["127.0.0.1:2999", "127.0.0.1:3000", "127.0.0.1:3001"]]);
    assert.deepEqual(forks.map((f) => f.call.target), ["127.0.0.1:3000", "127.0.0.1:3001", "127.0.0.1:3002"]);
    assert.deepEqual(forks.map((f) => f.call.attempt), [0, 1, 2]);
    assert.deepEqual(forks.map((f) => f.call.tried), [call.tried, call.tried, call.tried]);
    assert.equal(new Set(forks.map((f) => f.call.signal)).size, 3, "a signal of its own each");
    fork(forks, 1).resolve({ value: "second", metadata: undefined });
    assert.deepEqual(await result, { value: "second", metadata: undefined });
    assert.deepEqual(forks.map((f) => f.call.signal?.aborted), [true, false, true], "the losers are aborted");
    fork(forks, 0).reject(down(3000));
    fork(forks, 2).resolve({ value: "late", metadata: undefined });
  });

  it("resolves with the first success even after other forks failed", async () => {
    const { cluster } = fakeCluster([3000, 3001]);
    const { attempt, forks } = controlled();
    const result = forking()(makeCall(true), attempt, cluster);
    fork(forks, 0).reject(down(3000));
    await new Promise<void>((resolve) => setImmediate(resolve));
    fork(forks, 1).resolve({ value: "ok", metadata: undefined });
    assert.deepEqual(await result, { value: "ok", metadata: undefined });
  });

  it("rejects only when every fork failed, with the last error and details.forks", async () => {
    const { cluster } = fakeCluster([3000, 3001, 3002]);
    const { attempt, forks } = controlled();
    const result = forking({ forks: 3 })(makeCall(true), attempt, cluster);
    let settled = false;
    void result.then(
      () => (settled = true),
      () => (settled = true),
    );
    fork(forks, 2).reject(down(3002));
    fork(forks, 0).reject(down(3000));
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(settled, false);
    fork(forks, 1).reject(down(3001));
    await assert.rejects(result, (e) => e instanceof FarcallError && e.message === "127.0.0.1:3001 down" && e.details["forks"] === 3 && e.details["address"] === "127.0.0.1:3001");
  });

  it("settles at once on an application error: the provider's answer", async () => {
    const { cluster } = fakeCluster([3000, 3001]);
    const { attempt, forks } = controlled();
    const result = forking()(makeCall(true), attempt, cluster);
    const answer = new FarcallError("application", "not found");
    fork(forks, 1).reject(answer);
    await assert.rejects(result, (e) => e === answer);
    assert.equal(fork(forks, 0).call.signal?.aborted, true);
  });

  it("uses as many providers as there are when fewer than forks, and stops on a balancer repeating itself", async () => {
    const { cluster } = fakeCluster([3000]);
    const few = controlled();
    const result = forking({ forks: 4 })(makeCall(true, { tried: [] }), few.attempt, cluster);
    assert.equal(few.forks.length, 1);
    fork(few.forks, 0).resolve({ value: 1, metadata: undefined });
    await result;
    const same = sampleEndpoint("s", 3000);
    const stubborn: ClusterView = { endpoints: () => [same], pick: () => same };
    const once = controlled();
    void forking({ forks: 3 })(makeCall(true), once.attempt, stubborn);
    assert.equal(once.forks.length, 1);
  });

  it("makes exactly one plain attempt for a non-idempotent method", async () => {
    const { cluster, asked } = fakeCluster([3000, 3001]);
    const { attempt, forks } = controlled();
    const call = makeCall(false);
    const result = forking({ forks: 2 })(call, attempt, cluster);
    assert.equal(forks.length, 1);
    assert.equal(fork(forks, 0).call, call);
    assert.equal(asked.length, 0);
    const error = down(3000);
    fork(forks, 0).reject(error);
    await assert.rejects(result, (e) => e === error);
  });

  it("makes one plain attempt when there is no provider, which reports it", async () => {
    const { cluster } = fakeCluster([]);
    const { attempt, forks } = controlled();
    const call = makeCall(true);
    const result = forking()(call, attempt, cluster);
    assert.equal(forks.length, 1);
    assert.equal(fork(forks, 0).call, call);
    const none = new FarcallError("unavailable", "no available provider", { sent: false });
    fork(forks, 0).reject(none);
    await assert.rejects(result, (e) => e === none);
  });

  it("aborts every fork when the call is aborted, and leaves no listener on the call's signal", async () => {
    const { cluster } = fakeCluster([3000, 3001]);
    const caller = new AbortController();
    const { attempt, forks } = controlled();
    const result = forking()(makeCall(true, { signal: caller.signal }), attempt, cluster);
    assert.equal(getEventListeners(caller.signal, "abort").length, 1);
    caller.abort();
    assert.deepEqual(forks.map((f) => f.call.signal?.aborted), [true, true]);
    for (const [i, f] of forks.entries()) f.reject(new FarcallError("canceled", `fork ${i} canceled`));
    await assert.rejects(result, (e) => e instanceof FarcallError && e.code === "canceled");
    const calm = new AbortController();
    const again = controlled();
    const done = forking()(makeCall(true, { signal: calm.signal }), again.attempt, cluster);
    fork(again.forks, 0).resolve({ value: 1, metadata: undefined });
    await done;
    assert.equal(getEventListeners(calm.signal, "abort").length, 0);
    const aborted = new AbortController();
    aborted.abort();
    const late = controlled();
    void forking()(makeCall(true, { signal: aborted.signal }), late.attempt, cluster).catch(() => {});
    assert.deepEqual(late.forks.map((f) => f.call.signal?.aborted), [true, true], "an already aborted call starts aborted forks");
    for (const f of late.forks) f.reject(new FarcallError("canceled", "canceled"));
  });

  it("rejects bad options with bad_option", () => {
    for (const forks of [0, 11, 1.5]) {
      assert.throws(() => forking({ forks }), (e) => e instanceof FarcallError && e.reason === "bad_option" && e.details["option"] === "forks");
    }
  });
});
