import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Liveness } from "./liveness.js";

function setup() {
  const clock = { t: 0, now: () => clock.t };
  const liveness = new Liveness(100, clock);
  /** Runs checks every 50 ms until `until`, returning what each said. */
  const run = (until: number, buffered = 0): string[] => {
    const out: string[] = [];
    while (clock.t < until) {
      clock.t += 50;
      out.push(`${clock.t}:${liveness.check(buffered)}`);
    }
    return out;
  };
  return { clock, liveness, run };
}

describe("Liveness", () => {
  it("pings once after an idle interval and declares a silent peer dead within 3 intervals (+ one check)", () => {
    const { run } = setup();
    const verdicts = run(400);
    assert.deepEqual(verdicts.slice(0, 6), ["50:ok", "100:ping", "150:ok", "200:ok", "250:ok", "300:dead"]);
    assert.equal(verdicts.filter((v) => v.endsWith("ping")).length, 1, "never a second ping while one is unanswered");
  });

  it("never declares a peer dead while it answers", () => {
    const { clock, liveness, run } = setup();
    for (let i = 0; i < 20; i++) {
      const v = run(clock.t + 150);
      assert.ok(!v.some((x) => x.endsWith("dead")));
      liveness.read(clock.t); // the pong arrives
    }
  });

  it("takes a stalled event loop for a stall, not for a dead peer", () => {
    const { clock, liveness, run } = setup();
    run(150); // ping sent at 100
    clock.t += 1000; // our loop was blocked; replies may be waiting unread
    assert.equal(liveness.check(0), "ok");
    liveness.read(clock.t); // the data is read right after
    assert.ok(!run(clock.t + 150).some((x) => x.endsWith("dead")));
  });

  it("waits twice as long while our own writes are still queued", () => {
    const { run } = setup();
    const verdicts = run(700, 1024);
    assert.equal(verdicts.find((v) => v.endsWith("dead")), "600:dead");
  });
});
