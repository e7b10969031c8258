import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { Call } from "../../call/call.js";
import { sampleEndpoint } from "../../registry/sample-endpoint.js";
import { seededRandom } from "../../timing/seeded-random.js";
import { EndpointStatsTable } from "../endpoint-stats.js";
import { shortestResponse } from "./shortest-response.js";

const call = { args: [], metadata: {}, tried: [] } as unknown as Call;

describe("shortestResponse", () => {
  it("picks the lowest average latency × (calls in flight + 1) (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ latencyMs: fc.integer({ min: 1, max: 1000 }), active: fc.integer({ min: 0, max: 20 }) }), { minLength: 2, maxLength: 8 }),
        fc.integer(),
        (list, seed) => {
          const wait = list.map((e) => e.latencyMs * (e.active + 1));
          const best = Math.min(...wait);
          fc.pre(wait.filter((w) => w === best).length === 1);
          const table = new EndpointStatsTable({ decayMs: 10_000, now: () => 10_000 });
          const endpoints = list.map((e, i) => sampleEndpoint("s", 4000 + i, { weight: 1 + ((i * 37) % 100) }));
          list.forEach((e, i) => {
            const stats = table.get(endpoints[i] ?? assert.fail());
            // Every reply arrives now, after `latencyMs`: no estimate has faded more than another.
            stats.settled(stats.started() - e.latencyMs, undefined);
            for (let k = 0; k < e.active; k++) stats.started();
          });
          const lb = shortestResponse({ random: seededRandom(seed) });
          assert.equal(lb.pick(endpoints, call, 0, table), endpoints[wait.indexOf(best)]);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("sends a new endpoint one call at a time until its first reply", () => {
    let t = 0;
    const table = new EndpointStatsTable({ decayMs: 10_000, now: () => t });
    const known = sampleEndpoint("s", 4000);
    const fresh = sampleEndpoint("s", 4001);
    const stats = table.get(known);
    const at = stats.started();
    t += 200;
    stats.settled(at, undefined);
    const lb = shortestResponse();
    assert.equal(lb.pick([known, fresh], call, 0, table), fresh, "idle and unknown: tried first");
    const first = table.get(fresh).started();
    assert.equal(lb.pick([known, fresh], call, 0, table), known, "in flight and unknown: waits behind a 200 ms one");
    t += 5;
    table.get(fresh).settled(first, undefined);
    assert.equal(lb.pick([known, fresh], call, 0, table), fresh, "5 ms against 200 ms");
  });

  it("comes back to a slow endpoint once its estimate has faded below the others' (τ = 10 s)", () => {
    let t = 0;
    const table = new EndpointStatsTable({ decayMs: 10_000, now: () => t });
    const slow = sampleEndpoint("s", 4000);
    const fast = sampleEndpoint("s", 4001);
    for (const [e, ms] of [[slow, 500], [fast, 5]] as const) {
      const s = table.get(e);
      const at = s.started();
      t += ms;
      s.settled(at, undefined);
    }
    const lb = shortestResponse();
    // The fast one keeps answering in 5 ms; the slow one is left alone: 500·e^(-t/10 s) < 5 after 46 s.
    const pickedSlowAt: number[] = [];
    for (let second = 0; second < 60; second++) {
      t += 1000;
      const picked = lb.pick([slow, fast], call, 0, table);
      if (picked === slow) pickedSlowAt.push(second);
      else {
        const s = table.get(fast);
        const at = s.started() - 5;
        s.settled(at, undefined);
      }
    }
    assert.ok(pickedSlowAt.length > 0 && (pickedSlowAt[0] ?? 0) >= 40 && (pickedSlowAt[0] ?? 0) <= 50, `slow picked again at ${pickedSlowAt.join(",")} s`);
  });

  it("returns undefined for no endpoint and the only one for one", () => {
    const lb = shortestResponse();
    assert.equal(lb.needsStats, true);
    assert.equal(lb.pick([], call, 0, new EndpointStatsTable({ decayMs: 10_000 })), undefined);
    const only = sampleEndpoint("s", 4000);
    assert.equal(lb.pick([only], call, 0), only);
  });
});
