import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { type Endpoint, FarcallError, type Registration, type Registry } from "@farcall/core/extension";
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
 * instances, removal, full non-reentrant lists, isolation between services, and release on close.
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
}
