// Circuit breakers end to end: real providers and a consumer built with createApplication over the
// in-memory transport and registry. A breaker is per provider and per method; an open one sends
// nothing (the provider's counter does not move) and rejects before any I/O could happen; after
// `openMs` exactly `halfOpenCalls` probes go through. The application reads the system clock, so
// the open period is a short real one waited for with a bounded poll on `app.governance()`.
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { Application } from "../src/application.js";
import type { CircuitBreakerOptions } from "../src/governance/circuit-breaker.js";
import { Users } from "./fixtures.js";
import { failure, findProvider, type Provider, providerState, settlesBeforeIo, until, untilTurns, world, type World } from "./governance-world.js";
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

/** A consumer with breakers on every method and outlier ejection off (so only the breaker acts). */
function consumer(circuitBreaker: CircuitBreakerOptions): Application {
  return w.consumer({ circuitBreaker, outlierDetection: false });
}

/** Asserts the call was refused by an open breaker: `unavailable`, `circuit_open`, never sent. */
async function assertCircuitOpen(call: Promise<unknown>): Promise<void> {
  const error = await failure(call);
  assert.equal(error.code, "unavailable", error.message);
  assert.equal(error.details["reason"], "circuit_open");
  assert.equal(error.sent, false);
}

function breakerOf(app: Application, p: Provider, method: string): string | undefined {
  return findProvider(app, p.address)?.breakers[method];
}

