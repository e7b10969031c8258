import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { Call } from "../../call/call.js";
import type { Endpoint } from "../../registry/endpoint.js";
import { sampleEndpoint } from "../../registry/sample-endpoint.js";
import { keepEndpoints, noEndpoints, type RouteContext, type Router, routeAll } from "./router.js";

const call = { ref: { method: "get" }, args: [], metadata: {} } as unknown as Call;
const context: RouteContext = { application: "shop", host: "10.1.0.1" };

function snapshot(ports: readonly number[]): readonly Endpoint[] {
  return Object.freeze(ports.map((port) => sampleEndpoint("s", port)));
}

/** A router keeping the endpoints `keep` accepts, recording each list it was given. */
function recording(name: string, keep: (e: Endpoint) => boolean, seen: (readonly Endpoint[])[]): Router {
  return {
    name,
    route(endpoints) {
      seen.push(endpoints);
      return keepEndpoints(endpoints, keep);
    },
  };
}

describe("routeAll", () => {
  it("runs the routers in order, each on the previous one's output", () => {
    const endpoints = snapshot([1, 2, 3, 4]);
    const seen: (readonly Endpoint[])[] = [];
    const odd = recording("odd", (e) => e.port % 2 === 1, seen);
    const small = recording("small", (e) => e.port < 3, seen);
    const routed = routeAll([odd, small], endpoints, call, context);
    assert.deepEqual(
      routed.map((e) => e.port),
      [1],
    );
    assert.equal(seen[0], endpoints, "the first router gets the snapshot");
    assert.deepEqual(
      seen[1]?.map((e) => e.port),
      [1, 3],
      "the second router gets the first one's output",
    );
  });

  it("returns the snapshot itself when there are no routers or none filters anything", () => {
    const endpoints = snapshot([1, 2]);
    assert.equal(routeAll([], endpoints, call, context), endpoints);
    const seen: (readonly Endpoint[])[] = [];
    assert.equal(routeAll([recording("all", () => true, seen), recording("all", () => true, seen)], endpoints, call, context), endpoints);
  });

  it("stops at an empty list: later routers are not asked", () => {
    const endpoints = snapshot([1, 2]);
    const never: Router = {
      name: "never",
      route() {
        throw new Error("a router after an empty list was called");
      },
    };
    const routed = routeAll([recording("none", () => false, []), never], endpoints, call, context);
    assert.equal(routed.length, 0);
  });
});

describe("keepEndpoints", () => {
  it("keeps what the predicate accepts, in order; returns the input itself exactly when it keeps everything; never mutates it", () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { maxLength: 12 }), (mask) => {
        const endpoints = snapshot(mask.map((_, i) => i + 1));
        const before = [...endpoints];
        const kept = keepEndpoints(endpoints, (e) => mask[e.port - 1] === true);
        assert.deepEqual(kept, endpoints.filter((e) => mask[e.port - 1] === true));
        assert.deepEqual(endpoints, before);
        if (mask.every((keep) => keep)) assert.equal(kept, endpoints);
        else {
          assert.notEqual(kept, endpoints);
          assert.ok(Object.isFrozen(kept), "a new list is frozen: routers share it between calls");
        }
      }),
    );
  });

  it("noEndpoints is frozen and empty", () => {
    assert.equal(noEndpoints.length, 0);
    assert.ok(Object.isFrozen(noEndpoints));
  });
});
