// The governance options of `app.client()`: checked once when the client is made, a bad one
// refused with bad_option naming it the way it was written (`timeoutMs`, `methods.get.timeoutMs`,
// docs/errors.md), whichever strategy would read it; and a good one in force on every call.
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import type { ClientOptions } from "../src/application-options.js";
import { assertBadOption } from "./assertions.js";
import { Users } from "./fixtures.js";
import { failure, world, type World } from "./governance-world.js";
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

describe("client governance options", () => {
  it("names a malformed client option in bad_option", () => {
    const app = w.consumer();
    const bad = (options: unknown, option: string): void => void assertBadOption(() => app.client(Users, options as ClientOptions), option);
    bad({ timeoutMs: -1 }, "timeoutMs");
    bad({ timeoutMs: 2 ** 31 }, "timeoutMs");
    bad({ maxConcurrent: 0 }, "maxConcurrent");
    bad({ retries: 11 }, "retries");
    bad({ forks: 11 }, "forks");
    bad({ circuitBreaker: { threshold: 2 } }, "circuitBreaker.threshold");
    bad({ rateLimit: { kind: "tokenBucket", ratePerSecond: 0 } }, "rateLimit.ratePerSecond");
  });

  it("names a malformed per-method option methods.<method>.<option>", () => {
    const app = w.consumer();
    const bad = (whoami: unknown, option: string): void => void assertBadOption(() => app.client(Users, { methods: { whoami } } as ClientOptions), `methods.whoami.${option}`);
    bad({ timeoutMs: -1 }, "timeoutMs");
    bad({ maxConcurrent: 0 }, "maxConcurrent");
    bad({ retries: 11 }, "retries");
    bad({ forks: 0, faultTolerance: "forking" }, "forks");
    bad({ faultTolerance: "nope" }, "faultTolerance");
    bad({ loadBalancer: "nope" }, "loadBalancer");
    bad({ circuitBreaker: { threshold: 2 } }, "circuitBreaker.threshold");
    bad({ rateLimit: { kind: "tokenBucket", ratePerSecond: 0 } }, "rateLimit.ratePerSecond");
  });

  it("puts a method's timeoutMs over the client's on every call", async () => {
    const p1 = await w.provider("p1");
    p1.hold();
    const users = w.consumer().client(Users, { timeoutMs: 60_000, methods: { whoami: { timeoutMs: 30 } } });
    // The consumer's timing wheel is unref'd and memory links hold no handle: keep the loop alive.
    const keepAlive = setInterval(() => {}, 1000);
    try {
      const error = await failure(users.whoami());
      assert.equal(error.code, "deadline_exceeded");
    } finally {
      clearInterval(keepAlive);
    }
    p1.release();
    assert.equal(await users.get("1").then((u) => u?.name), "p1");
  });
});
