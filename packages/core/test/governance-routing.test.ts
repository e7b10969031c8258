// Routing end to end: static condition routes in the application's options, tag routing (provider
// tag, client tag, a call's own tag, fallback to untagged providers, tagForce), and governance
// rules pushed through the registry (weights, disabling, routes) applied to the next calls of every
// consumer without restart; invalid rules refused with the previous ones kept. Real providers and
// consumers over the in-memory transport and registry.
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import type { Application } from "../src/application.js";
import { withOptions } from "../src/client/stub.js";
import { badRulesWarningCode } from "../src/cluster/service-governance.js";
import { memoryRegistry } from "../src/registry/memory-registry.js";
import type { Registry } from "../src/registry/registry.js";
import { Users } from "./fixtures.js";
import { failure, providerState, untilTurns, warnings, world, type World } from "./governance-world.js";
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

/** Who answered `n` calls of `call`, as a set of names. */
async function answers(call: () => Promise<string | undefined>, n = 30): Promise<string[]> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) seen.add(String(await call()));
  return [...seen].sort();
}

/** Publishes `rules` for the Users service and waits until `app` applied them (or refused them). */
async function publish(app: Application, rules: string | undefined): Promise<void> {
  const before = app.governance().services[0]?.rules;
  await memoryRegistry({ store: w.store }).publishRules?.(Users.name, rules);
  await untilTurns(() => {
    const now = app.governance().services[0]?.rules;
    return now !== undefined && (now.appliedAt !== before?.appliedAt || now.rejected?.at !== before?.rejected?.at || now.rejected?.message !== before?.rejected?.message);
  }, "the rules delivered to the consumer");
}

