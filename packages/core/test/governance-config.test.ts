// Governance settings from outside code, end to end: FARCALL_* environment variables (passed as
// `env` to createApplication) and the properties file turn breakers, outlier ejection, routes,
// fault tolerance, tags, the retry budget and load shedding on and off in real applications; bad
// values fail createApplication with bad_option naming the variable; code wins over both.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { createApplication } from "../src/application.js";
import { assertBadOption } from "./assertions.js";
import { Users } from "./fixtures.js";
import { failure, findProvider, providerState, untilTurns, world, type World } from "./governance-world.js";
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

async function names(call: () => Promise<string>, n = 30): Promise<string[]> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) seen.add(await call());
  return [...seen].sort();
}

describe("governance configuration (end to end)", () => {
  it("FARCALL_CLIENTS sets one method's options for a service; code's options for that method win key by key", async () => {
    const p1 = await w.provider("p1");
    p1.fail("internal", "insert");
    const env = { FARCALL_CLIENTS: '{"test.UserService":{"methods":{"insert":{"circuitBreaker":{"strategy":"errorCount","threshold":2,"minCalls":1,"openMs":60000}}}}}', FARCALL_OUTLIER_DETECTION: "false" };
    const users = w.consumer({ env }).client(Users);
    for (let i = 0; i < 2; i++) assert.equal((await failure(users.insert(user))).code, "internal");
    assert.equal((await failure(users.insert(user))).details["reason"], "circuit_open", "the configured breaker opened after 2 errors");
    assert.equal(p1.count("insert"), 2);
    const overridden = w.consumer({ env }).client(Users, { methods: { insert: { circuitBreaker: false } } });
    for (let i = 0; i < 4; i++) assert.equal((await failure(overridden.insert(user))).code, "internal");
    assert.equal(p1.count("insert"), 6, "code's circuitBreaker: false for the method wins");
  });

  it("FARCALL_SERVICES sets a provided method's limit; a bad key fails createApplication naming the variable", async () => {
    const p1 = await w.provider("p1", { app: { env: { FARCALL_SERVICES: '{"test.UserService":{"methods":{"insert":{"maxConcurrent":1}}}}' } } });
    p1.hold();
    const users = w.consumer({ faultTolerance: "failfast" }).client(Users);
    const first = users.insert(user);
    await untilTurns(() => p1.count("insert") === 1, "the first insert reaches the provider");
    const refused = await failure(users.insert(user));
    assert.equal(refused.code, "resource_exhausted");
    assert.equal(refused.details["reason"], "concurrency_limited");
    p1.release();
    await first;
    assertBadOption(() => createApplication({ env: { FARCALL_CLIENTS: '{"test.UserService":{"retrys":2}}' } }), "FARCALL_CLIENTS (environment).test.UserService.retrys");
    assertBadOption(() => createApplication({ env: { FARCALL_SERVICES: '{"test.UserService":{"methods":{"insert":{"maxConcurrent":0}}}}' } }), "FARCALL_SERVICES (environment).test.UserService.methods.insert.maxConcurrent");
  });

  it("FARCALL_CIRCUIT_BREAKER turns breakers on for every client; code's circuitBreaker: false wins over it", async () => {
    const p1 = await w.provider("p1");
    p1.fail("internal", "insert");
    const env = { FARCALL_CIRCUIT_BREAKER: '{"strategy":"errorCount","threshold":3,"minCalls":1,"openMs":60000}', FARCALL_OUTLIER_DETECTION: "false" };
    const app = w.consumer({ env });
    const users = app.client(Users);
    for (let i = 1; i <= 3; i++) {
      assert.equal(findProvider(app, p1.address)?.breakers["insert"] ?? "closed", "closed", `closed before the 3rd error (${i})`);
      assert.equal((await failure(users.insert(user))).code, "internal");
    }
    assert.equal(providerState(app, p1.address).breakers["insert"], "open");
    assert.equal((await failure(users.insert(user))).details["reason"], "circuit_open");
    assert.equal(p1.count("insert"), 3);
    const off = w.consumer({ env, circuitBreaker: false }).client(Users);
    for (let i = 0; i < 5; i++) assert.equal((await failure(off.insert(user))).code, "internal");
    assert.equal(p1.count("insert"), 8, "code's false beats the environment");
  });

  it("FARCALL_OUTLIER_DETECTION=false keeps a failing provider in rotation; a JSON value sets its options", async () => {
    const bad = await w.provider("p1");
    await w.provider("p2");
    await w.provider("p3");
    bad.fail("unavailable");
    const off = w.consumer({ env: { FARCALL_OUTLIER_DETECTION: "false" } });
    const users = off.client(Users);
    for (let i = 0; i < 300 && bad.count() < 10; i++) await users.whoami();
    assert.ok(bad.count() >= 10);
    assert.equal(providerState(off, bad.address).state, "healthy");
    const strict = w.consumer({ env: { FARCALL_OUTLIER_DETECTION: '{"consecutiveFailures":1}' } });
    const before = bad.count();
    const strictUsers = strict.client(Users);
    for (let i = 0; i < 300 && bad.count() === before; i++) await strictUsers.whoami();
    assert.equal(providerState(strict, bad.address).state, "ejected", "ejected on its first failure");
  });

  it("FARCALL_ROUTES, FARCALL_FAULT_TOLERANCE and FARCALL_FORKS shape a consumer's calls", async () => {
    const p1 = await w.provider("p1");
    const p2 = await w.provider("p2");
    const routed = w.consumer({ env: { FARCALL_ROUTES: JSON.stringify([`method = who* => port = ${p2.port}`]) } }).client(Users);
    assert.deepEqual(await names(() => routed.whoami()), ["p2"]);
    assert.deepEqual(await names(async () => (await routed.get("1"))?.name ?? ""), ["p1", "p2"]);
    const forking = w.consumer({ env: { FARCALL_FAULT_TOLERANCE: "forking" } }).client(Users);
    const runs = [p1.count("whoami"), p2.count("whoami")];
    await forking.whoami();
    assert.deepEqual([p1.count("whoami") - (runs[0] ?? 0), p2.count("whoami") - (runs[1] ?? 0)], [1, 1], "forked to both");
    const p3 = await w.provider("p3");
    const three = w.consumer({ env: { FARCALL_FAULT_TOLERANCE: "forking", FARCALL_FORKS: "3" } }).client(Users);
    const counts = [p1, p2, p3].map((p) => p.count("whoami"));
    await three.whoami();
    assert.deepEqual([p1, p2, p3].map((p, i) => p.count("whoami") - (counts[i] ?? 0)), [1, 1, 1]);
  });

  it("FARCALL_TAG registers a provider with a tag; FARCALL_TAG_FORCE fails calls for a missing tag", async () => {
    const gray = await w.provider("gray", { app: { env: { FARCALL_TAG: "gray" } } });
    await w.provider("plain");
    const app = w.consumer();
    assert.deepEqual(await names(() => app.client(Users, { tag: "gray" }).whoami()), ["gray"]);
    assert.equal(providerState(app, gray.address).tag, "gray");
    assert.deepEqual(await names(() => app.client(Users).whoami()), ["plain"]);
    const forced = w.consumer({ env: { FARCALL_TAG_FORCE: "true" } }).client(Users, { tag: "blue" });
    assert.equal((await failure(forced.whoami())).code, "unavailable");
  });

  it("FARCALL_RETRY_BUDGET=false and FARCALL_LOAD_SHEDDING reach the consumer's budget and the provider's server", async () => {
    const app = w.consumer({ env: { FARCALL_RETRY_BUDGET: "false" } });
    const p1 = await w.provider("p1", { app: { env: { FARCALL_LOAD_SHEDDING: '{"maxConcurrentCalls":1,"targetDelayMs":60000}' } } });
    const users = app.client(Users, { faultTolerance: "failfast" });
    assert.equal(await users.whoami(), "p1");
    assert.equal(app.governance().services[0]?.retryBudget, undefined, "no budget");
    p1.hold();
    const held = users.whoami();
    await untilTurns(() => p1.count("whoami") === 2, "one call running");
    const shed = await failure(users.get("1"));
    assert.equal(shed.code, "resource_exhausted");
    assert.equal(shed.details["reason"], "overloaded");
    assert.equal(p1.count("get"), 0);
    p1.release();
    assert.equal(await held, "p1");
  });

  it("reads the same settings from the properties file, under the environment", async () => {
    const p1 = await w.provider("p1");
    await w.provider("p2");
    const dir = mkdtempSync(join(tmpdir(), "farcall-governance-"));
    try {
      const file = join(dir, "farcall.properties");
      writeFileSync(file, `cluster.routes=["=> port = ${p1.port}"]\ncluster.outlierDetection=false\ncluster.circuitBreaker={"minCalls":2}\n`);
      const app = w.consumer({ configFile: file });
      const users = app.client(Users);
      assert.deepEqual(await names(() => users.whoami()), ["p1"]);
      p1.fail("internal", "insert");
      for (let i = 0; i < 2; i++) await failure(users.insert(user));
      assert.equal(providerState(app, p1.address).breakers["insert"], "open", "breakers from the file");
      const envWins = w.consumer({ configFile: file, env: { FARCALL_ROUTES: "[]" } }).client(Users);
      assert.deepEqual(await names(() => envWins.whoami()), ["p1", "p2"], "the environment's empty routes win over the file's");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("rejects bad values with bad_option naming the variable", () => {
    const base = { registry: "memory", handleSignals: false } as const;
    const env = (vars: Record<string, string>) => () => createApplication({ ...base, env: vars });
    assertBadOption(env({ FARCALL_CIRCUIT_BREAKER: "{strategy:errorCount}" }), "FARCALL_CIRCUIT_BREAKER (environment)");
    assertBadOption(env({ FARCALL_CIRCUIT_BREAKER: '{"strategy":"errorRate"}' }), "FARCALL_CIRCUIT_BREAKER (environment).strategy");
    assertBadOption(env({ FARCALL_CIRCUIT_BREAKER: '{"threshold":2}' }), "FARCALL_CIRCUIT_BREAKER (environment).threshold");
    assertBadOption(env({ FARCALL_OUTLIER_DETECTION: "off" }), "FARCALL_OUTLIER_DETECTION (environment)");
    assertBadOption(env({ FARCALL_OUTLIER_DETECTION: '{"consecutiveFailure":3}' }), "FARCALL_OUTLIER_DETECTION (environment).consecutiveFailure");
    assertBadOption(env({ FARCALL_ROUTES: '"method = get* => port = 1"' }), "FARCALL_ROUTES (environment)");
    assertBadOption(env({ FARCALL_ROUTES: '["method = => port = 1"]' }), "FARCALL_ROUTES (environment)");
    assertBadOption(env({ FARCALL_FAULT_TOLERANCE: "fork" }), "FARCALL_FAULT_TOLERANCE (environment)");
    assertBadOption(env({ FARCALL_FORKS: "11" }), "FARCALL_FORKS (environment)");
    assertBadOption(env({ FARCALL_RETRY_BUDGET: '{"percent":2}' }), "FARCALL_RETRY_BUDGET (environment).percent");
    assertBadOption(env({ FARCALL_LOAD_SHEDDING: '{"maxConcurrentCalls":0}' }), "FARCALL_LOAD_SHEDDING (environment).maxConcurrentCalls");
    assertBadOption(env({ FARCALL_LOAD_SHEDDING: "yes" }), "FARCALL_LOAD_SHEDDING (environment)");
  });
});
