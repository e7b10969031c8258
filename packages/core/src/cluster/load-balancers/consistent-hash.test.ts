import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { Call } from "../../call/call.js";
import { FarcallError } from "../../errors/farcall-error.js";
import type { Endpoint } from "../../registry/endpoint.js";
import { sampleEndpoint } from "../../registry/sample-endpoint.js";
import { seededRandom } from "../../timing/seeded-random.js";
import { consistentHash, type HashKey } from "./consistent-hash.js";
import { hashString } from "./hash-ring.js";
import type { LoadBalancer } from "./load-balancer.js";

function callWith(args: readonly unknown[], metadata: Record<string, string> = {}, tried: readonly string[] = []): Call {
  return { args, metadata, tried } as unknown as Call;
}

/** `n` endpoints on distinct addresses drawn from `seed` (records of a fresh snapshot each time). */
function endpointsOf(ports: readonly number[], host = "10.0.0.1"): Endpoint[] {
  return ports.map((port) => sampleEndpoint("s", port, { host }));
}

const keys = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);

/** Where each of `keys` goes: the address (`host:port`) of the picked endpoint. */
function placement(lb: LoadBalancer, endpoints: readonly Endpoint[]): string[] {
  return keys.map((key) => {
    const e = lb.pick(endpoints, callWith([key]), 0) ?? assert.fail();
    return `${e.host}:${e.port}`;
  });
}

const portSets = fc.uniqueArray(fc.integer({ min: 1, max: 65535 }), { minLength: 2, maxLength: 10 });

