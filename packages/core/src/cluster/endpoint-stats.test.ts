import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FarcallError } from "../errors/farcall-error.js";
import { sampleEndpoint } from "../registry/sample-endpoint.js";
import { EndpointStats, EndpointStatsTable } from "./endpoint-stats.js";

/** A fake monotonic clock in ms. */
function fakeClock(start = 1000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

/** One attempt of `ms` on `stats`, ending with `error` (a reply when undefined). */
function attempt(stats: EndpointStats, clock: { advance: (ms: number) => void }, ms: number, error?: FarcallError): void {
  const startedAt = stats.started();
  clock.advance(ms);
  stats.settled(startedAt, error);
}

describe("EndpointStats", () => {
  it("counts an attempt in flight from started() to settled()", () => {
    const clock = fakeClock();
    const stats = new EndpointStats("h:1", clock.now, 10_000);
    const a = stats.started();
    const b = stats.started();
    assert.equal(stats.inFlight, 2);
    stats.settled(a, undefined);
    stats.settled(b, new FarcallError("unavailable", "gone", { sent: false }));
    assert.equal(stats.inFlight, 0);
  });

  it("counts provider trouble as failures, answers (application errors too) as successes, cancellations as neither", () => {
    const clock = fakeClock();
    const stats = new EndpointStats("h:1", clock.now, 10_000);
    for (const code of ["unavailable", "deadline_exceeded", "resource_exhausted", "internal", "unknown"] as const) {
      attempt(stats, clock, 1, new FarcallError(code, code));
    }
    attempt(stats, clock, 1);
    attempt(stats, clock, 1, new FarcallError("application", "thrown by the implementation"));
    attempt(stats, clock, 1, new FarcallError("invalid_argument", "bad request"));
    attempt(stats, clock, 1, new FarcallError("canceled", "by the caller"));
    assert.equal(stats.failures, 5);
    assert.equal(stats.successes, 3);
  });

  it("Peak EWMA: jumps to a slower sample at once, blends a faster one by 1 - e^(-Δt/τ), fades by e^(-t/τ)", () => {
    const clock = fakeClock();
    const stats = new EndpointStats("h:1", clock.now, 10_000);
    assert.equal(stats.peakMs(), 0, "no sample yet");
    attempt(stats, clock, 2);
    assert.equal(stats.peakMs(), 2, "the first sample is the estimate");
    attempt(stats, clock, 500);
    assert.equal(stats.peakMs(), 500, "a slow sample replaces the estimate at once");
    // A fast sample 10 s (one τ) after the slow one: 500·e^-1 + 1·(1 - e^-1).
    clock.advance(10_000 - 1);
    attempt(stats, clock, 1);
    const expected = 500 * Math.exp(-1) + 1 * (1 - Math.exp(-1));
    assert.ok(Math.abs(stats.peakMs() - expected) < 1e-9, `${stats.peakMs()} vs ${expected}`);
    // No sample for 2 τ: the estimate fades by e^-2.
    const before = stats.peakMs();
    clock.advance(20_000);
    assert.ok(Math.abs(stats.peakMs() - before * Math.exp(-2)) < 1e-9);
  });

  it("average: blends every sample, slower or faster, by 1 - e^(-Δt/τ)", () => {
    const clock = fakeClock();
    const stats = new EndpointStats("h:1", clock.now, 10_000);
    attempt(stats, clock, 10);
    assert.equal(stats.averageMs(), 10);
    clock.advance(10_000 - 100);
    attempt(stats, clock, 100);
    const expected = 10 * Math.exp(-1) + 100 * (1 - Math.exp(-1));
    assert.ok(Math.abs(stats.averageMs() - expected) < 1e-9, `${stats.averageMs()} vs ${expected}`);
    assert.equal(stats.peakMs(), 100, "while the peak took the slower sample whole");
  });

  it("learns no latency from attempts that never reached the provider, or were canceled", () => {
    const clock = fakeClock();
    const stats = new EndpointStats("h:1", clock.now, 10_000);
    attempt(stats, clock, 3000, new FarcallError("unavailable", "connect failed", { sent: false }));
    attempt(stats, clock, 3000, new FarcallError("canceled", "by the caller"));
    assert.equal(stats.peakMs(), 0);
    attempt(stats, clock, 3000, new FarcallError("deadline_exceeded", "too slow", { sent: true }));
    assert.equal(stats.peakMs(), 3000, "a deadline hit after sending is a (slow) sample");
  });

  it("costs: latency × (in flight + 1) × load; in flight without any sample costs more than any measured endpoint", () => {
    const clock = fakeClock();
    const load = { factor: 1 };
    const measured = new EndpointStats("h:1", clock.now, undefined, load);
    attempt(measured, clock, 60_000);
    measured.started();
    measured.started();
    assert.equal(measured.peakCost(clock.now()), 60_000 * 3);
    assert.equal(measured.expectedWaitMs(clock.now()), 60_000 * 3);
    load.factor = 2;
    assert.equal(measured.peakCost(clock.now()), 60_000 * 3 * 2);
    const fresh = new EndpointStats("h:2", clock.now, 10_000);
    assert.equal(fresh.peakCost(clock.now()), 0, "idle and unknown: worth a try");
    fresh.started();
    assert.ok(fresh.peakCost(clock.now()) > measured.peakCost(clock.now()));
    assert.ok(fresh.expectedWaitMs(clock.now()) > measured.expectedWaitMs(clock.now()));
  });
});

describe("EndpointStatsTable", () => {
  it("keeps one history per address, across endpoint records of new snapshots", () => {
    const clock = fakeClock();
    const table = new EndpointStatsTable({ decayMs: 10_000, now: clock.now });
    const first = sampleEndpoint("s", 2000, { pid: 1 });
    const restarted = sampleEndpoint("s", 2000, { pid: 2 });
    const other = sampleEndpoint("s", 2001);
    assert.equal(table.get(first), table.get(restarted));
    assert.notEqual(table.get(first), table.get(other));
    assert.equal(table.get(first).address, "127.0.0.1:2000");
  });

  it("aligns stats with a snapshot, cached by identity", () => {
    const table = new EndpointStatsTable({ decayMs: 10_000, now: fakeClock().now });
    const snapshot = Object.freeze([sampleEndpoint("s", 2000), sampleEndpoint("s", 2001)]);
    const aligned = table.forSnapshot(snapshot);
    assert.equal(table.forSnapshot(snapshot), aligned, "same snapshot, same array");
    assert.deepEqual(aligned, [table.get(snapshot[0] ?? assert.fail()), table.get(snapshot[1] ?? assert.fail())]);
    assert.notEqual(table.forSnapshot([...snapshot]), aligned, "another snapshot, another array");
  });

  it("forgets addresses absent from every snapshot for 10 minutes, unless calls are in flight", () => {
    const clock = fakeClock();
    const table = new EndpointStatsTable({ decayMs: 10_000, now: clock.now });
    const a = sampleEndpoint("s", 2000);
    const b = sampleEndpoint("s", 2001);
    const c = sampleEndpoint("s", 2002);
    table.forSnapshot([a, b, c]);
    table.get(c).started();
    clock.advance(60_000);
    table.forSnapshot([a]);
    clock.advance(9 * 60_000);
    table.forSnapshot([a, sampleEndpoint("s", 2003)]);
    assert.equal(table.size, 4, "b and c left 9 minutes ago: kept");
    clock.advance(2 * 60_000);
    table.forSnapshot([a]);
    assert.equal(table.size, 3, "b is forgotten; c has a call in flight; 2003 left just now");
    const history = table.get(a);
    assert.equal(table.get(a), history);
  });
});
