import assert from "node:assert/strict";
import { describe, it, type TestContext } from "node:test";
import type { Endpoint } from "../registry/endpoint.js";
import type { Registry, WatchOptions } from "../registry/registry.js";
import { sampleEndpoint } from "../registry/sample-endpoint.js";
import { Directory, emptyPushWarningCode } from "./directory.js";

const a = sampleEndpoint("s", 1);
const b = sampleEndpoint("s", 2);
const c = sampleEndpoint("s", 3);
const otherVersion = sampleEndpoint("s", 4, { version: "2" });

/** A registry whose one watch callback the test holds: `push(list)` is a registry delivery. */
function fakeRegistry() {
  let onChange: ((endpoints: readonly Endpoint[]) => void) | undefined;
  const watches: Array<{ service: string; options: WatchOptions | undefined }> = [];
  const registry: Registry = {
    kind: "fake",
    register: () => Promise.reject(new Error("not used")),
    watch(service, callback, options) {
      onChange = callback;
      watches.push({ service, options });
      return () => {
        onChange = undefined;
      };
    },
    close: () => Promise.resolve(),
  };
  const push = (endpoints: readonly Endpoint[]): void => {
    assert.ok(onChange !== undefined, "the directory watches");
    onChange(Object.freeze([...endpoints]));
  };
  return { registry, push, watches };
}

/**
 * A directory over a fake registry, with `connected` read from a set the test changes and
 * `process.emitWarning` replaced for the test (restored by the test context).
 */
function setup(t: TestContext, emptyProtection = true) {
  const { registry, push, watches } = fakeRegistry();
  const connected = new Set<Endpoint>();
  const warn = t.mock.method(process, "emitWarning", () => {});
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const directory = new Directory({
    registry,
    service: "s",
    version: "1",
    group: "",
    application: "consumer",
    usable: () => true,
    emptyProtection,
    connected: (e) => connected.has(e),
  });
  t.after(() => directory.close());
  /** The warnings emitted once every pending warning delay (1 s) has passed. */
  const warnings = (): Array<{ message: unknown; code: unknown }> => {
    t.mock.timers.tick(1000);
    return warn.mock.calls.map((call) => {
      const [message, options] = call.arguments as unknown[];
      return { message, code: (options as { code?: unknown } | undefined)?.code };
    });
  };
  return { directory, push, connected, warnings, watches };
}

describe("Directory", () => {
  it("watches its service with the consumer's application name", (t) => {
    const { watches } = setup(t);
    assert.deepEqual(watches, [{ service: "s", options: { application: "consumer" } }]);
  });

  it("filters by version and keeps current() allocation-free while nothing changes", (t) => {
    const { directory, push } = setup(t);
    push([a, otherVersion, b]);
    assert.deepEqual(directory.all(), [a, b]);
    const first = directory.current(0);
    assert.deepEqual(first, [a, b]);
    assert.equal(directory.current(1), first, "the same snapshot until something changes");
  });

  it("takes a first delivery that is empty as empty, without a warning", (t) => {
    const { directory, push, warnings } = setup(t);
    assert.equal(directory.received, false);
    push([]);
    assert.equal(directory.received, true);
    assert.deepEqual(directory.all(), []);
    assert.deepEqual(directory.current(0), []);
    assert.deepEqual(warnings(), []);
  });

  describe("empty-push protection", () => {
    it("keeps the connected providers through an empty push, with one warning for the episode", (t) => {
      const { directory, push, connected, warnings } = setup(t);
      push([a, b, c]);
      connected.add(a).add(b);
      push([]);
      assert.deepEqual(directory.all(), [a, b], "c had no connection: dropped");
      assert.deepEqual(directory.current(0), [a, b]);
      push([]);
      assert.deepEqual(directory.current(1), [a, b]);
      const got = warnings();
      assert.equal(got.length, 1, "one warning per episode");
      assert.equal(got[0]?.code, emptyPushWarningCode);
      assert.equal(got[0]?.code, "FARCALL_EMPTY_PUSH");
      assert.match(String(got[0]?.message), /\bs:1\b/, "names the service");
      assert.match(String(got[0]?.message), /keeping the 2 connected providers/, "says how many were kept");
    });

    it("applies to a push that is empty only after version and group filtering", (t) => {
      const { directory, push, connected, warnings } = setup(t);
      push([a]);
      connected.add(a);
      push([otherVersion]);
      assert.deepEqual(directory.current(0), [a]);
      assert.equal(warnings().length, 1);
    });

    it("accepts an empty push when no listed provider is connected", (t) => {
      const { directory, push, warnings } = setup(t);
      push([a, b]);
      push([]);
      assert.deepEqual(directory.all(), []);
      assert.deepEqual(directory.current(0), []);
      assert.deepEqual(warnings(), []);
    });

    it("drops a kept provider for good at the first rebuild after its connection ends", (t) => {
      const { directory, push, connected, warnings } = setup(t);
      push([a, b]);
      connected.add(a).add(b);
      push([]);
      assert.deepEqual(directory.current(0), [a, b]);
      assert.equal(warnings().length, 1, "the episode held for the warning delay");

      connected.delete(a); // a sent `closing`, or its connection dropped: the pool notifies
      directory.invalidate();
      assert.deepEqual(directory.current(1), [b]);
      assert.deepEqual(directory.all(), [b]);

      connected.add(a); // a reconnecting does not bring it back: the registry no longer lists it
      directory.invalidate();
      assert.deepEqual(directory.current(2), [b]);

      connected.delete(b);
      directory.invalidate();
      assert.deepEqual(directory.all(), [], "all() sees the drop before any current()");
      assert.deepEqual(directory.current(3), []);

      // The episode is over: the next one warns again.
      push([c]);
      connected.add(c);
      push([]);
      assert.deepEqual(directory.current(4), [c]);
      assert.equal(warnings().length, 2);
    });

    it("does not warn when the kept providers leave within the warning delay (an orderly shutdown)", (t) => {
      const { directory, push, connected, warnings } = setup(t);
      push([a]);
      connected.add(a);
      push([]); // the provider unregistered first...
      assert.deepEqual(directory.current(0), [a]);
      t.mock.timers.tick(500);
      connected.delete(a); // ...and its `closing` frame arrived half a second later
      directory.invalidate();
      assert.deepEqual(directory.current(1), []);
      assert.deepEqual(warnings(), []);
    });

    it("ends with the next non-empty push, which replaces the kept list", (t) => {
      const { directory, push, connected, warnings } = setup(t);
      push([a, b]);
      connected.add(a).add(b);
      push([]);
      assert.deepEqual(directory.current(0), [a, b]);
      assert.equal(warnings().length, 1);
      push([c]);
      assert.deepEqual(directory.all(), [c]);
      assert.deepEqual(directory.current(1), [c]);
      connected.delete(a);
      directory.invalidate();
      assert.deepEqual(directory.current(2), [c], "unprotected lists follow the registry, not the connections");
      push([]);
      assert.deepEqual(directory.current(3), [], "c was never connected");
      assert.equal(warnings().length, 1);
    });

    it("is off with emptyProtection: false: an empty push empties the list", (t) => {
      const { directory, push, connected, warnings } = setup(t, false);
      push([a, b]);
      connected.add(a).add(b);
      assert.deepEqual(directory.current(0), [a, b]);
      push([]);
      assert.deepEqual(directory.all(), []);
      assert.deepEqual(directory.current(1), []);
      assert.deepEqual(warnings(), []);
    });
  });
});
