import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { Call } from "../../call/call.js";
import type { Endpoint } from "../../registry/endpoint.js";
import { sampleEndpoint } from "../../registry/sample-endpoint.js";
import { seededRandom } from "../../timing/seeded-random.js";
import { EndpointStatsTable } from "../endpoint-stats.js";
import { adaptive } from "./adaptive.js";

const call = { args: [], metadata: {}, tried: [] } as unknown as Call;

/** Gives `endpoint` one reply that took `ms`, ending at the table's current time. */
function reply(table: EndpointStatsTable, endpoint: Endpoint, ms: number): void {
  const stats = table.get(endpoint);
  stats.settled(stats.started() - ms, undefined);
}

describe("adaptive (P2C over Peak EWMA)", () => {
  it("gives an endpoint at 500 ms against others at 1 ms under 10 % of picks (property over 2..8 endpoints and weights)", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 100 }), { minLength: 2, maxLength: 8 }), fc.nat(), fc.integer(), (weights, slowIndex, seed) => {
        const endpoints = weights.map((w, i) => sampleEndpoint("s", 5000 + i, { weight: w }));
        const slow = endpoints[slowIndex % endpoints.length] as Endpoint;
        const table = new EndpointStatsTable({ decayMs: 10_000, now: () => 10_000 });
        for (const e of endpoints) reply(table, e, e === slow ? 500 : 1);
        const lb = adaptive({ random: seededRandom(seed) });
        let slowPicks = 0;
        const picks = 2000;
        for (let i = 0; i < picks; i++) if (lb.pick(endpoints, call, 0, table) === slow) slowPicks++;
        // Two distinct candidates are drawn and the slow one always loses: 0 picks, far under 10 %.
        assert.ok(slowPicks < picks / 10, `${slowPicks} of ${picks}`);
        assert.equal(slowPicks, 0);
      }),
      { numRuns: 100 },
    );
  });

  it("weighs latency by calls in flight: a 1 ms endpoint with 999 calls waiting loses to a 500 ms idle one", () => {
    const table = new EndpointStatsTable({ decayMs: 10_000, now: () => 10_000 });
    const slow = sampleEndpoint("s", 5000);
    const busy = sampleEndpoint("s", 5001);
    reply(table, slow, 500);
    reply(table, busy, 1);
    for (let k = 0; k < 999; k++) table.get(busy).started();
    assert.equal(adaptive().pick([slow, busy], call, 0, table), slow);
  });

  it("avoids an endpoint with calls in flight and no reply yet, and takes it once it answers fast", () => {
    const table = new EndpointStatsTable({ decayMs: 10_000, now: () => 10_000 });
    const known = sampleEndpoint("s", 5000);
    const fresh = sampleEndpoint("s", 5001);
    reply(table, known, 50);
    const lb = adaptive();
    assert.equal(lb.pick([known, fresh], call, 0, table), fresh, "idle and unknown: worth a try");
    const at = table.get(fresh).started();
    assert.equal(lb.pick([known, fresh], call, 0, table), known);
    table.get(fresh).settled(at - 2, undefined);
    assert.equal(lb.pick([known, fresh], call, 0, table), fresh, "2 ms against 50 ms");
  });

  it("reacts to the first slow reply, and tries the endpoint again after its peak fades (τ = 10 s)", () => {
    let t = 0;
    const table = new EndpointStatsTable({ decayMs: 10_000, now: () => t });
    const a = sampleEndpoint("s", 5000);
    const b = sampleEndpoint("s", 5001);
    reply(table, a, 1);
    reply(table, b, 1);
    t += 1000;
    reply(table, a, 500);
    const lb = adaptive({ random: seededRandom(5) });
    assert.equal(lb.pick([a, b], call, 0, table), b, "one slow reply is enough");
    // b keeps answering in 1 ms; a's peak fades as 500·e^(-t/10 s) and drops under 1 ms after ~62 s.
    let back = -1;
    for (let second = 1; second <= 80 && back < 0; second++) {
      t += 1000;
      if (lb.pick([a, b], call, 0, table) === a) back = second;
      else reply(table, b, 1);
    }
    assert.ok(back >= 55 && back <= 70, `a picked again after ${back} s`);
  });

  it("multiplies the cost by the endpoint's reported load factor", () => {
    const loads = new Map([["127.0.0.1:5000", { factor: 1 }], ["127.0.0.1:5001", { factor: 1 }]]);
    const table = new EndpointStatsTable({ decayMs: 10_000, now: () => 10_000, loadOf: (address) => loads.get(address) ?? { factor: 1 } });
    const a = sampleEndpoint("s", 5000);
    const b = sampleEndpoint("s", 5001);
    reply(table, a, 10);
    reply(table, b, 20);
    const lb = adaptive();
    assert.equal(lb.pick([a, b], call, 0, table), a);
    (loads.get("127.0.0.1:5000") as { factor: number }).factor = 3;
    assert.equal(lb.pick([a, b], call, 0, table), b);
  });

  it("draws candidates by weight on a retry's filtered list too", () => {
    const endpoints = [sampleEndpoint("s", 5000, { weight: 0 }), sampleEndpoint("s", 5001, { weight: 10 })];
    const retry = { args: [], metadata: {}, tried: ["127.0.0.1:5002"] } as unknown as Call;
    const lb = adaptive({ random: seededRandom(1) });
    for (let i = 0; i < 100; i++) assert.equal(lb.pick(endpoints, retry, 0, new EndpointStatsTable({ decayMs: 10_000 })), endpoints[1]);
  });

  it("returns undefined for no endpoint and the only one for one", () => {
    const lb = adaptive();
    assert.equal(lb.needsStats, true);
    assert.equal(lb.pick([], call, 0, new EndpointStatsTable({ decayMs: 10_000 })), undefined);
    const only = sampleEndpoint("s", 5000);
    assert.equal(lb.pick([only], call, 0), only);
  });
});
