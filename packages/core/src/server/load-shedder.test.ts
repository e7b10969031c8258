import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { assertBadOption } from "../../test/assertions.js";
import { seededRandom } from "../timing/seeded-random.js";
import { checkLoadSheddingOptions, eventLoopDelayMeter, LoadShedder, minAdmissionProbability, resolveLoadShedding } from "./load-shedder.js";

/** A shedder whose next measurement is whatever the test puts in `delays` (target 50 ms). */
function shedderWith(random: () => number = () => assert.fail("random drawn")) {
  const delays: number[] = [];
  const shedder = new LoadShedder({
    targetDelayMs: 50,
    intervalMs: 100,
    measureDelayMs: () => delays.shift() ?? assert.fail("no delay queued"),
    random,
  });
  const tick = (delayMs: number): number => {
    delays.push(delayMs);
    shedder.tick();
    return shedder.admissionProbability;
  };
  return { shedder, tick };
}

function close(actual: number, expected: number): void {
  assert.ok(Math.abs(actual - expected) < 1e-9, `${actual} is not ${expected}`);
}

describe("LoadShedder", () => {
  it("admits everything at first, without drawing a random number", () => {
    const { shedder } = shedderWith();
    for (let i = 0; i < 100; i++) assert.equal(shedder.admit(), true);
    assert.equal(shedder.admissionProbability, 1);
    assert.equal(shedder.shedCount, 0);
  });

  it("cuts the probability by a quarter per interval over target, down to 0.05, and adds 0.1 per interval at or under it", () => {
    const { tick } = shedderWith();
    close(tick(51), 0.75);
    close(tick(200), 0.5625);
    close(tick(50), 0.6625); // at the target is not over it
    close(tick(0), 0.7625);
    for (let i = 0; i < 30; i++) tick(1000);
    assert.equal(tick(1000), minAdmissionProbability);
    close(tick(10), 0.15);
    for (let i = 0; i < 20; i++) tick(10);
    assert.equal(tick(10), 1, "never above 1");
  });

  it("admits with probability p by the injected random and counts the refused", () => {
    const draws = [0.1, 0.49, 0.5, 0.9];
    const { shedder, tick } = shedderWith(() => draws.shift() ?? assert.fail("extra draw"));
    tick(100);
    tick(100);
    tick(0); // 1 × 0.75 × 0.75 + 0.1 = 0.6625
    assert.deepEqual([shedder.admit(), shedder.admit(), shedder.admit(), shedder.admit()], [true, true, true, false]);
    assert.equal(shedder.shedCount, 1);
  });

  it("keeps p in [0.05, 1] and follows AIMD for any sequence of delays", () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0, max: 1e6, noNaN: true }), { maxLength: 200 }), (delays) => {
        const { tick } = shedderWith();
        let expected = 1;
        for (const delay of delays) {
          expected = delay > 50 ? Math.max(0.05, expected * 0.75) : Math.min(1, expected + 0.1);
          const p = tick(delay);
          assert.ok(p >= 0.05 && p <= 1, `p ${p}`);
          close(p, expected);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("admits about p of the requests under a steady overload", () => {
    const { shedder, tick } = shedderWith(seededRandom(7));
    tick(100); // p = 0.75
    let admitted = 0;
    for (let i = 0; i < 10_000; i++) if (shedder.admit()) admitted++;
    assert.ok(Math.abs(admitted / 10_000 - 0.75) < 0.02, `${admitted} of 10000 admitted at p 0.75`);
    assert.equal(shedder.shedCount, 10_000 - admitted);
  });

  it("start ticks every interval; stop after a repeated start leaves nothing ticking", async () => {
    let ticks = 0;
    const shedder = new LoadShedder({ targetDelayMs: 50, intervalMs: 5, measureDelayMs: () => (ticks++, 0) });
    const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
    shedder.start();
    shedder.start();
    for (let i = 0; i < 100 && ticks === 0; i++) await sleep(5);
    assert.ok(ticks > 0, "the timer ticked");
    shedder.stop();
    shedder.stop();
    const stoppedAt = ticks;
    await sleep(40);
    assert.equal(ticks, stoppedAt, "no tick after stop: start made one timer only");
  });
});

describe("resolveLoadShedding", () => {
  it("defaults to a 50 ms target, a 100 ms interval and no server-wide cap", () => {
    assert.deepEqual(resolveLoadShedding({}), { maxConcurrentCalls: Infinity, targetDelayMs: 50, intervalMs: 100, random: Math.random });
    assert.ok(Object.isFrozen(resolveLoadShedding({ maxConcurrentCalls: 3 })));
  });

  it("refuses out-of-range options with bad_option naming them", () => {
    assertBadOption(() => resolveLoadShedding(null as never), "loadShedding");
    assertBadOption(() => resolveLoadShedding({ maxConcurrentCalls: 0 }), "loadShedding.maxConcurrentCalls");
    assertBadOption(() => resolveLoadShedding({ maxConcurrentCalls: 1.5 }), "loadShedding.maxConcurrentCalls");
    assertBadOption(() => resolveLoadShedding({ targetDelayMs: 0 }), "loadShedding.targetDelayMs");
    assertBadOption(() => resolveLoadShedding({ targetDelayMs: Number.NaN }), "loadShedding.targetDelayMs");
    assertBadOption(() => resolveLoadShedding({ intervalMs: 0 }), "loadShedding.intervalMs");
    assertBadOption(() => resolveLoadShedding({ intervalMs: Infinity }), "loadShedding.intervalMs");
    assertBadOption(() => resolveLoadShedding({ random: 0.5 as never }), "loadShedding.random");
    assertBadOption(() => checkLoadSheddingOptions({ intervalMs: -1 }, "provider.loadShedding"), "provider.loadShedding.intervalMs");
    checkLoadSheddingOptions({ maxConcurrentCalls: 10, targetDelayMs: 20, intervalMs: 50 });
  });
});

describe("eventLoopDelayMeter", () => {
  it("reports a blocked loop, then resets on read", async () => {
    const meter = eventLoopDelayMeter(10);
    try {
      // monitorEventLoopDelay records nothing until its second sample (10 ms apart): let it start.
      await new Promise((resolve) => setTimeout(resolve, 25));
      const end = Date.now() + 120;
      while (Date.now() < end);
      await new Promise((resolve) => setTimeout(resolve, 25));
      const blocked = meter.measureDelayMs();
      assert.ok(blocked >= 60, `a 120 ms block measured as ${blocked} ms`);
      assert.equal(meter.measureDelayMs(), 0, "no sample since the previous read");
    } finally {
      meter.close();
      meter.close();
    }
  });
});