describe("routing (end to end)", () => {
  it("static routes from the options: get* goes to one provider, other methods to both", async () => {
    const p1 = await w.provider("p1");
    await w.provider("p2");
    const users = w.consumer({ routes: [`method = get* => port = ${p1.port}`] }).client(Users);
    assert.deepEqual(await answers(async () => (await users.get("1"))?.name), ["p1"]);
    assert.deepEqual(await answers(() => users.whoami()), ["p1", "p2"]);
  });

  it("tag routing: a tagged client reaches the tagged provider, untagged calls stay off it, and it falls back to untagged providers", async () => {
    const plain = await w.provider("plain");
    const gray = await w.provider("gray", { app: { tag: "gray" } });
    const app = w.consumer();
    const grayUsers = app.client(Users, { tag: "gray" });
    const users = app.client(Users);
    assert.deepEqual(await answers(() => grayUsers.whoami()), ["gray"]);
    assert.deepEqual(await answers(() => users.whoami()), ["plain"], "untagged calls never reach the gray provider");
    assert.deepEqual(await answers(() => withOptions(users, { metadata: { "farcall-tag": "gray" } }).whoami()), ["gray"], "a call's own tag");
    assert.deepEqual(await answers(() => withOptions(grayUsers, { metadata: { "farcall-tag": "blue" } }).whoami()), ["plain"], "an unknown tag falls back to untagged");
    assert.equal(providerState(app, gray.address).tag, "gray");
    await gray.app.close();
    assert.deepEqual(await answers(() => grayUsers.whoami()), ["plain"], "no gray provider left: back to untagged");
    assert.ok(plain.count("whoami") > 0);
  });

  it("tagForce: a call asking for a tag nobody has fails unavailable instead of falling back", async () => {
    await w.provider("plain");
    await w.provider("gray", { provide: { tag: "gray" } });
    const users = w.consumer({ tagForce: true }).client(Users, { tag: "blue" });
    const error = await failure(users.whoami());
    assert.equal(error.code, "unavailable");
    assert.equal(error.sent, false);
  });

  it("rules pushed through the registry change weights, disable providers and route, for every consumer, while calls run", async () => {
    const p1 = await w.provider("p1");
    const p2 = await w.provider("p2");
    const a = w.consumer();
    const b = w.consumer();
    const usersA = a.client(Users);
    const usersB = b.client(Users);
    assert.deepEqual(await answers(() => usersA.whoami()), ["p1", "p2"]);
    assert.deepEqual(await answers(() => usersB.whoami()), ["p1", "p2"]);
    // A background load across every change: no call may fail.
    let stop = false;
    let failed = 0;
    let made = 0;
    const load = (async () => {
      while (!stop && made < 5000) {
        made++;
        await usersA.echo(made).catch(() => failed++);
      }
    })();
    try {
      await publish(a, JSON.stringify({ providers: { [p1.address]: { weight: 0 } } }));
      await untilTurns(() => b.governance().services[0]?.rules.current !== undefined, "the second consumer got the rules");
      assert.deepEqual(await answers(() => usersA.whoami()), ["p2"], "weight 0: no call while the other has weight");
      assert.deepEqual(await answers(() => usersB.whoami()), ["p2"], "applied to every consumer");
      assert.equal(providerState(a, p1.address).effectiveWeight, 0);
      assert.equal(providerState(a, p1.address).registeredWeight, 100);

      await publish(a, JSON.stringify({ providers: { [p2.address]: { disabled: true } } }));
      assert.deepEqual(await answers(() => usersA.whoami()), ["p1"], "the disabled provider gets nothing; p1's weight is back");
      assert.equal(providerState(a, p2.address).disabled, true);

      await publish(a, JSON.stringify({ routes: [`method = whoami => port = ${p2.port}`] }));
      assert.deepEqual(await answers(() => usersA.whoami()), ["p2"], "routed to p2");
      assert.deepEqual(await answers(async () => (await usersA.get("1"))?.name), ["p1", "p2"], "other methods spread");
      assert.deepEqual(await answers(() => usersB.whoami()), ["p2"]);

      await publish(a, undefined);
      assert.deepEqual(await answers(() => usersA.whoami()), ["p1", "p2"], "deleting the rules restores the registry's view");
      assert.equal(a.governance().services[0]?.rules.current, undefined);
    } finally {
      stop = true;
      await load;
    }
    assert.ok(made > 0);
    assert.equal(failed, 0, `no call failed while the rules changed (${made} made)`);
  });

  it("refuses invalid rules: the previous ones stay, the snapshot shows why, one FARCALL_BAD_RULES warning per text", async () => {
    const p1 = await w.provider("p1");
    await w.provider("p2");
    // A registry whose rules watch the test can also drive directly, to deliver one text twice.
    const inner = memoryRegistry({ store: w.store });
    const deliveries: Array<(rules: string | undefined) => void> = [];
    const registry: Registry = {
      kind: "test",
      register: (e) => inner.register(e),
      watch: (service, onChange, options) => inner.watch(service, onChange, options),
      close: () => inner.close(),
      publishRules: (service, rules) => (inner.publishRules as NonNullable<Registry["publishRules"]>)(service, rules),
      watchRules(service, onChange) {
        deliveries.push(onChange);
        return (inner.watchRules as NonNullable<Registry["watchRules"]>)(service, onChange);
      },
    };
    const bad = warnings(badRulesWarningCode);
    try {
      const app = w.consumer({ registry });
      const users = app.client(Users);
      await publish(app, JSON.stringify({ routes: [`=> port = ${p1.port}`] }));
      assert.deepEqual(await answers(() => users.whoami()), ["p1"]);
      const applied = app.governance().services[0]?.rules;
      for (const text of ["{not json", JSON.stringify({ routes: ["method = => port = 1"] }), JSON.stringify({ providers: { [p1.address]: { weight: -1 } } })]) {
        await publish(app, text);
        const rules = app.governance().services[0]?.rules;
        assert.ok(rules?.rejected !== undefined && rules.rejected.message.length > 0, `refused: ${text}`);
        assert.deepEqual(rules?.current, applied?.current, "the previous rules stay in force");
        assert.equal(rules?.appliedAt, applied?.appliedAt);
        assert.deepEqual(await answers(() => users.whoami(), 10), ["p1"], "calls still follow them");
      }
      const deliver = deliveries[0] ?? assert.fail("the consumer watches the rules");
      deliver("{not json either");
      deliver("{not json either");
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(bad.seen.length, 4, "one warning per refused text, not per delivery");
      assert.match(String(bad.seen[0]?.message), /test\.UserService/);
      // Valid rules again: applied, and the refusal is cleared.
      await publish(app, JSON.stringify({ tagForce: true }));
      assert.equal(app.governance().services[0]?.rules.rejected, undefined);
      assert.deepEqual(await answers(() => users.whoami()), ["p1", "p2"]);
      const tagged = app.client(Users, { tag: "gray" });
      assert.equal((await failure(tagged.whoami())).code, "unavailable", "tagForce from the rules: no fallback to untagged providers");
    } finally {
      bad.stop();
    }
  });
});

