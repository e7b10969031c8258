import assert from "node:assert/strict";
import { it } from "node:test";
import { tickNow } from "./tick-clock.js";

it("reads the clock once per burst of synchronous work and again after it", async () => {
  const first = tickNow();
  const spin = Date.now() + 5;
  while (Date.now() < spin) {
    // 5 ms of synchronous work: the burst's reading stays
  }
  assert.equal(tickNow(), first);
  await Promise.resolve(); // the invalidation microtask has run
  await Promise.resolve();
  assert.ok(tickNow() >= first + 5, "a later burst reads the clock again");
});
