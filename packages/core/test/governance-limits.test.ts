// Rate and concurrency limits end to end, on both sides: the consumer's (client and method
// options of `app.client`) refuse a call before it is sent; the provider's (`app.provide` options)
// answer `resource_exhausted` without running it, and failover retries that answer only for an
// idempotent method. Real providers and consumers over the in-memory transport and registry.
// Rates are tiny (0.001 per second) so no token comes back while a test runs: no timing involved.
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import type { Interceptor } from "../src/call/call.js";
import { withOptions } from "../src/client/stub.js";
import type { FarcallError } from "../src/errors/farcall-error.js";
import { assertBadOption } from "./assertions.js";
import { Users } from "./fixtures.js";
import { failure, Provider, settlesBeforeIo, untilTurns, world, type World } from "./governance-world.js";
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
const slowTokens = { kind: "tokenBucket", ratePerSecond: 0.001, burst: 3 } as const;

function assertRefused(error: FarcallError, reason: string, sent: boolean): void {
  assert.equal(error.code, "resource_exhausted", error.message);
  assert.equal(error.details["reason"], reason);
  assert.equal(error.sent, sent);
}

/** An attempt interceptor recording each attempt's method, number and outcome. */
function attemptLog(): { readonly attempts: Array<{ method: string; attempt: number; error?: FarcallError }>; readonly interceptor: Interceptor } {
  const attempts: Array<{ method: string; attempt: number; error?: FarcallError }> = [];
  const interceptor: Interceptor = (next) => (call) => {
    const entry: { method: string; attempt: number; error?: FarcallError } = { method: call.ref.method, attempt: call.attempt };
    attempts.push(entry);
    return next(call).catch((error: FarcallError) => {
      entry.error = error;
      throw error;
    });
  };
  return { attempts, interceptor };
}