describe("consistentHash", () => {
  it("sends the same key to the same endpoint, across picks and across new snapshots of the same providers", () => {
    fc.assert(
      fc.property(portSets, fc.array(fc.string(), { minLength: 1, maxLength: 20 }), (ports, someKeys) => {
        const lb = consistentHash();
        const first = endpointsOf(ports);
        const again = endpointsOf(ports); // new records, new array: what a registry push delivers
        for (const key of someKeys) {
          const a = lb.pick(first, callWith([key]), 0);
          assert.equal(lb.pick(first, callWith([key]), 0), a);
          const b = lb.pick(again, callWith([key]), 0);
          assert.equal(`${b?.host}:${b?.port}`, `${a?.host}:${a?.port}`);
          assert.equal(consistentHash().pick([...first].reverse(), callWith([key]), 0)?.port, a?.port, "the order of the list does not matter");
        }
      }),
      { numRuns: 100 },
    );
  });

  it("when one of N endpoints leaves, only its keys move: at most 1/N of 10,000 keys, +40 % (5 sd of a 160-point share)", () => {
    fc.assert(
      fc.property(portSets, fc.nat(), (ports, leaving) => {
        const n = ports.length;
        const gone = ports[leaving % n] as number;
        const lb = consistentHash();
        const before = placement(lb, endpointsOf(ports));
        const after = placement(lb, endpointsOf(ports.filter((p) => p !== gone)));
        let moved = 0;
        before.forEach((address, i) => {
          if (after[i] === address) return;
          moved++;
          assert.equal(address, `10.0.0.1:${gone}`, `key ${keys[i]} moved from ${address}, which did not leave`);
        });
        // Keys that lived on the leaving endpoint: its share of the ring, 1/N with a relative sd of
        // about 1/sqrt(160) = 8 % (the share of 160 random points), plus sampling noise of 10,000 keys.
        const bound = (keys.length / n) * 1.4 + 5 * Math.sqrt(keys.length / n);
        assert.ok(moved <= bound, `${moved} of ${keys.length} keys moved when 1 of ${n} left (bound ${bound.toFixed(0)})`);
      }),
      { numRuns: 60 },
    );
  });

  it("when one endpoint joins N, it takes about 1/(N+1) of the keys, from the others only", () => {
    fc.assert(
      fc.property(portSets, fc.integer({ min: 1, max: 65535 }), (ports, joining) => {
        fc.pre(!ports.includes(joining));
        const n = ports.length;
        const lb = consistentHash();
        const before = placement(lb, endpointsOf(ports));
        const after = placement(lb, endpointsOf([...ports, joining]));
        let moved = 0;
        after.forEach((address, i) => {
          if (before[i] === address) return;
          moved++;
          assert.equal(address, `10.0.0.1:${joining}`, `key ${keys[i]} moved to ${address}, which was there already`);
        });
        const share = keys.length / (n + 1);
        const slack = share * 0.4 + 5 * Math.sqrt(share);
        assert.ok(Math.abs(moved - share) <= slack, `${moved} keys moved to the newcomer, expected ${share.toFixed(0)} ± ${slack.toFixed(0)}`);
      }),
      { numRuns: 60 },
    );
  });

  it("spreads keys evenly: each of N endpoints owns 1/N of them ± 40 %", () => {
    fc.assert(
      fc.property(portSets, (ports) => {
        const counts = new Map<string, number>();
        for (const address of placement(consistentHash(), endpointsOf(ports))) counts.set(address, (counts.get(address) ?? 0) + 1);
        const share = keys.length / ports.length;
        for (const port of ports) {
          const got = counts.get(`10.0.0.1:${port}`) ?? 0;
          assert.ok(Math.abs(got - share) <= share * 0.4 + 5 * Math.sqrt(share), `port ${port}: ${got} keys, expected ${share.toFixed(0)}`);
        }
      }),
      { numRuns: 40 },
    );
  });

  it("retries on the endpoint the key would go to if the tried one left", () => {
    fc.assert(
      fc.property(portSets, fc.string(), (ports, key) => {
        const lb = consistentHash();
        const all = endpointsOf(ports);
        const first = lb.pick(all, callWith([key]), 0) ?? assert.fail();
        const rest = all.filter((e) => e !== first);
        const retried = lb.pick(rest, callWith([key], {}, [`${first.host}:${first.port}`]), 0);
        const ifGone = consistentHash().pick(endpointsOf(ports.filter((p) => p !== first.port)), callWith([key]), 0);
        assert.equal(retried?.port, ifGone?.port);
      }),
      { numRuns: 100 },
    );
  });

  it("reads the key from an argument, a metadata value or a function; numbers hash as text", () => {
    const endpoints = endpointsOf([1, 2, 3, 4, 5, 6, 7, 8]);
    const byArg = consistentHash({ hashKey: { argument: 1 } });
    const byMeta = consistentHash({ hashKey: { metadata: "userId" } });
    const byFn = consistentHash({ hashKey: (call) => (call.args[0] as { id: string }).id });
    for (const id of ["a", "b", "c", "42"]) {
      const expected = byArg.pick(endpoints, callWith(["x", id]), 0);
      assert.equal(byArg.pick(endpoints, callWith(["y", id]), 0), expected, "only argument 1 counts");
      assert.equal(byMeta.pick(endpoints, callWith(["z"], { userId: id }), 0), expected);
      assert.equal(byFn.pick(endpoints, callWith([{ id }]), 0), expected);
    }
    assert.equal(byArg.pick(endpoints, callWith(["x", 42]), 0), byArg.pick(endpoints, callWith(["x", "42"]), 0));
  });

  it("balances calls without a key by weighted random instead of piling them on one endpoint", () => {
    const endpoints = endpointsOf([1, 2, 3, 4]);
    const lb = consistentHash({ hashKey: { metadata: "userId" }, random: seededRandom(9) });
    const seen = new Set<Endpoint | undefined>();
    for (let i = 0; i < 200; i++) seen.add(lb.pick(endpoints, callWith(["not the key"], { other: "x" }), 0));
    assert.equal(seen.size, 4);
    const byObject = consistentHash({ random: seededRandom(9) });
    const seenByObject = new Set<Endpoint | undefined>();
    for (let i = 0; i < 200; i++) seenByObject.add(byObject.pick(endpoints, callWith([{ id: "an object is not a key" }]), 0));
    assert.equal(seenByObject.size, 4);
    const inherited = consistentHash({ hashKey: { metadata: "constructor" }, random: seededRandom(9) });
    const seenInherited = new Set<Endpoint | undefined>();
    for (let i = 0; i < 200; i++) seenInherited.add(inherited.pick(endpoints, callWith([]), 0));
    assert.equal(seenInherited.size, 4, "an inherited property is not a key");
  });

  it("gives no key to a weight-0 endpoint while others have weight", () => {
    const endpoints = [sampleEndpoint("s", 1, { weight: 0 }), sampleEndpoint("s", 2), sampleEndpoint("s", 3)];
    const lb = consistentHash();
    for (const key of keys.slice(0, 2000)) assert.notEqual(lb.pick(endpoints, callWith([key]), 0), endpoints[0]);
  });

  it("rejects a malformed hashKey or virtualNodes with bad_option", () => {
    const bad: unknown[] = [{ argument: -1 }, { argument: 1.5 }, { argument: 256 }, { metadata: "" }, { metadata: 3 }, { argument: 0, metadata: "x" }, "userId", 0, null];
    for (const hashKey of bad) {
      assert.throws(
        () => consistentHash({ hashKey: hashKey as HashKey }),
        (e: unknown) => e instanceof FarcallError && e.reason === "bad_option" && e.details["option"] === "hashKey",
        JSON.stringify(hashKey),
      );
    }
    for (const virtualNodes of [0, 1.5, 10_001]) {
      assert.throws(() => consistentHash({ virtualNodes }), (e: unknown) => e instanceof FarcallError && e.details["option"] === "virtualNodes");
    }
  });

  it("hashString spreads near-identical strings over the whole 32-bit range", () => {
    const buckets = new Array<number>(16).fill(0);
    for (let i = 0; i < 16_000; i++) {
      const h = hashString(`10.0.0.1:20880#${i}`);
      assert.ok(Number.isInteger(h) && h >= 0 && h < 2 ** 32);
      buckets[h >>> 28] = (buckets[h >>> 28] ?? 0) + 1;
    }
    // 1000 expected per bucket, sd 31.
    for (const count of buckets) assert.ok(Math.abs(count - 1000) <= 5 * 31, String(count));
  });
});
