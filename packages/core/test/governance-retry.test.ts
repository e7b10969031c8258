// The retry budget of failover end to end: three real providers that reject every call
// `resource_exhausted` (an overload answer failover retries for idempotent methods) and a consumer
// built with createApplication over the in-memory transport and registry. The providers count what
// they execute, so retries are counted where they land: executions − calls.
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { FarcallError } from "../src/errors/farcall-error.js";
import { Users } from "./fixtures.js";
import { type Provider, world, type World } from "./governance-world.js";
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

async function overloaded(): Promise<Provider[]> {
  const providers = [await w.provider("p1"), await w.provider("p2"), await w.provider("p3")];
  for (const p of providers) p.fail("resource_exhausted");
  return providers;
}

function executions(providers: readonly Provider[]): number {
  return providers.reduce((sum, p) => sum + p.count("whoami"), 0);
}

/** Makes `n` calls one after the other; returns their errors (every call fails here). */
async function callAll(call: () => Promise<unknown>, n: number): Promise<FarcallError[]> {
  const errors: FarcallError[] = [];
  for (let i = 0; i < n; i++) {
    try {
      await call();
      assert.fail("an overloaded service answered");
    } catch (error) {
      assert.ok(error instanceof FarcallError);
      errors.push(error);
    }
  }
  return errors;
}

describe("retry budget (end to end)", () => {
  it("keeps failover's retries within percent of the calls, or the floor when that is more, and marks the calls it stopped", async () => {
    const providers = await overloaded();
    // Floor: minPerSecond × ttlMs / 1000 = 10 retries. The whole test runs well inside one ttl.
    const app = w.consumer({ retryBudget: { percent: 0.2, minPerSecond: 1, ttlMs: 10_000 }, outlierDetection: false });
    const users = app.client(Users);
    const calls = 200;
    const errors = await callAll(() => users.whoami(), calls);
    const retries = executions(providers) - calls;
    assert.ok(retries <= Math.ceil(Math.max(0.2 * calls, 10)), `${retries} retries for ${calls} calls`);
    assert.ok(retries >= 10, `the budget allowed its floor at least: ${retries}`);
    for (const error of errors) assert.equal(error.code, "resource_exhausted");
    const stopped = errors.filter((e) => e.details["retryBudgetExhausted"] === true);
    assert.ok(stopped.length > 0, "some calls were not retried for want of budget");
    const service = app.governance().services[0];
    assert.equal(service?.retryBudget?.exhausted, stopped.length, "the snapshot counts the refused retries");
  });

  it("retryBudget: false removes the cap: every call tries each of the three providers once", async () => {
    const providers = await overloaded();
    const app = w.consumer({ retryBudget: false, outlierDetection: false });
    const users = app.client(Users);
    const errors = await callAll(() => users.whoami(), 60);
    assert.equal(executions(providers), 180, "1 call + 2 retries each, on three distinct providers");
    for (const p of providers) assert.equal(p.count("whoami"), 60, `${p.name} tried once per call`);
    assert.ok(errors.every((e) => e.details["retryBudgetExhausted"] === undefined));
    assert.equal(app.governance().services[0]?.retryBudget, undefined);
  });

  it("shares one budget per service between clients, and never spends it on a non-idempotent call that was sent", async () => {
    const providers = await overloaded();
    const app = w.consumer({ retryBudget: { percent: 0, minPerSecond: 0.5, ttlMs: 10_000 }, outlierDetection: false });
    // Floor: 0.5 × 10 = 5 retries in all, whatever the number of clients.
    const a = app.client(Users);
    const b = app.client(Users, { retries: 1 });
    await callAll(() => a.insert({ id: "1", name: "x", age: 1, tags: [] }), 20);
    assert.equal(providers.reduce((sum, p) => sum + p.count("insert"), 0), 20, "a sent non-idempotent call is never retried");
    await callAll(() => a.whoami(), 10);
    await callAll(() => b.whoami(), 10);
    assert.equal(executions(providers) - 20, 5, "five retries in all across both clients");
  });
});
