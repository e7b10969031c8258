import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FarcallError } from "../errors/farcall-error.js";
import { checkLoadReportOptions, LoadReporter } from "./load-reporter.js";

describe("LoadReporter", () => {
  it("holds the latest sample as farcall-load metadata, keeping the previous one when the sampler throws", () => {
    let next: { busy: number; memory: number } | Error = { busy: 0.5, memory: 0.25 };
    const reporter = new LoadReporter({
      sample: () => {
        if (next instanceof Error) throw next;
        return next;
      },
    });
    assert.equal(reporter.metadata, undefined);
    reporter.tick();
    assert.deepEqual(reporter.metadata, { "farcall-load": "0.5;0.25" });
    next = new Error("sampler broke");
    reporter.tick();
    assert.deepEqual(reporter.metadata, { "farcall-load": "0.5;0.25" });
  });

  it("samples the event loop and the heap by default, with fractions in [0, 1]", () => {
    const reporter = new LoadReporter();
    reporter.start();
    try {
      const until = Date.now() + 20;
      while (Date.now() < until) {
        // keep the thread busy so the utilisation is above 0
      }
      reporter.tick();
      const [busy, memory] = String(reporter.metadata?.["farcall-load"]).split(";").map(Number);
      assert.ok(busy !== undefined && busy > 0 && busy <= 1, `busy ${busy}`);
      assert.ok(memory !== undefined && memory > 0 && memory < 1, `memory ${memory}`);
    } finally {
      reporter.stop();
    }
  });

  it("rejects malformed options with bad_option naming the field", () => {
    for (const [value, option] of [
      [null, "loadReport"],
      [{ intervalMs: 10 }, "loadReport.intervalMs"],
      [{ intervalMs: 1.5 }, "loadReport.intervalMs"],
      [{ sample: 3 }, "loadReport.sample"],
      [{ every: 1 }, "loadReport.every"],
    ] as const) {
      assert.throws(() => checkLoadReportOptions(value), (e: unknown) => e instanceof FarcallError && e.reason === "bad_option" && e.details["option"] === option);
    }
    assert.deepEqual(checkLoadReportOptions({ intervalMs: 500 }), { intervalMs: 500 });
  });
});
