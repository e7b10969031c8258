import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it, type TestContext } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { type Endpoint, FarcallError, type Registration, type Registry, type Unwatch } from "@farcall/core/extension";
import { trackResources } from "./leak-check.js";
import { WatchRecorder } from "./watch-recorder.js";
import { sampleEndpoint } from "@farcall/core/testing";

/** Two instances of one registry kind sharing a backing store, as two processes would. */
export interface RegistryPair {
  readonly a: Registry;
  readonly b: Registry;
  /** Closes both instances and removes the backing store. */
  cleanup(): Promise<void>;
}

/** Options of {@link registryConformance}; durations in milliseconds. */
export interface RegistryConformanceOptions {
  /** Longest wait for an expected delivery. Default 5000. */
  readonly deadlineMs?: number;
  /** How long to wait for a delivery that must not happen. Default 300. */
  readonly quietMs?: number;
  /** Longest wait after cleanup for resources to be released. Default 1000. */
  readonly settleMs?: number;
  /**
   * For registries with a server: interrupts it for `downMs` (shorter than any session or lease)
   * and brings it back, data kept, as a network outage would. With it, the suite also checks
   * that both instances reconnect without losing registrations or watches.
   */
  readonly outage?: (downMs: number) => Promise<void>;
}

interface Resolved {
  readonly deadlineMs: number;
  readonly quietMs: number;
  readonly settleMs: number;
}

type Body = (pair: RegistryPair, o: Resolved, service: (label: string) => string) => Promise<void>;

/** A complete endpoint of `service` on 127.0.0.1:`port`, with an id unique to this run. */
export function conformanceEndpoint(service: string, port: number): Endpoint {
  return sampleEndpoint(service, port, {
    id: `127.0.0.1:${port}/conformance/${service}:1.0.0#${randomBytes(4).toString("hex")}`,
    version: "1.0.0",
    group: "conformance",
    startTime: 1_700_000_000_000,
    application: "conformance",
    pid: process.pid,
    methods: Object.freeze(["getById", "list"]),
  });
}

function resolve(options: RegistryConformanceOptions): Resolved {
  return { deadlineMs: options.deadlineMs ?? 5000, quietMs: options.quietMs ?? 300, settleMs: options.settleMs ?? 1000 };
}

/** Runs `body` against a fresh pair, cleans up, then fails on any leaked resource. */
function caseOf(factory: () => Promise<RegistryPair>, o: Resolved, body: Body): () => Promise<void> {
  return async () => {
    const tracker = trackResources();
    const tag = randomBytes(3).toString("hex");
    try {
      const pair = await factory();
      try {
        await body(pair, o, (label) => `conformance.${label}.${tag}`);
      } finally {
        await pair.cleanup();
      }
      await tracker.assertReleased(o.settleMs);
    } finally {
      tracker.stop();
    }
  };
}

function plain(endpoint: Endpoint): Record<string, unknown> {
  return { ...endpoint, methods: [...endpoint.methods] };
}

/**
 * The part of the `Registry` contract every registry meets, static ones (`direct`) included:
 * the first delivery, watch/unwatch/close lifecycle, idempotence, no leaked resources.
 */
export function registryLifecycleConformance(
  name: string,
  factory: () => Promise<RegistryPair>,
  options: RegistryConformanceOptions = {},
): void {
  const o = resolve(options);
  describe(`registry lifecycle conformance: ${name}`, () => {
    it("delivers a first list soon after watch, holding only the asked service", caseOf(factory, o, async ({ b }, o, service) => {
      const s = service("first");
      const recorder = new WatchRecorder(b, s, o.deadlineMs);
      await recorder.until(() => recorder.lists.length > 0, "first delivery");
      for (const endpoint of recorder.lists[0] ?? []) assert.equal(endpoint.service, s);
      assert.ok(Object.isFrozen(recorder.lists[0]), "delivered lists are frozen");
      recorder.unwatch();
    }));

    it("never delivers to a watch made on a closed registry", caseOf(factory, o, async ({ b }, o, service) => {
      await b.close();
      const recorder = new WatchRecorder(b, service("closed"), o.deadlineMs);
      await delay(o.quietMs);
      assert.equal(recorder.lists.length, 0);
      recorder.unwatch();
      recorder.unwatch();
    }));

    it("never delivers after unwatch, even before the first delivery", caseOf(factory, o, async ({ b }, o, service) => {
      const recorder = new WatchRecorder(b, service("unwatch"), o.deadlineMs);
      const count = recorder.lists.length;
      recorder.unwatch();
      recorder.unwatch();
      await delay(o.quietMs);
      assert.equal(recorder.lists.length, count);
    }));

    it("never delivers after the watching registry is closed", caseOf(factory, o, async ({ b }, o, service) => {
      const recorder = new WatchRecorder(b, service("close-watcher"), o.deadlineMs);
      const count = recorder.lists.length;
      await Promise.all([b.close(), b.close()]);
      await b.close();
      await delay(o.quietMs);
      assert.equal(recorder.lists.length, count);
      recorder.unwatch();
    }));

    it("makes unregister idempotent and rejects register after close", caseOf(factory, o, async ({ a }, _o, service) => {
      const registration = await a.register(conformanceEndpoint(service("idempotent"), 4100));
      await Promise.all([registration.unregister(), registration.unregister()]);
      await registration.unregister();
      await a.close();
      await a.close();
      await registration.unregister();
      await assert.rejects(a.register(conformanceEndpoint(service("idempotent"), 4101)), (error: unknown) => {
        assert.ok(error instanceof FarcallError, "a FarcallError");
        assert.equal(error.code, "unavailable");
        return true;
      });
    }));
  });
}

