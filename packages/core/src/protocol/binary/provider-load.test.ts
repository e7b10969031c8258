import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { formatLoad, loadFactor, loadReportTtlMs, parseLoad, ProviderLoad } from "./provider-load.js";

describe("provider load reports", () => {
  it("formats fractions with 3 decimals, clamped to [0, 1], and parses them back", () => {
    assert.equal(formatLoad({ busy: 0.82449, memory: 0.4 }), "0.824;0.4");
    assert.equal(formatLoad({ busy: 7, memory: -1 }), "1;0");
    assert.equal(formatLoad({ busy: Number.NaN, memory: Infinity }), "0;0");
    assert.deepEqual(parseLoad("0.824;0.4"), { busy: 0.824, memory: 0.4 });
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), (busy, memory) => {
        const parsed = parseLoad(formatLoad({ busy, memory }));
        assert.ok(parsed !== undefined);
        assert.ok(Math.abs(parsed.busy - busy) <= 0.0005 && Math.abs(parsed.memory - memory) <= 0.0005);
      }),
    );
  });

  it("ignores anything that is not two fractions (untrusted input), never throwing", () => {
    for (const bad of [undefined, 3, "", "0.5", "0.5;", "1.5;0", "0.5;0.5;0.5", "-0.1;0", "0.1234;0", "x;y", "0.5 ;0.5", "1.01;0", "0".repeat(40)]) {
      assert.equal(parseLoad(bad), undefined, JSON.stringify(bad));
    }
    fc.assert(fc.property(fc.string({ maxLength: 64 }), (text) => {
      const parsed = parseLoad(text);
      if (parsed !== undefined) assert.ok(parsed.busy >= 0 && parsed.busy <= 1 && parsed.memory >= 0 && parsed.memory <= 1);
    }));
  });

  it("turns utilisation into a cost factor 1 / (1 - busy), capped at 10, doubled when the heap is nearly full", () => {
    assert.equal(loadFactor({ busy: 0, memory: 0 }), 1);
    assert.equal(loadFactor({ busy: 0.5, memory: 0 }), 2);
    assert.ok(Math.abs(loadFactor({ busy: 0.8, memory: 0 }) - 5) < 1e-9);
    assert.ok(Math.abs(loadFactor({ busy: 1, memory: 0 }) - 10) < 1e-9);
    assert.equal(loadFactor({ busy: 0.5, memory: 0.9 }), 4);
  });

  it("keeps the last report's factor for 5 s, then counts the provider as unloaded", () => {
    let now = 1000;
    const load = new ProviderLoad(() => now);
    assert.equal(load.factor, 1);
    load.report({ busy: 0.75, memory: 0.1 });
    assert.equal(load.factor, 4);
    now += loadReportTtlMs;
    assert.equal(load.factor, 4);
    now += 1;
    assert.equal(load.factor, 1);
    assert.deepEqual(load.last, { sample: { busy: 0.75, memory: 0.1 }, at: 1000 });
  });
});