describe("circuit breaker (end to end)", () => {
  it("opens on the minCalls-th failing call; then calls reject circuit_open before any I/O and none reaches the provider", async () => {
    const p1 = await w.provider("p1");
    p1.fail("internal", "insert");
    const app = consumer({ strategy: "errorRatio", threshold: 0.5, minCalls: 4, openMs: 60_000 });
    const users = app.client(Users);
    for (let i = 1; i <= 3; i++) {
      assert.equal((await failure(users.insert({ id: `${i}`, name: "x", age: 1, tags: [] }))).code, "internal");
      assert.equal(breakerOf(app, p1, "insert"), "closed", `still closed after ${i} of minCalls 4`);
    }
    assert.equal((await failure(users.insert({ id: "4", name: "x", age: 1, tags: [] }))).code, "internal");
    assert.equal(breakerOf(app, p1, "insert"), "open", "open after the 4th failing call");
    assert.equal(p1.count("insert"), 4);
    for (let i = 0; i < 10; i++) {
      const call = users.insert({ id: `open-${i}`, name: "x", age: 1, tags: [] });
      assert.ok(await settlesBeforeIo(call), "an open breaker rejects without waiting for I/O");
      await assertCircuitOpen(call);
    }
    assert.equal(p1.count("insert"), 4, "no call reached the provider while the breaker was open");
    // Per method: the provider's other methods keep flowing.
    assert.equal(await users.whoami(), "p1");
    assert.equal(breakerOf(app, p1, "whoami"), "closed");
    assert.equal(providerState(app, p1.address).state, "degraded");
  });

  it("after openMs admits exactly halfOpenCalls probes; their success closes it and calls flow again", async () => {
    const p1 = await w.provider("p1");
    p1.fail("internal", "insert");
    const app = consumer({ minCalls: 2, openMs: 200, halfOpenCalls: 2 });
    const users = app.client(Users);
    const user = { id: "1", name: "x", age: 1, tags: [] };
    for (let i = 0; i < 2; i++) await failure(users.insert(user));
    assert.equal(breakerOf(app, p1, "insert"), "open");
    p1.heal();
    p1.hold();
    await until(() => breakerOf(app, p1, "insert") === "halfOpen", "the breaker half-open once openMs passed");
    const calls = Array.from({ length: 5 }, () => users.insert(user));
    const outcomes = calls.map((call) => call.then((value) => ({ value }), (error: unknown) => ({ error })));
    await untilTurns(() => p1.count("insert") === 4, "the probes reaching the provider");
    // The three calls beyond halfOpenCalls are refused while the probes are still held.
    for (const call of calls.slice(2)) await assertCircuitOpen(call);
    assert.equal(p1.count("insert"), 4, "exactly halfOpenCalls (2) probes reached the provider");
    assert.equal(breakerOf(app, p1, "insert"), "halfOpen");
    p1.release();
    assert.deepEqual(await Promise.all(outcomes.slice(0, 2)), [{ value: 1 }, { value: 1 }]);
    assert.equal(breakerOf(app, p1, "insert"), "closed", "closed once every probe succeeded");
    for (let i = 0; i < 5; i++) assert.equal(await users.insert(user), 1);
    assert.equal(p1.count("insert"), 9);
    assert.equal(providerState(app, p1.address).state, "healthy");
  });

  it("re-opens when the probe fails, for another openMs", async () => {
    const p1 = await w.provider("p1");
    p1.fail("internal", "insert");
    const app = consumer({ minCalls: 2, openMs: 200, halfOpenCalls: 1 });
    const users = app.client(Users);
    const user = { id: "1", name: "x", age: 1, tags: [] };
    for (let i = 0; i < 2; i++) await failure(users.insert(user));
    await until(() => breakerOf(app, p1, "insert") === "halfOpen", "the breaker half-open once openMs passed");
    assert.equal((await failure(users.insert(user))).code, "internal", "the probe reached the provider and failed");
    assert.equal(p1.count("insert"), 3);
    assert.equal(breakerOf(app, p1, "insert"), "open", "the failed probe opened it again");
    await assertCircuitOpen(users.insert(user));
    assert.equal(p1.count("insert"), 3, "nothing reaches the provider after the failed probe");
  });

  it("with two providers opens only the failing one's breaker and sends every call to the other", async () => {
    const bad = await w.provider("bad");
    const good = await w.provider("good");
    bad.fail("internal", "insert");
    const app = consumer({ minCalls: 3, openMs: 60_000 });
    const users = app.client(Users);
    const user = { id: "1", name: "x", age: 1, tags: [] };
    for (let i = 0; i < 200 && breakerOf(app, bad, "insert") !== "open"; i++) await users.insert(user).catch(() => undefined);
    assert.equal(breakerOf(app, bad, "insert"), "open");
    const badRuns = bad.count("insert");
    const goodRuns = good.count("insert");
    for (let i = 0; i < 30; i++) assert.equal(await users.insert(user), 1, "every call succeeds on the healthy provider");
    assert.equal(bad.count("insert"), badRuns, "the failing provider got no call while its breaker was open");
    assert.equal(good.count("insert"), goodRuns + 30);
    assert.equal(breakerOf(app, good, "insert"), "closed");
    assert.equal(providerState(app, good.address).state, "healthy");
    assert.equal(providerState(app, bad.address).state, "degraded");
  });

  it("slowCallRatio opens on slow successes", async () => {
    const p1 = await w.provider("p1");
    const app = consumer({ strategy: "slowCallRatio", threshold: 1, slowCallMs: 20, minCalls: 2, openMs: 60_000 });
    const users = app.client(Users);
    for (let i = 0; i < 2; i++) {
      p1.hold();
      const call = users.whoami();
      await untilTurns(() => p1.count("whoami") === i + 1, "the call running");
      await sleep(60); // held 60 ms: slower than slowCallMs (20) whatever the machine
      p1.release();
      assert.equal(await call, "p1", "a slow call still succeeds");
    }
    assert.equal(breakerOf(app, p1, "whoami"), "open");
    await assertCircuitOpen(users.whoami());
    assert.equal(p1.count("whoami"), 2);
  });

  it("per-method options win: circuitBreaker false on a method keeps its calls flowing; a client's breaker applies without the application's", async () => {
    const p1 = await w.provider("p1");
    p1.fail("internal");
    const app = w.consumer({ outlierDetection: false });
    const users = app.client(Users, { circuitBreaker: { minCalls: 2, openMs: 60_000 }, methods: { insert: { circuitBreaker: false } } });
    const user = { id: "1", name: "x", age: 1, tags: [] };
    for (let i = 0; i < 10; i++) assert.equal((await failure(users.insert(user))).code, "internal");
    assert.equal(p1.count("insert"), 10, "no breaker on insert");
    assert.equal(breakerOf(app, p1, "insert"), undefined);
    for (let i = 0; i < 2; i++) await failure(users.whoami());
    assert.equal(breakerOf(app, p1, "whoami"), "open", "the client's breaker on the other methods");
    await assertCircuitOpen(users.whoami());
    // Without the client option, the application's default (off) applies.
    const plain = app.client(Users);
    for (let i = 0; i < 3; i++) assert.equal((await failure(plain.echo(i))).code, "internal");
    assert.equal(p1.count("echo"), 3);
  });
});
