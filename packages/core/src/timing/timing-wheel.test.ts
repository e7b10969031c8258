import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type TimerEntry, TimingWheel } from "./timing-wheel.js";

class Entry implements TimerEntry {
  wheelSlot = -1;
  wheelNext: TimerEntry | undefined = undefined;
  wheelPrev: TimerEntry | undefined = undefined;
  constructor(
    readonly deadline: number,
    readonly expire: () => void,
  ) {}
}

function fakeWheel(start = 1_000_000) {
  const clock = { t: start, now: () => clock.t };
  return { clock, wheel: new TimingWheel({ clock, autoTick: false, tickMs: 4, slots: 16 }) };
}

describe("TimingWheel", () => {
  it("fires an entry once its deadline has passed, never before", () => {
    const { clock, wheel } = fakeWheel();
    const fired: number[] = [];
    wheel.add(new Entry(clock.t + 10, () => fired.push(10)));
    wheel.add(new Entry(clock.t + 3, () => fired.push(3)));
    clock.t += 2;
    wheel.advance(clock.t);
    assert.deepEqual(fired, []);
    clock.t += 2;
    wheel.advance(clock.t);
    assert.deepEqual(fired, [3]);
    clock.t += 6;
    wheel.advance(clock.t);
    assert.deepEqual(fired, [3, 10]);
    assert.equal(wheel.size, 0);
  });

  it("handles deadlines beyond one rotation", () => {
    const { clock, wheel } = fakeWheel();
    let fired = 0;
    wheel.add(new Entry(clock.t + 1000, () => fired++)); // 16 slots x 4 ms = 64 ms per rotation
    for (let i = 0; i < 249; i++) {
      clock.t += 4;
      wheel.advance(clock.t);
    }
    assert.equal(fired, 0);
    clock.t += 8;
    wheel.advance(clock.t);
    assert.equal(fired, 1);
  });

  it("never fires a canceled entry and drops it when its slot comes round", () => {
    const { clock, wheel } = fakeWheel();
    let fired = 0;
    const entry = new Entry(clock.t + 5, () => fired++);
    wheel.add(entry);
    wheel.remove(entry);
    assert.equal(wheel.size, 0, "removal is immediate");
    clock.t += 100;
    wheel.advance(clock.t);
    assert.equal(fired, 0);
    assert.equal(wheel.size, 0);
  });

  it("fires everything overdue after a long pause (a clock jump of many rotations)", () => {
    const { clock, wheel } = fakeWheel();
    let fired = 0;
    for (let i = 0; i < 100; i++) wheel.add(new Entry(clock.t + i * 7, () => fired++));
    clock.t += 10_000;
    wheel.advance(clock.t);
    assert.equal(fired, 100);
  });

  it("fires a deadline already in the past on the next advance", () => {
    const { clock, wheel } = fakeWheel();
    let fired = 0;
    wheel.add(new Entry(clock.t - 50, () => fired++));
    wheel.advance(clock.t);
    assert.equal(fired, 1);
  });
});

describe("TimingWheel re-entrancy", () => {
  it("fires on the next tick an entry that an expiring entry adds for a past deadline", () => {
    const clock = { t: 1_000_000, now: () => clock.t };
    const wheel = new TimingWheel({ clock, autoTick: false, tickMs: 4, slots: 16 });
    const fired: string[] = [];
    wheel.add(new Entry(clock.t + 4, () => {
      fired.push("first");
      wheel.add(new Entry(clock.t - 1, () => fired.push("second")));
    }));
    clock.t += 40; // a multi-slot sweep
    wheel.advance(clock.t);
    clock.t += 4;
    wheel.advance(clock.t);
    assert.deepEqual(fired, ["first", "second"]);
  });

  it("rejects a tick or slot count that is not a positive integer", () => {
    assert.throws(() => new TimingWheel({ tickMs: 2.5 }), /tickMs/);
    assert.throws(() => new TimingWheel({ slots: 0 }), /slots/);
  });
});
