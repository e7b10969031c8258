import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { Call } from "../../call/call.js";
import { FarcallError } from "../../errors/farcall-error.js";
import type { Endpoint } from "../../registry/endpoint.js";
import { sampleEndpoint } from "../../registry/sample-endpoint.js";
import type { RouteContext } from "./router.js";
import { tagMetadataKey, tagRouter } from "./tag-router.js";

const context: RouteContext = { application: "shop", host: "10.1.0.7" };

function callWithTag(tag?: unknown): Call {
  const metadata = tag === undefined ? {} : { [tagMetadataKey]: tag };
  return { ref: { method: "get" }, args: [], metadata } as unknown as Call;
}

/** A frozen snapshot with one endpoint per entry of `tags`, on ports 1, 2, …. */
function fleet(...tags: string[]): readonly Endpoint[] {
  return Object.freeze(tags.map((tag, i) => sampleEndpoint("s", i + 1, { tag })));
}

function ports(endpoints: readonly Endpoint[]): number[] {
  return endpoints.map((e) => e.port);
}

describe("tagRouter", () => {
  it("reads the requested tag from the call's metadata key farcall-tag", () => {
    assert.equal(tagMetadataKey, "farcall-tag");
  });

  it("sends a call asking for tag T to the providers tagged T", () => {
    const snapshot = fleet("", "gray", "blue", "gray");
    const routed = tagRouter().route(snapshot, callWithTag("gray"), context);
    assert.deepEqual(ports(routed), [2, 4]);
    assert.ok(Object.isFrozen(routed));
  });

  it("without force, sends a call asking for a tag nobody has to the untagged providers (none if there are none)", () => {
    assert.deepEqual(ports(tagRouter().route(fleet("", "gray", ""), callWithTag("canary"), context)), [1, 3]);
    assert.deepEqual(ports(tagRouter({ force: false }).route(fleet("gray", "blue"), callWithTag("canary"), context)), []);
  });

  it("with force, leaves a call asking for a tag nobody has with no provider", () => {
    assert.deepEqual(ports(tagRouter({ force: true }).route(fleet("", "gray"), callWithTag("canary"), context)), []);
    assert.deepEqual(ports(tagRouter({ force: true }).route(fleet("", "gray"), callWithTag("gray"), context)), [2]);
  });

  it("sends a call asking for no tag to the untagged providers, or to all when every provider is tagged", () => {
    assert.deepEqual(ports(tagRouter().route(fleet("", "gray", ""), callWithTag(), context)), [1, 3]);
    const tagged = fleet("gray", "blue");
    assert.equal(tagRouter().route(tagged, callWithTag(), context), tagged);
    assert.equal(tagRouter({ force: true }).route(tagged, callWithTag(), context), tagged, "force is about requested tags only");
  });

  it("treats an empty or non-string farcall-tag as no tag requested", () => {
    const snapshot = fleet("", "gray");
    for (const tag of ["", 7, null]) assert.deepEqual(ports(tagRouter({ force: true }).route(snapshot, callWithTag(tag), context)), [1], String(tag));
  });

  it("returns the snapshot itself when nothing is filtered out", () => {
    const untagged = fleet("", "");
    assert.equal(tagRouter().route(untagged, callWithTag(), context), untagged);
    assert.equal(tagRouter().route(untagged, callWithTag("gray"), context), untagged, "fallback to the untagged, which are all");
    const gray = fleet("gray", "gray");
    assert.equal(tagRouter().route(gray, callWithTag("gray"), context), gray);
    const empty: readonly Endpoint[] = Object.freeze([]);
    assert.equal(tagRouter().route(empty, callWithTag("gray"), context), empty);
  });

  it("never mutates the snapshot", () => {
    const list = [...fleet("", "gray", "blue")];
    const copy = [...list];
    tagRouter().route(list, callWithTag("gray"), context);
    tagRouter().route(list, callWithTag(), context);
    assert.deepEqual(list, copy);
  });

  it("returns the same list for repeated calls on the same snapshot, and routes a new snapshot afresh", () => {
    const router = tagRouter();
    const before = fleet("", "gray", "gray");
    const first = router.route(before, callWithTag("gray"), context);
    assert.equal(router.route(before, callWithTag("gray"), context), first);
    assert.equal(router.route(before, callWithTag(), context), router.route(before, callWithTag(), context));
    const after = Object.freeze([...before.slice(0, 2), sampleEndpoint("s", 9, { tag: "blue" })]);
    assert.deepEqual(ports(router.route(after, callWithTag("gray"), context)), [2]);
    assert.deepEqual(ports(router.route(after, callWithTag("blue"), context)), [9]);
    assert.deepEqual(ports(router.route(before, callWithTag("blue"), context)), [1], "the old snapshot has no blue: untagged");
  });

  it("throws bad_option for a force that is not a boolean", () => {
    assert.throws(
      () => tagRouter({ force: "yes" as unknown as boolean }),
      (e) => e instanceof FarcallError && e.code === "invalid_argument" && e.reason === "bad_option" && e.details["option"] === "force",
    );
  });

  it("agrees with the rules read directly, over random fleets, tags and force", () => {
    const tag = fc.constantFrom("", "gray", "blue", "canary");
    fc.assert(
      fc.property(fc.array(tag, { maxLength: 8 }), fc.array(fc.tuple(fc.nat(), tag), { maxLength: 10 }), fc.boolean(), (tags, calls, force) => {
        const snapshots = [fleet(...tags), fleet(...tags.slice(1))];
        const router = tagRouter({ force });
        for (const [which, requested] of calls) {
          const endpoints = snapshots[which % 2] as readonly Endpoint[];
          const withTag = (t: string) => endpoints.filter((e) => e.tag === t);
          let expected: readonly Endpoint[];
          if (requested === "") expected = withTag("").length > 0 ? withTag("") : endpoints;
          else if (withTag(requested).length > 0) expected = withTag(requested);
          else expected = force ? [] : withTag("");
          const routed = router.route(endpoints, callWithTag(requested), context);
          assert.deepEqual(routed, expected);
          if (routed.length === endpoints.length) assert.equal(routed, endpoints);
        }
      }),
      { numRuns: 500 },
    );
  });
});