/**
 * The whole `Registry` contract, for registries that carry registrations (memory, local,
 * ZooKeeper, etcd, Redis): {@link registryLifecycleConformance} plus propagation between the two
 * instances, removal, full non-reentrant lists, isolation between services, and release on close;
 * and {@link registryRulesConformance}, whose cases a registry without governance rules skips.
 */
export function registryConformance(
  name: string,
  factory: () => Promise<RegistryPair>,
  options: RegistryConformanceOptions = {},
): void {
  registryLifecycleConformance(name, factory, options);
  const o = resolve(options);
  describe(`registry conformance: ${name}`, () => {
    it("shows an endpoint registered on a to a watch on b, every field intact", caseOf(factory, o, async ({ a, b }, o, service) => {
      const s = service("propagate");
      const recorder = new WatchRecorder(b, s, o.deadlineMs);
      await recorder.until(() => recorder.lists.length > 0, "first delivery");
      const endpoint = conformanceEndpoint(s, 4200);
      await a.register(endpoint);
      const [seen] = await recorder.untilIds([endpoint.id], "delivery of the registration");
      assert.ok(seen);
      assert.deepEqual(plain(seen), plain(endpoint));
      recorder.unwatch();
    }));

    it("includes earlier registrations in the first delivery", caseOf(factory, o, async ({ a, b }, o, service) => {
      const s = service("earlier");
      const endpoint = conformanceEndpoint(s, 4210);
      await a.register(endpoint);
      const recorder = new WatchRecorder(b, s, o.deadlineMs);
      await recorder.until(() => recorder.lists.length > 0, "first delivery");
      assert.deepEqual(recorder.lists[0]?.map((e) => e.id), [endpoint.id]);
      recorder.unwatch();
    }));

    it("removes an unregistered endpoint", caseOf(factory, o, async ({ a, b }, o, service) => {
      const s = service("unregister");
      const endpoint = conformanceEndpoint(s, 4220);
      const registration = await a.register(endpoint);
      const recorder = new WatchRecorder(b, s, o.deadlineMs);
      await recorder.untilIds([endpoint.id], "the registration");
      await Promise.all([registration.unregister(), registration.unregister()]);
      await recorder.untilIds([], "removal");
      recorder.unwatch();
    }));

    it("delivers full lists of unique ids, never re-entering the callback", caseOf(factory, o, async ({ a, b }, o, service) => {
      const s = service("full");
      const endpoints = [0, 1, 2, 3, 4].map((i) => conformanceEndpoint(s, 4230 + i));
      const known = new Set(endpoints.map((e) => e.id));
      let fromCallback: Promise<Registration> | undefined;
      const recorder = new WatchRecorder(b, s, o.deadlineMs, (list) => {
        // A consumer reacting inside the callback must not cause a nested delivery.
        if (list.length > 0 && fromCallback === undefined) fromCallback = a.register(endpoints[4] as Endpoint);
      });
      for (const endpoint of endpoints.slice(0, 4)) await a.register(endpoint);
      await recorder.untilIds([...known], "all five endpoints");
      await fromCallback;
      assert.equal(recorder.reentered, false, "callback re-entered");
      for (const list of recorder.lists) {
        const ids = list.map((e) => e.id);
        assert.equal(new Set(ids).size, ids.length, "duplicate ids in one delivery");
        for (const endpoint of list) {
          assert.ok(known.has(endpoint.id), `unknown id ${endpoint.id}`);
          assert.equal(endpoint.service, s);
        }
      }
      recorder.unwatch();
    }));

    it("keeps 50 services apart", caseOf(factory, o, async ({ a, b }, o, service) => {
      const services = Array.from({ length: 50 }, (_, i) => service(`many${i}`));
      const recorders = services.map((s) => new WatchRecorder(b, s, o.deadlineMs));
      const endpoints = await Promise.all(
        services.map(async (s, i) => {
          const endpoint = conformanceEndpoint(s, 5000 + i);
          await a.register(endpoint);
          return endpoint;
        }),
      );
      for (const [i, recorder] of recorders.entries()) {
        await recorder.untilIds([endpoints[i]?.id ?? ""], "its own endpoint");
        for (const list of recorder.lists) for (const e of list) assert.equal(e.service, recorder.service);
        recorder.unwatch();
      }
    }));

    it("holds several endpoints of one service and removes only the unregistered one", caseOf(factory, o, async ({ a, b }, o, service) => {
      const s = service("several");
      const endpoints = [0, 1, 2, 3].map((i) => conformanceEndpoint(s, 4240 + i));
      const registrations = await Promise.all(endpoints.map((e) => a.register(e)));
      const recorder = new WatchRecorder(b, s, o.deadlineMs);
      await recorder.untilIds(endpoints.map((e) => e.id), "all four endpoints");
      await registrations[1]?.unregister();
      await recorder.untilIds(endpoints.filter((_, i) => i !== 1).map((e) => e.id), "the three others");
      recorder.unwatch();
    }));

    it("removes a closed instance's registrations", caseOf(factory, o, async ({ a, b }, o, service) => {
      const s = service("close");
      const endpoints = [conformanceEndpoint(s, 4250), conformanceEndpoint(s, 4251)];
      const registrations = await Promise.all(endpoints.map((e) => a.register(e)));
      const recorder = new WatchRecorder(b, s, o.deadlineMs);
      await recorder.untilIds(endpoints.map((e) => e.id), "both endpoints");
      await a.close();
      await recorder.untilIds([], "removal on close");
      await Promise.all(registrations.map((r) => r.unregister()));
      recorder.unwatch();
    }));

    it("stops delivering after unwatch while another watch still sees changes", caseOf(factory, o, async ({ a, b }, o, service) => {
      const s = service("stop");
      const stopped = new WatchRecorder(b, s, o.deadlineMs);
      const control = new WatchRecorder(b, s, o.deadlineMs);
      await stopped.until(() => stopped.lists.length > 0, "first delivery");
      stopped.unwatch();
      const count = stopped.lists.length;
      const endpoint = conformanceEndpoint(s, 4260);
      await a.register(endpoint);
      await control.untilIds([endpoint.id], "the registration on the control watch");
      await delay(o.quietMs);
      assert.equal(stopped.lists.length, count);
      control.unwatch();
    }));

    it("keeps delivering to a callback that throws", caseOf(factory, o, async ({ a, b }, o, service) => {
      const s = service("throws");
      const recorder = new WatchRecorder(b, s, o.deadlineMs, () => {
        throw new Error("careless consumer");
      });
      await recorder.until(() => recorder.lists.length > 0, "first delivery");
      const endpoint = conformanceEndpoint(s, 4270);
      await a.register(endpoint);
      await recorder.untilIds([endpoint.id], "a delivery after a throwing one");
      recorder.unwatch();
    }));

    if (options.outage !== undefined) {
      const outage = options.outage;
      it("reconnects after a server outage: registrations kept, watches re-armed", caseOf(factory, o, async ({ a, b }, o, service) => {
        const s = service("reconnect");
        const before = conformanceEndpoint(s, 4290);
        await a.register(before);
        const recorder = new WatchRecorder(b, s, o.deadlineMs);
        await recorder.untilIds([before.id], "the registration");
        const seenBefore = recorder.lists.length;
        await outage(1000);
        // A registration made after the outage reaches the watch made before it.
        const after = conformanceEndpoint(s, 4291);
        await a.register(after);
        await recorder.untilIds([before.id, after.id], "a registration made after the outage");
        for (const list of recorder.lists.slice(seenBefore - 1)) {
          assert.ok(list.some((e) => e.id === before.id), `a delivery lost the registration kept through the outage: ${JSON.stringify(list.map((e) => e.id))}`);
        }
        recorder.unwatch();
      }));
    }

    it("rejects a malformed endpoint with invalid_argument", caseOf(factory, o, async ({ a }, _o, service) => {
      const bad = { ...conformanceEndpoint(service("bad"), 4280), port: 0 };
      await assert.rejects(a.register(bad), (error: unknown) => {
        assert.ok(error instanceof FarcallError, "a FarcallError");
        assert.equal(error.code, "invalid_argument");
        return true;
      });
    }));
  });
  registryRulesConformance(name, factory, options);
}

