import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { Call } from "../../call/call.js";
import { sampleEndpoint } from "../../registry/sample-endpoint.js";
import { seededRandom } from "../../timing/seeded-random.js";
import { EndpointStatsTable } from "../endpoint-stats.js";
import { leastActive } from "./least-active.js";

const call = { args: [], metadata: {}, tried: [] } as unknown as Call;
const retry = { args: [], metadata: {}, tried: ["127.0.0.1:9"] } as unknown as Call;

describe("leastActive", () => {
  it("picks the endpoint with the fewest calls in flight, whatever the weights (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ active: fc.integer({ min: 0, max: 50 }), weight: fc.integer({ min: 1, max: 100 }) }), { minLength: 2, maxLength: 8 }),
        fc.integer(),
        (list, seed) => {
          const least = Math.min(...list.map((e) => e.active));
          fc.pre(list.filter((e) => e.active === least).length === 1);
          const endpoints = list.map((e, i) => sampleEndpoint("s", 3000 + i, { weight: e.weight }));
          const table = new EndpointStatsTable({ decayMs: 10_000, now: () => 0 });
          list.forEach((e, i) => {
            for (let k = 0; k < e.active; k++) table.get(endpoints[i] ?? assert.fail()).started();
          });
          const lb = leastActive({ random: seededRandom(seed) });
          const idle = endpoints[list.findIndex((e) => e.active === least)];
          for (let k = 0; k < 20; k++) assert.equal(lb.pick(endpoints, call, 0, table), idle);
          assert.equal(lb.pick(endpoints, retry, 0, table), idle, "a retry's list reads the same counts");
        },
      ),
      { numRuns: 200 },
    );
  });

  it("breaks ties among the least active only, by weight", () => {
    const endpoints = [sampleEndpoint("s", 3000, { weight: 300 }), sampleEndpoint("s", 3001, { weight: 100 }), sampleEndpoint("s", 3002, { weight: 1000 })];
    const table = new EndpointStatsTable({ decayMs: 10_000, now: () => 0 });
    table.get(endpoints[2] ?? assert.fail()).started();
    const lb = leastActive({ random: seededRandom(3) });
    const picks = 20_000;
    let first = 0;
    for (let i = 0; i < picks; i++) {
      const picked = lb.pick(endpoints, call, 0, table);
      assert.notEqual(picked, endpoints[2], "the busy one is never picked, heavy as it is");
      if (picked === endpoints[0]) first++;
    }
    // p = 300/400; sd = 61 picks.
    assert.ok(Math.abs(first - 0.75 * picks) <= 5 * Math.sqrt(picks * 0.75 * 0.25), String(first));
  });

  it("follows the counts the client records: an endpoint's calls in flight send the next ones elsewhere", () => {
    const endpoints = [sampleEndpoint("s", 3000), sampleEndpoint("s", 3001), sampleEndpoint("s", 3002)];
    const table = new EndpointStatsTable({ decayMs: 10_000, now: () => 0 });
    const lb = leastActive({ random: seededRandom(11) });
    // Three calls in a row, each still running: one per endpoint.
    const started = [0, 1, 2].map(() => {
      const picked = lb.pick(endpoints, call, 0, table) ?? assert.fail();
      const stats = table.get(picked);
      return { picked, stats, at: stats.started() };
    });
    assert.equal(new Set(started.map((s) => s.picked)).size, 3);
    // The second one finishes: it is now the only idle endpoint.
    const done = started[1] ?? assert.fail();
    done.stats.settled(done.at, undefined);
    assert.equal(lb.pick(endpoints, call, 0, table), done.picked);
  });

  it("leaves weight-0 endpoints out while another has weight, even when idle", () => {
    const zero = sampleEndpoint("s", 3000, { weight: 0 });
    const busy = sampleEndpoint("s", 3001, { weight: 10 });
    const table = new EndpointStatsTable({ decayMs: 10_000, now: () => 0 });
    for (let k = 0; k < 5; k++) table.get(busy).started();
    assert.equal(leastActive().pick([zero, busy], call, 0, table), busy);
  });

  it("returns undefined for no endpoint and the only one for one; declares that it reads statistics", () => {
    const lb = leastActive();
    assert.equal(lb.needsStats, true);
    assert.equal(lb.pick([], call, 0, new EndpointStatsTable({ decayMs: 10_000 })), undefined);
    const only = sampleEndpoint("s", 3000);
    assert.equal(lb.pick([only], call, 0), only);
  });
});
