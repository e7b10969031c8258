// Outlier ejection end to end: three real providers and a consumer built with createApplication
// over the in-memory transport and registry. A provider answering `unavailable` is ejected on its
// 5th failure in a row (the default), gets no call while ejected, and failover moves its calls to
// the others; the cap (10 % of three, at least one) keeps a second failing provider in rotation.
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import type { Application } from "../src/application.js";
import { healthWarningCode } from "../src/cluster/service-governance.js";
import { Users } from "./fixtures.js";
import { findProvider, type Provider, providerState, warnings, world, type World } from "./governance-world.js";
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

function stateOf(app: Application, p: Provider): string | undefined {
  return findProvider(app, p.address)?.state;
}

async function three(): Promise<[Provider, Provider, Provider]> {
  return [await w.provider("p1"), await w.provider("p2"), await w.provider("p3")];
}

describe("outlier ejection (end to end)", () => {
  it("ejects a provider answering unavailable on exactly its 5th failure in a row; the others take every call", async () => {
    const [bad, p2, p3] = await three();
    bad.fail("unavailable");
    const health = warnings(healthWarningCode);
    try {
      const app = w.consumer();
      const users = app.client(Users);
      let calls = 0;
      while (bad.count() < 5) {
        assert.ok(calls < 500, "the failing provider was picked 5 times within 500 calls");
        assert.notEqual(stateOf(app, bad), "ejected", `not ejected after ${bad.count()} failures`);
        // Idempotent: failover retries the provider's unavailable on another one.
        assert.notEqual(await users.whoami(), "p1");
        calls++;
      }
      const snapshot = providerState(app, bad.address);
      assert.equal(snapshot.state, "ejected", "ejected on the 5th failure in a row");
      assert.ok(snapshot.ejectedUntil !== undefined && snapshot.ejectedUntil > Date.now(), "with an end in the future");
      assert.equal(providerState(app, p2.address).state, "healthy");
      assert.equal(providerState(app, p3.address).state, "healthy");
      const before = { p2: p2.count(), p3: p3.count() };
      for (let i = 0; i < 60; i++) assert.notEqual(await users.whoami(), "p1");
      assert.equal(bad.count(), 5, "no call reached the ejected provider");
      assert.equal(p2.count() + p3.count(), before.p2 + before.p3 + 60, "the others took every call, once each");
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(health.seen.filter((e) => e.message.includes(bad.address) && /ejected/.test(e.message)).length, 1, "one warning for the ejection");
    } finally {
      health.stop();
    }
  });

  it("a success resets the count: four failures, a success, four failures do not eject", async () => {
    const [bad] = await three();
    const app = w.consumer({ loadBalancer: "roundRobin" });
    const users = app.client(Users);
    bad.fail("unavailable");
    while (bad.count() < 4) await users.whoami();
    bad.heal();
    while (bad.count() < 5) await users.whoami();
    bad.fail("unavailable");
    while (bad.count() < 9) await users.whoami();
    assert.equal(providerState(app, bad.address).state, "degraded", "recent failures, not ejected");
    assert.equal(providerState(app, bad.address).consecutiveFailures, 4);
  });

  it("never ejects more than one of three providers, even when two fail", async () => {
    const [bad1, bad2, good] = await three();
    bad1.fail("unavailable");
    bad2.fail("unavailable");
    const app = w.consumer();
    const users = app.client(Users);
    for (let i = 0; i < 300 && !(bad1.count() >= 5 && bad2.count() >= 5); i++) assert.equal(await users.whoami(), "p3");
    // Both failed at least five times in a row; only one may be out.
    for (let i = 0; i < 40; i++) assert.equal(await users.whoami(), "p3", "every call ends on the healthy provider");
    const states = [providerState(app, bad1.address).state, providerState(app, bad2.address).state].sort();
    assert.deepEqual(states, ["degraded", "ejected"]);
    assert.equal(providerState(app, good.address).state, "healthy");
    const kept = providerState(app, bad1.address).state === "ejected" ? bad2 : bad1;
    const ejected = kept === bad1 ? bad2 : bad1;
    const runs = { kept: kept.count(), ejected: ejected.count() };
    for (let i = 0; i < 40; i++) await users.whoami();
    assert.ok(kept.count() > runs.kept, "the failing provider over the cap stays in rotation");
    assert.equal(ejected.count(), runs.ejected, "the ejected one gets nothing");
  });

  it("outlierDetection: false never ejects", async () => {
    const [bad] = await three();
    bad.fail("unavailable");
    const app = w.consumer({ outlierDetection: false });
    const users = app.client(Users);
    for (let i = 0; i < 300 && bad.count() < 15; i++) assert.notEqual(await users.whoami(), "p1");
    assert.ok(bad.count() >= 15, "the failing provider keeps being picked");
    assert.equal(providerState(app, bad.address).state, "healthy", "no outlier detection: no health state");
    assert.equal(providerState(app, bad.address).consecutiveFailures, 0);
  });

  it("does not count application errors or resource_exhausted as failures", async () => {
    const [p1] = await three();
    const app = w.consumer({ loadBalancer: "roundRobin", faultTolerance: "failfast" });
    const users = app.client(Users);
    p1.fail("resource_exhausted", "whoami");
    for (let i = 0; i < 30; i++) await users.whoami().catch(() => undefined);
    for (let i = 0; i < 30; i++) await users.fail("thrown").catch(() => undefined);
    assert.ok(p1.count("whoami") >= 8 && p1.count("fail") >= 8, "p1 got its share");
    assert.equal(providerState(app, p1.address).state, "healthy");
  });

  it("takes its options: consecutiveFailures 2 ejects on the 2nd failure, a short ejection ends and the provider is back", async () => {
    const [bad] = await three();
    bad.fail("unavailable");
    const app = w.consumer({ outlierDetection: { consecutiveFailures: 2, baseEjectionMs: 100, intervalMs: 50 } });
    const users = app.client(Users);
    for (let i = 0; i < 300 && bad.count() < 2; i++) await users.whoami();
    assert.equal(providerState(app, bad.address).state, "ejected");
    bad.heal();
    const end = Date.now() + 3000;
    while (bad.count() === 2 && Date.now() < end) await users.whoami();
    assert.ok(bad.count() > 2, "back in rotation once its ejection ended");
    assert.notEqual(providerState(app, bad.address).state, "ejected");
  });
});