describe("consumer-side limits (end to end)", () => {
  it("maxConcurrent 2 on a method: the 3rd concurrent call fails concurrency_limited unsent, before any I/O, and failover does not retry it", async () => {
    const p1 = await w.provider("p1");
    const p2 = await w.provider("p2");
    p1.hold();
    p2.hold();
    const app = w.consumer();
    const users = app.client(Users, { methods: { slow: { maxConcurrent: 2 } } });
    const running = [users.slow(0), users.slow(0)];
    await untilTurns(() => p1.count("slow") + p2.count("slow") === 2, "two calls running");
    const third = users.slow(0);
    assert.ok(await settlesBeforeIo(third), "refused without waiting for I/O");
    assertRefused(await failure(third), "concurrency_limited", false);
    // Other methods have no cap.
    const others = [users.whoami(), users.whoami(), users.whoami()];
    await untilTurns(() => p1.count("whoami") + p2.count("whoami") === 3, "three whoami calls running");
    p1.release();
    p2.release();
    await Promise.all([...running, ...others]);
    assert.equal(p1.count("slow") + p2.count("slow"), 2, "the refused call reached no provider, on no retry either");
    assert.equal(typeof (await users.slow(0)), "string", "admitted again once the running calls ended");
  });

  it("a client's maxConcurrent caps each method on its own, and clients made again share the cap", async () => {
    const p1 = await w.provider("p1");
    p1.hold();
    const app = w.consumer();
    const a = app.client(Users, { maxConcurrent: 1 });
    const b = app.client(Users, { maxConcurrent: 1 });
    const running = [a.slow(0), a.whoami()];
    await untilTurns(() => p1.count() === 2, "one call of each method running");
    assertRefused(await failure(a.slow(0)), "concurrency_limited", false);
    assertRefused(await failure(b.whoami()), "concurrency_limited", false);
    p1.release();
    await Promise.all(running);
    assert.equal(p1.count(), 2);
  });

  it("a token bucket refuses rate_limited unsent beyond its burst; a method's rateLimit false lifts it", async () => {
    const p1 = await w.provider("p1");
    const app = w.consumer();
    const users = app.client(Users, { rateLimit: slowTokens, methods: { echo: { rateLimit: false } } });
    for (let i = 0; i < 3; i++) assert.equal(await users.whoami(), "p1");
    const refused = users.whoami();
    assert.ok(await settlesBeforeIo(refused));
    assertRefused(await failure(refused), "rate_limited", false);
    assert.equal(p1.count("whoami"), 3, "the refused call was not sent");
    // One bucket per method: get has its own burst.
    for (let i = 0; i < 3; i++) assert.equal((await users.get(`${i}`))?.name, "p1");
    assertRefused(await failure(users.get("x")), "rate_limited", false);
    for (let i = 0; i < 10; i++) assert.equal(await users.echo(i), i, "echo is not limited");
  });

  it("a method's own rateLimit and maxConcurrent override the client's", async () => {
    const p1 = await w.provider("p1");
    const app = w.consumer();
    const users = app.client(Users, { rateLimit: slowTokens, methods: { whoami: { rateLimit: { kind: "slidingWindow", limit: 1, windowMs: 3_600_000 } } } });
    assert.equal(await users.whoami(), "p1");
    assertRefused(await failure(users.whoami()), "rate_limited", false);
    for (let i = 0; i < 3; i++) await users.echo(i);
    assertRefused(await failure(users.echo(4)), "rate_limited", false);
    assert.deepEqual([p1.count("whoami"), p1.count("echo")], [1, 3]);
  });

  it("a call a leaky bucket holds back waits its turn, and its signal cancels the wait at once, giving back its concurrency permit", async () => {
    const p1 = await w.provider("p1");
    const app = w.consumer();
    const users = app.client(Users, { maxConcurrent: 1, rateLimit: { kind: "leakyBucket", ratePerSecond: 0.5, maxQueueMs: 60_000 } });
    assert.equal(await users.whoami(), "p1", "the first call leaves at once");
    const controller = new AbortController();
    const waiting = withOptions(users, { signal: controller.signal }).whoami();
    const outcome = waiting.then(() => undefined, (error: unknown) => error);
    await new Promise((resolve) => setImmediate(resolve));
    controller.abort();
    assert.ok(await settlesBeforeIo(waiting), "canceled without waiting for its turn (2 s away)");
    const error = (await outcome) as FarcallError;
    assert.equal(error.code, "canceled");
    assert.equal(error.sent, false);
    assert.equal(p1.count("whoami"), 1);
    // The permit came back: the next call passes maxConcurrent, and its own aborted signal ends it.
    const next = withOptions(users, { signal: AbortSignal.abort() }).whoami();
    assert.equal((await failure(next)).code, "canceled");
  });

  it("adaptiveThrottle: once the provider rejects everything, most calls are refused locally (throttled, unsent); a healthy one is never throttled", async () => {
    const p1 = await w.provider("p1");
    const app = w.consumer({ adaptiveThrottle: true, faultTolerance: "failfast" });
    const users = app.client(Users);
    for (let i = 0; i < 100; i++) assert.equal(await users.whoami(), "p1", "accepted calls are never throttled");
    p1.fail("resource_exhausted", "echo");
    const throttle = w.consumer({ adaptiveThrottle: { k: 2, windowMs: 60_000 }, faultTolerance: "failfast" }).client(Users);
    const errors: FarcallError[] = [];
    for (let i = 0; i < 200; i++) errors.push(await failure(throttle.echo(i)));
    const local = errors.filter((e) => e.details["reason"] === "throttled");
    for (const e of local) assertRefused(e, "throttled", false);
    // Refusal probability requests / (requests + 1) once nothing is accepted: a handful get through.
    assert.equal(p1.count("echo") + local.length, 200, "every call either reached the provider or was refused locally");
    assert.ok(p1.count("echo") < 100, `most calls stayed local: ${p1.count("echo")} of 200 reached the provider`);
  });

  it("a call that fails over holds one concurrency permit throughout and gives it back once, whether it ends in success or failure", async () => {
    const p1 = await w.provider("p1");
    const p2 = await w.provider("p2");
    p1.fail("unavailable", "slow");
    const app = w.consumer({ outlierDetection: false, retryBudget: false, adaptiveThrottle: true });
    const users = app.client(Users, { maxConcurrent: 2 });
    const stop = new AbortController();
    const long = withOptions(users, { signal: stop.signal });
    // A long call holds one permit throughout: a permit given back twice by another call would
    // then count it out, and let a third call run beside two.
    const first = long.slow(60_000).catch((error: unknown) => error);
    await untilTurns(() => p2.count("slow") === 1, "the long call running on p2");
    for (let i = 0; i < 20; i++) assert.equal(await users.slow(0), "p2");
    assert.ok(p1.count("slow") > 1, "some calls failed over from p1 to p2");
    p2.fail("unavailable", "slow");
    for (let i = 0; i < 5; i++) assert.equal((await failure(users.slow(0))).code, "unavailable");
    p2.heal();
    const before = p2.count("slow");
    const second = long.slow(60_000).catch((error: unknown) => error);
    await untilTurns(() => p2.count("slow") === before + 1, "a second long call running");
    assertRefused(await failure(users.slow(0)), "concurrency_limited", false);
    stop.abort();
    for (const ended of await Promise.all([first, second])) assert.equal((ended as FarcallError).code, "canceled");
  });

  it("an interceptor that throws synchronously fails the call with a rejected promise and gives its permit back", async () => {
    await w.provider("p1");
    const app = w.consumer();
    let throwing = true;
    const boom: Interceptor = (next) => (call) => {
      if (throwing) throw new Error("boom");
      return next(call);
    };
    const guarded = app.client(Users, { maxConcurrent: 1, attemptInterceptors: [boom] });
    const plain = app.client(Users, { interceptors: [boom] });
    for (const users of [guarded, plain]) {
      let call: Promise<string> | undefined;
      assert.doesNotThrow(() => (call = users.whoami()), "the stub returns a promise");
      await assert.rejects(call as Promise<string>, /boom/);
    }
    throwing = false;
    assert.equal(await guarded.whoami(), "p1", "the failed call gave its permit back");
  });

  it("rejects an unknown method name or a malformed limit in the client's methods with bad_option", () => {
    const app = w.consumer();
    assertBadOption(() => app.client(Users, { methods: { nope: { maxConcurrent: 1 } } }), "methods.nope");
    assertBadOption(() => app.client(Users, { methods: { whoami: { rateLimit: { kind: "tokenBucket", ratePerSecond: -1 } } } }), "methods.whoami.rateLimit.ratePerSecond");
    assertBadOption(() => app.client(Users, { rateLimit: { kind: "bucket" } as never }), "rateLimit.kind");
  });
});

