// Fault-tolerance strategies chosen by name (and one by value) end to end: failsafe, failback,
// forking and broadcast over real providers and a consumer built with createApplication, in-memory
// transport and registry. The providers count what they execute, so "runs once", "runs on every
// provider" and "runs on both" are read where the calls land.
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { failback } from "../src/cluster/fault-tolerance/failback.js";
import { withOptions } from "../src/client/stub.js";
import { Users } from "./fixtures.js";
import { failure, type Provider, until, untilTurns, world, type World } from "./governance-world.js";
import { trackResources } from "./resources.js";

let w: World;
let assertReleased: () => Promise<void>;
beforeEach(() => {
  assertReleased = trackResources();
  w = world();
});
afterEach(async () => {
  await w.close();
  await assertReleased();
});

const user = { id: "1", name: "x", age: 1, tags: [] };

function total(providers: readonly Provider[], method: Parameters<Provider["count"]>[0]): number {
  return providers.reduce((sum, p) => sum + p.count(method), 0);
}

describe("fault-tolerance strategies (end to end)", () => {
  it("runs the strategy over every provider from a fresh client's first call: broadcast reaches all, forking forks", async () => {
    const providers = [await w.provider("p1"), await w.provider("p2"), await w.provider("p3")];
    // Each client below is new: its first call is made before the registry's first list arrived.
    assert.equal(await w.consumer().client(Users, { faultTolerance: "broadcast" }).insert(user), 1);
    for (const p of providers) assert.equal(p.count("insert"), 1, `${p.name} got the first broadcast`);
    assert.match(String(await w.consumer().client(Users, { faultTolerance: "forking", forks: 3 }).whoami()), /^p[123]$/);
    for (const p of providers) assert.equal(p.count("whoami"), 1, `${p.name} ran a fork of the first call`);
  });

  it("failsafe: a failure resolves undefined after one attempt, whatever the code", async () => {
    const p1 = await w.provider("p1");
    const p2 = await w.provider("p2");
    p1.fail("unavailable");
    p2.fail("unavailable");
    const users = w.consumer({ faultTolerance: "failsafe", outlierDetection: false }).client(Users);
    for (let i = 0; i < 10; i++) assert.equal(await users.whoami(), undefined);
    assert.equal(total([p1, p2], "whoami"), 10, "one attempt per call: no retry");
    p1.heal();
    p2.heal();
    assert.match(String(await users.whoami()), /^p[12]$/, "a success passes through");
  });

  it("failback by name: a failed idempotent call resolves undefined at once; a sent non-idempotent failure is thrown", async () => {
    const p1 = await w.provider("p1");
    p1.fail("unavailable");
    const users = w.consumer({ faultTolerance: "failback", outlierDetection: false }).client(Users);
    assert.equal(await users.whoami(), undefined);
    assert.equal(p1.count("whoami"), 1);
    const error = await failure(users.insert(user));
    assert.equal(error.code, "unavailable", "never queued: it might run twice");
    assert.equal(p1.count("insert"), 1);
  });

  it("failback as a value: the failed call is retried in the background once the provider recovers", async () => {
    const strategy = failback({ intervalMs: 20 });
    try {
      const p1 = await w.provider("p1");
      p1.fail("unavailable");
      const users = w.consumer({ faultTolerance: strategy, outlierDetection: false }).client(Users);
      assert.equal(await users.get("42"), undefined);
      assert.equal(strategy.queued, 1);
      p1.heal();
      await until(() => strategy.queued === 0, "the background retry succeeded");
      assert.equal(p1.count("get"), 2, "one failed attempt and one background retry");
    } finally {
      strategy.close();
    }
  });

  it("forking: an idempotent call runs on both providers and the first reply wins", async () => {
    const fast = await w.provider("fast");
    const held = await w.provider("held");
    held.hold();
    const users = w.consumer({ faultTolerance: "forking" }).client(Users);
    const pending = users.whoami();
    assert.equal(await pending, "fast", "answered by the provider that replied while the other held its fork");
    await untilTurns(() => held.count("whoami") === 1, "the other fork reached the held provider");
    assert.equal(fast.count("whoami"), 1);
    held.release();
    // With both free, every call runs on both.
    for (let i = 0; i < 5; i++) await users.whoami();
    assert.deepEqual([fast.count("whoami"), held.count("whoami")], [6, 6]);
  });

  it("forking: a failing provider does not fail the call; a non-idempotent call runs exactly once", async () => {
    const p1 = await w.provider("p1");
    const p2 = await w.provider("p2");
    p1.fail("unavailable");
    const users = w.consumer({ faultTolerance: "forking", outlierDetection: false }).client(Users);
    for (let i = 0; i < 5; i++) assert.equal(await users.whoami(), "p2");
    assert.deepEqual([p1.count("whoami"), p2.count("whoami")], [5, 5]);
    p1.heal();
    for (let i = 0; i < 8; i++) assert.equal(await users.insert(user), 1);
    assert.equal(total([p1, p2], "insert"), 8, "one run per non-idempotent call");
  });

  it("forking takes forks from the client: 3 runs the call on three providers", async () => {
    const providers = [await w.provider("p1"), await w.provider("p2"), await w.provider("p3")];
    const users = w.consumer().client(Users, { faultTolerance: "forking", forks: 3 });
    await users.whoami();
    for (const p of providers) assert.equal(p.count("whoami"), 1, `${p.name} ran the call`);
  });

  it("broadcast: every provider runs the call once; one failure fails it with failed and total", async () => {
    const providers = [await w.provider("p1"), await w.provider("p2"), await w.provider("p3")];
    const users = w.consumer({ faultTolerance: "broadcast", outlierDetection: false }).client(Users);
    assert.equal(await users.insert(user), 1);
    for (const p of providers) assert.equal(p.count("insert"), 1, `${p.name} ran it once`);
    providers[1]?.fail("internal");
    const error = await failure(users.insert(user));
    assert.equal(error.code, "internal");
    assert.deepEqual([error.details["failed"], error.details["total"]], [1, 3]);
    for (const p of providers) assert.equal(p.count("insert"), 2, `${p.name} ran the failed broadcast once too`);
  });

  it("a method's faultTolerance overrides the client's", async () => {
    const p1 = await w.provider("p1");
    const p2 = await w.provider("p2");
    const users = w.consumer().client(Users, { faultTolerance: "broadcast", methods: { whoami: { faultTolerance: "failfast" } } });
    await users.insert(user);
    assert.deepEqual([p1.count("insert"), p2.count("insert")], [1, 1]);
    await withOptions(users, { timeoutMs: 1000 }).whoami();
    assert.equal(total([p1, p2], "whoami"), 1);
  });
});
