import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { Call } from "../../call/call.js";
import type { Endpoint } from "../../registry/endpoint.js";
import { sampleEndpoint } from "../../registry/sample-endpoint.js";
import { effectiveWeight } from "./load-balancer.js";
import { roundRobin } from "./round-robin.js";
import { weightedRandom } from "./weighted-random.js";

function endpoint(id: string, weight: number, warmupMs = 0, startTime = 0): Endpoint {
  return sampleEndpoint("s", 1000 + Number(id.replace(/\D/g, "") || 0), { id, weight, warmupMs, startTime });
}

const call = {} as Call;

/** A deterministic uniform source (mulberry32). */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("effectiveWeight (warm-up)", () => {
  it("grows linearly with uptime to the full weight, never below 1", () => {
    const e = endpoint("e1", 100, 10_000, 1_000_000);
    assert.equal(effectiveWeight(e, 1_000_000), 1);
    assert.equal(effectiveWeight(e, 1_000_050), 1, "at least 1");
    assert.equal(effectiveWeight(e, 1_002_500), 25);
    assert.equal(effectiveWeight(e, 1_005_000), 50);
    assert.equal(effectiveWeight(e, 1_010_000), 100);
    assert.equal(effectiveWeight(e, 2_000_000), 100);
    assert.equal(effectiveWeight(endpoint("e2", 0, 10_000, 1), 5), 0, "weight 0 stays 0");
  });
});

describe("weightedRandom", () => {
  it("picks in proportion to the weights (property, seeded, 20000 picks each)", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 100 }), { minLength: 2, maxLength: 6 }), fc.integer(), (weights, seed) => {
        const endpoints = weights.map((w, i) => endpoint(`e${i}`, w));
        const lb = weightedRandom({ random: seeded(seed) });
        const counts = new Map<string, number>();
        const picks = 20_000;
        for (let i = 0; i < picks; i++) {
          const picked = lb.pick(endpoints, call, 0);
          assert.ok(picked);
          counts.set(picked.id, (counts.get(picked.id) ?? 0) + 1);
        }
        const total = weights.reduce((a, b) => a + b, 0);
        weights.forEach((w, i) => {
          const expected = (w / total) * picks;
          const got = counts.get(`e${i}`) ?? 0;
          // 5 standard deviations of a binomial: fails on a wrong distribution, not on chance
          const sd = Math.sqrt(picks * (w / total) * (1 - w / total));
          assert.ok(Math.abs(got - expected) <= 5 * sd + 1, `e${i}: weight ${w}/${total}, expected ${expected.toFixed(0)}, got ${got}`);
        });
      }),
      { numRuns: 30 },
    );
  });

  it("returns undefined for no endpoint and the only one for one", () => {
    const lb = weightedRandom();
    assert.equal(lb.pick([], call, 0), undefined);
    const only = endpoint("e1", 5);
    assert.equal(lb.pick([only], call, 0), only);
  });
});

describe("roundRobin (smooth weighted)", () => {
  it("gives each endpoint exactly its weight in every window of sum(weights) picks", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 6 }), (weights) => {
        const endpoints = weights.map((w, i) => endpoint(`e${i}`, w));
        const lb = roundRobin();
        const total = weights.reduce((a, b) => a + b, 0);
        for (let window = 0; window < 3; window++) {
          const counts = new Map<string, number>();
          for (let i = 0; i < total; i++) {
            const picked = lb.pick(endpoints, call, 0);
            assert.ok(picked);
            counts.set(picked.id, (counts.get(picked.id) ?? 0) + 1);
          }
          weights.forEach((w, i) => assert.equal(counts.get(`e${i}`) ?? 0, w));
        }
      }),
      { numRuns: 200 },
    );
  });

  it("interleaves rather than bursting: weights 5,1,1 give a a b a c a a (nginx's sequence)", () => {
    const endpoints = [endpoint("a1", 5), endpoint("b2", 1), endpoint("c3", 1)];
    const lb = roundRobin();
    const order = Array.from({ length: 7 }, () => lb.pick(endpoints, call, 0)?.id.charAt(0)).join(" ");
    assert.equal(order, "a a b a c a a");
  });
});