describe("provider-side limits (end to end)", () => {
  it("a provider's rateLimit answers resource_exhausted rate_limited without running the call; a method's override wins", async () => {
    const p1 = await w.provider("p1", { provide: { rateLimit: slowTokens, methods: { echo: { rateLimit: false }, insert: { rateLimit: { kind: "tokenBucket", ratePerSecond: 0.001, burst: 1 } } } } });
    const app = w.consumer({ faultTolerance: "failfast" });
    const users = app.client(Users);
    for (let i = 0; i < 3; i++) assert.equal(await users.whoami(), "p1");
    const error = await failure(users.whoami());
    assertRefused(error, "rate_limited", true);
    assert.equal(error.details["address"], p1.address);
    assert.equal(p1.count("whoami"), 3, "the provider did not run the refused call");
    assert.equal(await users.insert(user), 1);
    assertRefused(await failure(users.insert(user)), "rate_limited", true);
    for (let i = 0; i < 6; i++) assert.equal(await users.echo(i), i, "echo is not limited");
  });

  it("a provider's maxConcurrent refusal fails over for an idempotent method and is final for a non-idempotent one", async () => {
    const limited = await w.provider("limited", { provide: { maxConcurrent: 1 } });
    const free = await w.provider("free");
    const log = attemptLog();
    const app = w.consumer({ loadBalancer: "roundRobin" });
    const users = app.client(Users, { attemptInterceptors: [log.interceptor] });
    // Fill the limited provider's one slot of each method with a held call (the others go to the free one).
    limited.hold();
    const held: Promise<unknown>[] = [];
    let fillInserts = 0;
    for (const method of ["whoami", "insert"] as const) {
      for (let i = 0; i < 10 && limited.count(method) === 0; i++) {
        // One at a time: each either runs (held) on the limited provider or completes on the free one.
        let settled = false;
        const call = method === "whoami" ? users.whoami() : users.insert(user);
        if (method === "insert") fillInserts++;
        held.push(call.finally(() => (settled = true)));
        await untilTurns(() => settled || limited.count(method) === 1, `a ${method} call placed`);
      }
    }
    assert.deepEqual([limited.count("whoami"), limited.count("insert")], [1, 1], "one held call of each method");
    log.attempts.length = 0;
    for (let i = 0; i < 6; i++) assert.equal(await users.whoami(), "free", "an idempotent call ends on the free provider");
    const retried = log.attempts.filter((a) => a.method === "whoami" && a.error !== undefined);
    assert.ok(retried.length >= 2, `round robin sent some whoami calls to the limited provider first: ${retried.length}`);
    for (const a of retried) assertRefused(a.error as FarcallError, "concurrency_limited", true);
    const inserts = await Promise.all(Array.from({ length: 6 }, () => users.insert(user).then(() => "ok", (error: FarcallError) => error)));
    const refused = inserts.filter((r): r is FarcallError => r !== "ok");
    assert.ok(refused.length >= 2, "round robin sent some inserts to the limited provider");
    for (const error of refused) assertRefused(error, "concurrency_limited", true);
    assert.ok(log.attempts.filter((a) => a.method === "insert").every((a) => a.attempt === 0), "a non-idempotent call that was sent is never retried");
    assert.deepEqual([limited.count("whoami"), limited.count("insert")], [1, 1], "the limited provider ran nothing beyond its held calls");
    limited.release();
    await Promise.all(held);
    assert.equal(limited.count("insert") + free.count("insert"), fillInserts + 6 - refused.length, "every insert not refused ran exactly once");
  });

  it(
    "an idempotent call refused by the only provider reports the provider's refusal",
    {},
    async () => {
    const p1 = await w.provider("p1", { provide: { rateLimit: slowTokens } });
    const app = w.consumer();
    const users = app.client(Users);
    for (let i = 0; i < 3; i++) await users.whoami();
    const error = await failure(users.whoami());
    assertRefused(error, "rate_limited", true);
    assert.equal(p1.count("whoami"), 3);
    },
  );

  it("rejects an unknown method name in provide options with bad_option", () => {
    const app = w.consumer();
    const impl = new Provider("x", app).implementation();
    assertBadOption(() => app.provide(Users, impl, { methods: { nope: { maxConcurrent: 1 } } }), "methods.nope");
    assertBadOption(() => app.provide(Users, impl, { methods: { whoami: { rateLimit: { kind: "tokenBucket", ratePerSecond: 0 } } } }), "methods.whoami.rateLimit.ratePerSecond");
    assertBadOption(() => app.provide(Users, impl, { methods: { whoami: { maxConcurrent: 0 } } }), "methods.whoami.maxConcurrent");
    assertBadOption(() => app.provide(Users, impl, { maxConcurrent: 1.5 }), "maxConcurrent");
  });

  it("a provide() refused for a bad limit leaves nothing behind: the corrected one serves", async () => {
    const app = w.consumer({ name: "provider" });
    const provider = new Provider("fixed", app);
    assertBadOption(() => app.provide(Users, provider.implementation(), { methods: { whoami: { maxConcurrent: 0 } } }), "methods.whoami.maxConcurrent");
    app.provide(Users, provider.implementation(), { methods: { whoami: { maxConcurrent: 1 } } });
    await app.start();
    assert.equal(await w.consumer().client(Users).whoami(), "fixed");
  });
});

