import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { Call } from "../../call/call.js";
import type { Endpoint } from "../../registry/endpoint.js";
import { sampleEndpoint } from "../../registry/sample-endpoint.js";
import { seededRandom } from "../../timing/seeded-random.js";
import { EndpointStatsTable } from "../endpoint-stats.js";
import { adaptive } from "./adaptive.js";
import { leastActive } from "./least-active.js";
import { effectiveWeight, type LoadBalancer } from "./load-balancer.js";
import { roundRobin } from "./round-robin.js";
import { shortestResponse } from "./shortest-response.js";
import { weightedRandom } from "./weighted-random.js";

function endpoint(id: string, weight: number, warmupMs = 0, startTime = 0): Endpoint {
  return sampleEndpoint("s", 1000 + Number(id.replace(/\D/g, "") || 0), { id, weight, warmupMs, startTime });
}

const call = { args: [], metadata: {}, tried: [] } as unknown as Call;

const seeded = seededRandom;

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

/**
 * The weighted balancers, as each looks when its statistics say nothing to choose between the
 * endpoints (all idle, or all alike): then each must pick in proportion to the warm-up adjusted
 * weights. `prime` puts the same history on every endpoint (the adaptive balancer compares costs,
 * so equal non-zero costs must still give the weighted draw).
 */
const weighted: Array<{ name: string; make: (random: () => number) => LoadBalancer; prime?: (table: EndpointStatsTable, endpoints: readonly Endpoint[]) => void }> = [
  { name: "weightedRandom", make: (random) => weightedRandom({ random }) },
  { name: "leastActive (all idle)", make: (random) => leastActive({ random }) },
  { name: "shortestResponse (no latency yet)", make: (random) => shortestResponse({ random }) },
  { name: "adaptive (no latency yet)", make: (random) => adaptive({ random }) },
  {
    name: "adaptive (same latency and load everywhere)",
    make: (random) => adaptive({ random }),
    prime: (table, endpoints) => {
      for (const e of endpoints) {
        const stats = table.get(e);
        stats.settled(stats.started() - 7, undefined);
        stats.started();
      }
    },
  },
];

describe("weighted balancers: distribution follows warm-up adjusted weights", () => {
  const warmupMs = 600_000;
  const now = 10_000_000;
  for (const { name, make, prime } of weighted) {
    it(`${name}: each endpoint's share within 5 standard deviations of weight/total (property, 20000 picks per case)`, () => {
      fc.assert(
        fc.property(
          fc
            .array(fc.record({ weight: fc.integer({ min: 0, max: 100 }), uptime: fc.integer({ min: 0, max: 2 * warmupMs }) }), { minLength: 2, maxLength: 6 })
            .filter((list) => list.some((e) => e.weight > 0)),
          fc.integer(),
          (list, seed) => {
            // Start times spread over [now - 2·warm-up, now]: some endpoints warm up, some are done.
            const endpoints = list.map((e, i) => endpoint(`e${i}`, e.weight, warmupMs, now - e.uptime));
            const weights = endpoints.map((e) => effectiveWeight(e, now));
            const total = weights.reduce((a, b) => a + b, 0);
            const table = new EndpointStatsTable({ now: () => 5000 });
            prime?.(table, endpoints);
            const lb = make(seeded(seed));
            const picks = 20_000;
            const counts = new Map<string, number>();
            for (let i = 0; i < picks; i++) {
              const picked = lb.pick(endpoints, call, now, table);
              assert.ok(picked);
              counts.set(picked.id, (counts.get(picked.id) ?? 0) + 1);
            }
            weights.forEach((w, i) => {
              const p = w / total;
              const got = counts.get(endpoints[i]?.id ?? "") ?? 0;
              // Binomial(picks, p): |got - picks·p| <= 5 sd fails on a wrong distribution, about once in 1.7 million on chance.
              const sd = Math.sqrt(picks * p * (1 - p));
              assert.ok(Math.abs(got - picks * p) <= 5 * sd + 1, `e${i}: effective weight ${w}/${total}, expected ${(picks * p).toFixed(0)}, got ${got}`);
            });
          },
        ),
        { numRuns: 30 },
      );
    });
  }

  it("the warm-up ramp itself: a provider started 1/4 of its warm-up ago gets 1/4 of its weight's share", () => {
    const old = endpoint("e1", 100, warmupMs, 1);
    const young = endpoint("e2", 100, warmupMs, now - warmupMs / 4);
    for (const { make } of weighted) {
      const lb = make(seeded(7));
      let youngPicks = 0;
      const picks = 20_000;
      for (let i = 0; i < picks; i++) if (lb.pick([old, young], call, now, new EndpointStatsTable({ now: () => 0 })) === young) youngPicks++;
      // Weights 100 and 25: p = 0.2, sd = 57 picks.
      assert.ok(Math.abs(youngPicks - 0.2 * picks) <= 5 * Math.sqrt(picks * 0.2 * 0.8), `${lb.name}: ${youngPicks}`);
    }
  });
});