/** Records every delivery of one `Registry.watchRules`, and whether the callback was re-entered. */
class RulesRecorder {
  readonly texts: (string | undefined)[] = [];
  reentered = false;
  readonly unwatch: Unwatch;
  readonly #deadlineMs: number;
  #inside = false;

  constructor(
    registry: Registry,
    readonly service: string,
    deadlineMs: number,
    onDelivery?: (rules: string | undefined) => void,
  ) {
    this.#deadlineMs = deadlineMs;
    const watchRules = registry.watchRules;
    assert.ok(watchRules !== undefined, "watchRules");
    this.unwatch = watchRules.call(registry, service, (rules) => {
      if (this.#inside) this.reentered = true;
      this.#inside = true;
      try {
        this.texts.push(rules);
        onDelivery?.(rules);
      } finally {
        this.#inside = false;
      }
    });
  }

  /** Waits (bounded by the deadline) until a delivery came and the last one is `rules`. */
  async untilLast(rules: string | undefined, what: string): Promise<void> {
    const deadline = Date.now() + this.#deadlineMs;
    for (let round = 0; round < 100_000; round++) {
      if (this.texts.length > 0 && this.texts.at(-1) === rules) return;
      if (Date.now() > deadline) break;
      await delay(5);
    }
    const shown = this.texts.map((t) => (t === undefined ? "undefined" : `${t.slice(0, 60)}… (${t.length})`));
    throw new Error(`${this.service}: no ${what} within ${this.#deadlineMs} ms; deliveries: ${JSON.stringify(shown)}`);
  }
}

/** A rules text unique to `label`, with characters of 2, 3 and 4 UTF-8 bytes. */
function rulesText(label: string): string {
  return JSON.stringify({ version: 1, providers: { "127.0.0.1:4300": { weight: 0 } }, routes: ["=> host != 127.0.0.1"], comment: `${label} é ✓ 😀` });
}

/** A rules text of exactly `bytes` UTF-8 bytes (at least 20), mixing 1-, 2-, 3- and 4-byte characters. */
function rulesTextOfBytes(bytes: number): string {
  const head = '{"comment":"';
  const tail = '"}';
  let fill = "";
  let left = bytes - head.length - tail.length;
  const pieces = ["😀", "✓", "é", "a"];
  for (let i = 0; left > 0; i++) {
    const piece = pieces.find((p) => Buffer.byteLength(p) <= left && (i % 4 === 0 || p === "a" || Buffer.byteLength(p) <= 2)) ?? "a";
    fill += piece;
    left -= Buffer.byteLength(piece);
  }
  const text = `${head}${fill}${tail}`;
  assert.equal(Buffer.byteLength(text), bytes);
  return text;
}

async function rejectsBadRules(publishing: Promise<void>, what: string): Promise<void> {
  await assert.rejects(publishing, (error: unknown) => {
    assert.ok(error instanceof FarcallError, `${what}: a FarcallError`);
    assert.equal(error.code, "invalid_argument", what);
    assert.equal(error.reason, "bad_rules", what);
    return true;
  });
}

/**
 * A case of the rules section: skipped (and reported so) when the registry has no governance
 * rules; a registry with one of `publishRules`/`watchRules` and not the other fails.
 */
function rulesCaseOf(factory: () => Promise<RegistryPair>, o: Resolved, body: Body): (t: TestContext) => Promise<void> {
  return (t) =>
    caseOf(factory, o, async (pair, o, service) => {
      const has = [pair.a.publishRules, pair.a.watchRules, pair.b.publishRules, pair.b.watchRules].map((m) => typeof m === "function");
      assert.ok(has.every((h) => h === has[0]), `publishRules and watchRules come together: ${JSON.stringify(has)}`);
      if (!has[0]) {
        t.skip(`${pair.a.kind} has no governance rules`);
        return;
      }
      await body(pair, o, service);
    })();
}

/** `publishRules` of `registry`, which {@link rulesCaseOf} has checked. */
function publish(registry: Registry, service: string, rules: string | undefined): Promise<void> {
  const publishRules = registry.publishRules;
  assert.ok(publishRules !== undefined, "publishRules");
  return publishRules.call(registry, service, rules);
}

/**
 * The governance-rules part of the `Registry` contract (`publishRules` / `watchRules`): the first
 * delivery, propagation to watches made before and after, every change and deletion, equal texts
 * skipped, texts of up to 65536 bytes intact, services kept apart, rules outliving their
 * publisher, no delivery after unwatch or close, a non-reentrant callback, bad arguments refused,
 * and (with `outage`) a watch that survives a server outage. Run by {@link registryConformance};
 * every case is skipped for a registry without the capability.
 */
export function registryRulesConformance(
  name: string,
  factory: () => Promise<RegistryPair>,
  options: RegistryConformanceOptions = {},
): void {
  const o = resolve(options);
  describe(`registry rules conformance: ${name}`, () => {
    it("delivers undefined first for a service without rules, and nothing more", rulesCaseOf(factory, o, async ({ b }, o, service) => {
      const recorder = new RulesRecorder(b, service("rules-none"), o.deadlineMs);
      await recorder.untilLast(undefined, "first delivery");
      await delay(o.quietMs);
      assert.deepEqual(recorder.texts, [undefined]);
      recorder.unwatch();
    }));

    it("delivers published rules, exactly, to watches made before and after, on both instances", rulesCaseOf(factory, o, async ({ a, b }, o, service) => {
      const s = service("rules-publish");
      const before = new RulesRecorder(b, s, o.deadlineMs);
      const own = new RulesRecorder(a, s, o.deadlineMs);
      await before.untilLast(undefined, "first delivery");
      const text = rulesText("publish");
      await publish(a, s, text);
      await before.untilLast(text, "delivery of the published rules");
      await own.untilLast(text, "delivery to the publishing instance");
      const after = new RulesRecorder(b, s, o.deadlineMs);
      await after.untilLast(text, "first delivery of a watch made after publishing");
      assert.deepEqual(after.texts, [text], "a watch made after publishing starts with the rules");
      for (const recorder of [before, own, after]) recorder.unwatch();
    }));

    it("delivers every change, skips an equal text, and delivers undefined after deletion", rulesCaseOf(factory, o, async ({ a, b }, o, service) => {
      const s = service("rules-change");
      const recorder = new RulesRecorder(b, s, o.deadlineMs);
      await recorder.untilLast(undefined, "first delivery");
      const [one, two] = [rulesText("one"), rulesText("two")];
      await publish(a, s, one);
      await recorder.untilLast(one, "the first text");
      await publish(a, s, two);
      await recorder.untilLast(two, "the second text");
      const count = recorder.texts.length;
      await publish(a, s, two);
      await delay(o.quietMs);
      assert.equal(recorder.texts.length, count, "an equal text is not delivered again");
      await publish(a, s, undefined);
      await recorder.untilLast(undefined, "deletion");
      await publish(a, s, undefined);
      await publish(a, service("rules-never"), undefined);
      assert.deepEqual(recorder.texts, [undefined, one, two, undefined]);
      recorder.unwatch();
    }));

    it("carries a text of exactly 65536 bytes intact", rulesCaseOf(factory, o, async ({ a, b }, o, service) => {
      const s = service("rules-large");
      const text = rulesTextOfBytes(65_536);
      await publish(a, s, text);
      const recorder = new RulesRecorder(b, s, o.deadlineMs);
      await recorder.untilLast(text, "the 65536-byte text");
      recorder.unwatch();
    }));

    it("keeps the rules of two services apart", rulesCaseOf(factory, o, async ({ a, b }, o, service) => {
      const [s1, s2] = [service("rules-apart1"), service("rules-apart2")];
      const [r1, r2] = [new RulesRecorder(b, s1, o.deadlineMs), new RulesRecorder(b, s2, o.deadlineMs)];
      await r1.untilLast(undefined, "first delivery");
      await r2.untilLast(undefined, "first delivery");
      const [t1, t2] = [rulesText("apart1"), rulesText("apart2")];
      await publish(a, s1, t1);
      await r1.untilLast(t1, "its own rules");
      await publish(a, s2, t2);
      await r2.untilLast(t2, "its own rules");
      await publish(a, s1, undefined);
      await r1.untilLast(undefined, "deletion of its own rules");
      await delay(o.quietMs);
      assert.deepEqual(r1.texts, [undefined, t1, undefined]);
      assert.deepEqual(r2.texts, [undefined, t2]);
      r1.unwatch();
      r2.unwatch();
    }));

    it("keeps rules after the publisher closes; publishRules after close rejects", rulesCaseOf(factory, o, async ({ a, b }, o, service) => {
      const s = service("rules-outlive");
      const text = rulesText("outlive");
      await publish(a, s, text);
      await a.close();
      await assert.rejects(publish(a, s, undefined), (error: unknown) => {
        assert.ok(error instanceof FarcallError, "a FarcallError");
        assert.equal(error.code, "unavailable");
        assert.equal(error.reason, "registry_closed");
        return true;
      });
      const recorder = new RulesRecorder(b, s, o.deadlineMs);
      await recorder.untilLast(text, "the rules of a closed publisher");
      recorder.unwatch();
    }));

    it("never delivers after unwatch, nor after the watching registry is closed", rulesCaseOf(factory, o, async ({ a, b }, o, service) => {
      const s = service("rules-stop");
      const unwatched = new RulesRecorder(b, s, o.deadlineMs);
      const closed = new RulesRecorder(b, s, o.deadlineMs);
      const control = new RulesRecorder(a, s, o.deadlineMs);
      await unwatched.untilLast(undefined, "first delivery");
      await closed.untilLast(undefined, "first delivery");
      unwatched.unwatch();
      unwatched.unwatch();
      const one = rulesText("stop1");
      await publish(a, s, one);
      await closed.untilLast(one, "delivery to the watch still running");
      await Promise.all([b.close(), b.close()]);
      const late = new RulesRecorder(b, s, o.deadlineMs);
      const two = rulesText("stop2");
      await publish(a, s, two);
      await control.untilLast(two, "delivery to the control watch");
      await delay(o.quietMs);
      assert.deepEqual(unwatched.texts, [undefined]);
      assert.deepEqual(closed.texts, [undefined, one]);
      assert.deepEqual(late.texts, [], "a watch made on a closed registry");
      for (const recorder of [closed, control, late]) recorder.unwatch();
    }));

    it("never re-enters the callback, and keeps delivering to one that throws", rulesCaseOf(factory, o, async ({ a, b }, o, service) => {
      const s = service("rules-reenter");
      const [one, two] = [rulesText("reenter1"), rulesText("reenter2")];
      let fromCallback: Promise<void> | undefined;
      const recorder = new RulesRecorder(b, s, o.deadlineMs, (rules) => {
        // A consumer reacting inside the callback must not cause a nested delivery.
        if (rules === one && fromCallback === undefined) fromCallback = publish(b, s, two);
        throw new Error("careless consumer");
      });
      await recorder.untilLast(undefined, "first delivery");
      await publish(a, s, one);
      await recorder.untilLast(two, "the text published from inside the callback");
      await fromCallback;
      assert.equal(recorder.reentered, false, "callback re-entered");
      recorder.unwatch();
    }));

    if (options.outage !== undefined) {
      const outage = options.outage;
      it("keeps a rules watch through a server outage", rulesCaseOf(factory, o, async ({ a, b }, o, service) => {
        const s = service("rules-outage");
        const one = rulesText("before");
        await publish(a, s, one);
        const recorder = new RulesRecorder(b, s, o.deadlineMs);
        await recorder.untilLast(one, "the rules before the outage");
        await outage(1000);
        const two = rulesText("after");
        await publish(a, s, two);
        await recorder.untilLast(two, "rules published after the outage");
        assert.ok(!recorder.texts.includes(undefined), `the outage made the rules disappear: ${recorder.texts.length} deliveries`);
        recorder.unwatch();
      }));
    }

    it("refuses a bad service name or text with invalid_argument (bad_rules)", rulesCaseOf(factory, o, async ({ a }, _o, service) => {
      const s = service("rules-bad");
      await rejectsBadRules(publish(a, s, rulesTextOfBytes(65_537)), "65537 bytes");
      await rejectsBadRules(publish(a, s, ""), "an empty text");
      await rejectsBadRules(publish(a, s, 42 as unknown as string), "not a string");
      await rejectsBadRules(publish(a, "not a service", "{}"), "a service name with spaces");
      await rejectsBadRules(publish(a, "", "{}"), "an empty service name");
    }));
  });
}
