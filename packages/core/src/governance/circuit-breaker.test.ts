import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { FarcallError } from "../errors/farcall-error.js";
import { type BreakerStateListener, CircuitBreaker, type CircuitBreakerOptions, checkCircuitBreakerOptions } from "./circuit-breaker.js";
import type { BreakerState } from "./limiter.js";

type Transition = readonly [from: BreakerState, to: BreakerState, now: number];

/** A listener that records every transition. */
function recorder(): { readonly transitions: Transition[]; readonly listener: BreakerStateListener } {
  const transitions: Transition[] = [];
  return { transitions, listener: (from, to, now) => void transitions.push([from, to, now]) };
}

function assertBadOption(fn: () => unknown, option: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof FarcallError, String(error));
    assert.equal(error.code, "invalid_argument");
    assert.equal(error.reason, "bad_option");
    assert.equal(error.details.option, option);
    return true;
  });
}

/** `n` admitted calls at `now`, each ending with `outcome` after `latencyMs`. */
function calls(breaker: CircuitBreaker, now: number, n: number, outcome: "success" | "error", latencyMs = 5): void {
  for (let i = 0; i < n; i++) {
    assert.equal(breaker.tryAcquire(now), true, `call ${i} at ${now} admitted`);
    if (outcome === "success") breaker.onSuccess(now, latencyMs);
    else breaker.onError(now, latencyMs);
  }
}

describe("checkCircuitBreakerOptions", () => {
  it("fills every default and freezes the copy", () => {
    const checked = checkCircuitBreakerOptions({}, "circuitBreaker");
    assert.deepEqual(checked, { strategy: "errorRatio", threshold: 0.5, slowCallMs: 1000, minCalls: 10, windowMs: 10_000, openMs: 10_000, halfOpenCalls: 1 });
    assert.ok(Object.isFrozen(checked));
    assert.equal(checkCircuitBreakerOptions({ strategy: "errorCount" }, "b").threshold, 5);
    assert.equal(checkCircuitBreakerOptions({ strategy: "slowCallRatio" }, "b").threshold, 0.5);
    assert.deepEqual(checkCircuitBreakerOptions(JSON.parse('{"strategy":"errorCount","threshold":3,"halfOpenCalls":1000,"windowMs":1}'), "b"), {
      strategy: "errorCount",
      threshold: 3,
      slowCallMs: 1000,
      minCalls: 10,
      windowMs: 1,
      openMs: 10_000,
      halfOpenCalls: 1000,
    });
  });

  it("refuses non-objects, unknown fields and accessors, naming the option", () => {
    for (const value of [null, 3, "x", [], undefined]) assertBadOption(() => checkCircuitBreakerOptions(value, "circuitBreaker"), "circuitBreaker");
    assertBadOption(() => checkCircuitBreakerOptions({ treshold: 0.5 }, "circuitBreaker"), "circuitBreaker.treshold");
    assertBadOption(() => checkCircuitBreakerOptions(Object.create({ minCalls: 1 }), "circuitBreaker"), "circuitBreaker");
    const accessor = Object.defineProperty({}, "openMs", { get: () => 5, enumerable: true });
    assertBadOption(() => checkCircuitBreakerOptions(accessor, "circuitBreaker"), "circuitBreaker.openMs");
  });

  it("refuses out-of-range and non-numeric values, field by field", () => {
    const bad: Record<string, readonly unknown[]> = {
      strategy: ["ratio", 1, null],
      slowCallMs: [0, -1, 3_600_001, Number.NaN, "1000"],
      minCalls: [0, 1.5, 1e9 + 1, "10"],
      windowMs: [0, 3_600_001, Number.POSITIVE_INFINITY],
      openMs: [0, -5, 3_600_001],
      halfOpenCalls: [0, 2.5, 1001],
    };
    for (const [field, values] of Object.entries(bad)) {
      for (const v of values) assertBadOption(() => checkCircuitBreakerOptions({ [field]: v }, "cb"), `cb.${field}`);
    }
    for (const threshold of [0, -0.1, 1.01, Number.NaN, "0.5", null]) {
      assertBadOption(() => checkCircuitBreakerOptions({ threshold }, "cb"), "cb.threshold");
      assertBadOption(() => checkCircuitBreakerOptions({ strategy: "slowCallRatio", threshold }, "cb"), "cb.threshold");
    }
    for (const threshold of [0, 0.5, 2.5, 1e9 + 1]) {
      assertBadOption(() => checkCircuitBreakerOptions({ strategy: "errorCount", threshold }, "cb"), "cb.threshold");
    }
    assert.equal(checkCircuitBreakerOptions({ threshold: 1 }, "cb").threshold, 1);
  });

  it("the constructor validates under the name circuitBreaker", () => {
    assertBadOption(() => new CircuitBreaker({ halfOpenCalls: 0 }), "circuitBreaker.halfOpenCalls");
  });
});

describe("CircuitBreaker strategies", () => {
  it("errorRatio (the default): opens at the first result with ≥ minCalls calls and errors/calls ≥ 0.5", () => {
    const { transitions, listener } = recorder();
    const breaker = new CircuitBreaker({}, listener);
    calls(breaker, 1000, 9, "error");
    assert.equal(breaker.state(1000), "closed", "9 errors but fewer than minCalls (10)");
    calls(breaker, 1000, 1, "success");
    assert.equal(breaker.state(1000), "open", "10 calls, 9 errors");
    assert.deepEqual(transitions, [["closed", "open", 1000]]);
    const quiet = new CircuitBreaker({ threshold: 0.5, minCalls: 4 });
    calls(quiet, 0, 3, "success");
    calls(quiet, 0, 2, "error");
    assert.equal(quiet.state(0), "closed", "2 / 5 < 0.5");
    calls(quiet, 0, 1, "error");
    assert.equal(quiet.state(0), "open", "3 / 6 = 0.5");
  });

  it("errorCount: opens when errors ≥ threshold once minCalls is reached, whatever the successes", () => {
    const breaker = new CircuitBreaker({ strategy: "errorCount", threshold: 3, minCalls: 5 });
    calls(breaker, 0, 3, "error");
    assert.equal(breaker.state(0), "closed", "3 errors, 3 calls < minCalls");
    calls(breaker, 0, 1, "success");
    assert.equal(breaker.state(0), "closed");
    calls(breaker, 0, 1, "success");
    assert.equal(breaker.state(0), "open", "5 calls, 3 errors: a success can be the result that trips it");
    const many = new CircuitBreaker({ strategy: "errorCount", threshold: 3, minCalls: 1 });
    calls(many, 0, 100, "success");
    calls(many, 0, 2, "error");
    assert.equal(many.state(0), "closed");
    calls(many, 0, 1, "error");
    assert.equal(many.state(0), "open", "3 errors among 103 calls");
  });

  it("slowCallRatio: counts calls slower than slowCallMs (successes too), not fast errors", () => {
    const breaker = new CircuitBreaker({ strategy: "slowCallRatio", threshold: 0.5, slowCallMs: 100, minCalls: 4 });
    calls(breaker, 0, 4, "error", 100);
    assert.equal(breaker.state(0), "closed", "errors at exactly slowCallMs are neither slow nor counted by this strategy");
    calls(breaker, 0, 3, "success", 101);
    assert.equal(breaker.state(0), "closed", "3 slow / 7");
    assert.equal(breaker.snapshot(0).slowCalls, 3);
    calls(breaker, 0, 1, "success", 5000);
    assert.equal(breaker.state(0), "open", "4 slow / 8");
    const slowErrors = new CircuitBreaker({ strategy: "slowCallRatio", threshold: 1, slowCallMs: 10, minCalls: 2 });
    calls(slowErrors, 0, 2, "error", 11);
    assert.equal(slowErrors.state(0), "open", "a slow error is a slow call");
  });

  it("judges only the window: results older than windowMs leave it a sub-bucket (windowMs / 10) at a time", () => {
    const breaker = new CircuitBreaker({ threshold: 0.5, minCalls: 7, windowMs: 1000 });
    calls(breaker, 0, 3, "error");
    calls(breaker, 950, 3, "success");
    assert.deepEqual(breaker.snapshot(999), { state: "closed", calls: 6, errors: 3, slowCalls: 0, timesOpened: 0 });
    assert.deepEqual(breaker.snapshot(1000), { state: "closed", calls: 3, errors: 0, slowCalls: 0, timesOpened: 0 }, "sub-bucket [0, 100) left");
    calls(breaker, 1000, 1, "error");
    assert.equal(breaker.state(1000), "closed", "the three old errors are gone (with them: 4 errors / 7 calls)");
    calls(breaker, 1000, 2, "error");
    assert.equal(breaker.state(1000), "closed", "6 calls < minCalls");
    calls(breaker, 1000, 1, "error");
    assert.equal(breaker.state(1000), "open", "4 errors / 7 calls");
    assert.deepEqual(breaker.snapshot(3000), { state: "open", calls: 0, errors: 0, slowCalls: 0, openedAt: 1000, timesOpened: 1 });
  });
});

describe("CircuitBreaker transitions", () => {
  const options: CircuitBreakerOptions = { strategy: "errorCount", threshold: 1, minCalls: 1, openMs: 5000, halfOpenCalls: 2 };

  /** A breaker opened at `openedAt` by one error. */
  function opened(at = 1000): { breaker: CircuitBreaker; transitions: Transition[] } {
    const { transitions, listener } = recorder();
    const breaker = new CircuitBreaker(options, listener);
    calls(breaker, at, 1, "error");
    return { breaker, transitions };
  }

  it("open: refuses until openMs has passed, then turns half-open on tryAcquire and admits it", () => {
    const { breaker, transitions } = opened();
    assert.equal(breaker.tryAcquire(1000), false);
    assert.equal(breaker.tryAcquire(5999), false);
    assert.equal(breaker.state(5999), "open");
    assert.equal(breaker.state(6000), "halfOpen", "a view: reports halfOpen once openMs has passed");
    assert.deepEqual(transitions, [["closed", "open", 1000]], "…without firing");
    assert.equal(breaker.tryAcquire(6000), true);
    assert.deepEqual(transitions, [
      ["closed", "open", 1000],
      ["open", "halfOpen", 6000],
    ]);
  });

  it("half-open: admits exactly halfOpenCalls probes, closes with an empty window when all succeed", () => {
    const { breaker, transitions } = opened();
    assert.equal(breaker.tryAcquire(6000), true);
    assert.equal(breaker.tryAcquire(6000), true);
    assert.equal(breaker.tryAcquire(6000), false);
    assert.equal(breaker.tryAcquire(60_000), false, "no more probes until they report, however long");
    breaker.onSuccess(60_000, 5);
    assert.equal(breaker.state(60_000), "halfOpen");
    assert.equal(breaker.tryAcquire(60_000), false, "a reported probe does not free a permit");
    breaker.onSuccess(60_001, 5);
    assert.equal(breaker.state(60_001), "closed");
    assert.deepEqual(breaker.snapshot(60_001), { state: "closed", calls: 0, errors: 0, slowCalls: 0, timesOpened: 1 });
    assert.deepEqual(transitions.at(-1), ["halfOpen", "closed", 60_001]);
    assert.equal(breaker.tryAcquire(60_001), true);
  });

  it("half-open: a probe error opens it again and openMs counts anew", () => {
    const { breaker, transitions } = opened();
    assert.equal(breaker.tryAcquire(6000), true);
    assert.equal(breaker.tryAcquire(6000), true);
    breaker.onSuccess(6100, 5);
    breaker.onError(6200, 5);
    assert.equal(breaker.state(6200), "open");
    assert.deepEqual(breaker.snapshot(6200), { state: "open", calls: 1, errors: 1, slowCalls: 0, openedAt: 6200, timesOpened: 2 });
    assert.equal(breaker.tryAcquire(11_199), false);
    assert.equal(breaker.tryAcquire(11_200), true);
    assert.deepEqual(
      transitions.map(([from, to]) => `${from}>${to}`),
      ["closed>open", "open>halfOpen", "halfOpen>open", "open>halfOpen"],
    );
  });

  it("half-open: a slow probe reopens a slowCallRatio breaker; for errorRatio it is a success", () => {
    const slowBreaker = new CircuitBreaker({ strategy: "slowCallRatio", threshold: 1, minCalls: 1, slowCallMs: 100, openMs: 10 });
    calls(slowBreaker, 0, 1, "success", 500);
    assert.equal(slowBreaker.tryAcquire(10), true);
    slowBreaker.onSuccess(10, 500);
    assert.equal(slowBreaker.state(10), "open");
    const errorBreaker = new CircuitBreaker({ threshold: 1, minCalls: 1, slowCallMs: 100, openMs: 10 });
    calls(errorBreaker, 0, 1, "error");
    assert.equal(errorBreaker.tryAcquire(10), true);
    errorBreaker.onSuccess(10, 500);
    assert.equal(errorBreaker.state(10), "closed");
  });

  it("onIgnored gives a half-open probe permit back; elsewhere it records nothing", () => {
    const { breaker } = opened();
    assert.equal(breaker.tryAcquire(6000), true);
    assert.equal(breaker.tryAcquire(6000), true);
    breaker.onIgnored(6001);
    assert.equal(breaker.tryAcquire(6002), true, "the permit came back");
    assert.equal(breaker.tryAcquire(6002), false);
    breaker.onSuccess(6003, 1);
    breaker.onSuccess(6003, 1);
    assert.equal(breaker.state(6003), "closed", "the two probes out both succeeded");
    breaker.onIgnored(6004);
    assert.equal(breaker.snapshot(6004).calls, 0);
  });

  it("ignores results while open, and results in half-open when no probe is out", () => {
    const { breaker, transitions } = opened();
    assert.equal(breaker.tryAcquire(1000), false);
    breaker.onError(2000, 1); // calls admitted before it opened, ending late
    breaker.onSuccess(3000, 1);
    assert.deepEqual(breaker.snapshot(3000), { state: "open", calls: 1, errors: 1, slowCalls: 0, openedAt: 1000, timesOpened: 1 }, "nothing recorded, openMs not restarted");
    assert.equal(breaker.tryAcquire(6000), true);
    breaker.onIgnored(6000);
    breaker.onError(6001, 1);
    assert.equal(breaker.state(6001), "halfOpen", "no probe out: the error is a straggler's");
    assert.equal(breaker.tryAcquire(6002), true);
    assert.equal(breaker.tryAcquire(6002), true);
    breaker.onSuccess(6003, 1);
    breaker.onSuccess(6003, 1);
    assert.equal(breaker.state(6003), "closed");
    assert.deepEqual(
      transitions.map(([from, to]) => `${from}>${to}`),
      ["closed>open", "open>halfOpen", "halfOpen>closed"],
    );
  });

  it("the listener fires synchronously, once per transition, in order; one that throws breaks nothing", () => {
    const seen: string[] = [];
    let throws = true;
    const breaker = new CircuitBreaker(options, (from, to) => {
      seen.push(`${from}>${to}`);
      if (throws) throw new Error("listener bug");
    });
    calls(breaker, 0, 1, "error");
    assert.deepEqual(seen, ["closed>open"]);
    assert.equal(breaker.state(0), "open");
    assert.equal(breaker.tryAcquire(5000), true);
    assert.equal(breaker.tryAcquire(5000), true);
    assert.equal(breaker.tryAcquire(5000), false, "the throw did not skip the probe accounting");
    throws = false;
    breaker.onSuccess(5000, 1);
    breaker.onSuccess(5000, 1);
    assert.deepEqual(seen, ["closed>open", "open>halfOpen", "halfOpen>closed"]);
  });

  it("a listener may call the breaker: the outer call sees the state the listener left", () => {
    const seen: string[] = [];
    const breaker: CircuitBreaker = new CircuitBreaker({ ...options, halfOpenCalls: 1 }, (from, to, now) => {
      seen.push(`${from}>${to}`);
      if (to === "halfOpen" && breaker.tryAcquire(now)) breaker.onError(now, 1); // the probe fails at once
    });
    calls(breaker, 0, 1, "error");
    assert.equal(breaker.tryAcquire(5000), false, "reopened inside the listener: nothing admitted");
    assert.equal(breaker.state(5000), "open");
    assert.deepEqual(seen, ["closed>open", "open>halfOpen", "halfOpen>open"]);
    assert.equal(breaker.snapshot(5000).openedAt, 5000);
  });

  it("a clock stepped back neither extends nor cuts the open time by the step", () => {
    const { breaker } = opened(1_000_000);
    assert.equal(breaker.tryAcquire(0), false, "time stands still at the step");
    assert.equal(breaker.state(4999), "open");
    assert.equal(breaker.tryAcquire(4999), false);
    assert.equal(breaker.tryAcquire(5000), true, "5000 ms of forward time after it opened");
    assert.equal(breaker.tryAcquire(Number.NaN), true, "a non-finite now: no time passes, does not throw");
    assert.equal(breaker.tryAcquire(Number.NaN), false);
  });
});

/** The spec, written plainly: a list of results per own time instead of a bucket ring. */
class ModelBreaker {
  state: BreakerState = "closed";
  results: { bucket: number; error: boolean; slow: boolean }[] = [];
  openedAt = 0;
  probes = 0;
  pending = 0;
  succeeded = 0;
  readonly transitions: string[] = [];

  constructor(readonly o: Required<CircuitBreakerOptions>) {}

  #go(to: BreakerState): void {
    this.transitions.push(`${this.state}>${to}`);
    this.state = to;
  }

  acquire(v: number): boolean {
    if (this.state === "open" && v - this.openedAt >= this.o.openMs) {
      this.probes = 0;
      this.pending = 0;
      this.succeeded = 0;
      this.#go("halfOpen");
    }
    if (this.state === "open") return false;
    if (this.state === "closed") return true;
    if (this.probes === this.o.halfOpenCalls) return false;
    this.probes++;
    this.pending++;
    return true;
  }

  result(v: number, error: boolean, latencyMs: number): void {
    const slow = latencyMs > this.o.slowCallMs;
    if (this.state === "closed") {
      const bucket = Math.floor(v / (this.o.windowMs / 10));
      this.results.push({ bucket, error, slow });
      const w = this.window(v);
      const trip =
        w.calls >= this.o.minCalls &&
        (this.o.strategy === "errorRatio" ? w.errors / w.calls >= this.o.threshold : this.o.strategy === "errorCount" ? w.errors >= this.o.threshold : w.slow / w.calls >= this.o.threshold);
      if (trip) this.#open(v);
    } else if (this.state === "halfOpen" && this.pending > 0) {
      this.pending--;
      if (error || (slow && this.o.strategy === "slowCallRatio")) this.#open(v);
      else if (++this.succeeded === this.o.halfOpenCalls) {
        this.results = [];
        this.#go("closed");
      }
    }
  }

  ignored(): void {
    if (this.state === "halfOpen" && this.pending > 0) {
      this.pending--;
      this.probes--;
    }
  }

  window(v: number): { calls: number; errors: number; slow: number } {
    const current = Math.floor(v / (this.o.windowMs / 10));
    const inWindow = this.results.filter((r) => r.bucket > current - 10);
    return { calls: inWindow.length, errors: inWindow.filter((r) => r.error).length, slow: inWindow.filter((r) => r.slow).length };
  }

  #open(v: number): void {
    this.openedAt = v;
    this.#go("open");
  }
}

type Op =
  | { readonly op: "advance"; readonly ms: number }
  | { readonly op: "acquire" }
  /** A result for a call admitted earlier, or with `acquire`: a call admitted just now. */
  | { readonly op: "success" | "error"; readonly latencyMs: number; readonly acquire?: boolean }
  | { readonly op: "ignored" };

const allowed = new Set(["closed>open", "open>halfOpen", "halfOpen>closed", "halfOpen>open"]);

describe("CircuitBreaker model", () => {
  it("follows a plain model of the spec over random sequences of time, acquisitions and results (property)", () => {
    const optionsArb = fc.oneof(
      fc.record({ strategy: fc.constantFrom("errorRatio" as const, "slowCallRatio" as const), threshold: fc.constantFrom(0.2, 0.5, 0.75, 1) }),
      fc.record({ strategy: fc.constant("errorCount" as const), threshold: fc.integer({ min: 1, max: 5 }) }),
    ).chain((base) =>
      fc.record({
        strategy: fc.constant(base.strategy),
        threshold: fc.constant(base.threshold),
        minCalls: fc.integer({ min: 1, max: 6 }),
        windowMs: fc.integer({ min: 10, max: 3000 }),
        openMs: fc.integer({ min: 1, max: 2000 }),
        halfOpenCalls: fc.integer({ min: 1, max: 3 }),
        slowCallMs: fc.constant(100),
      }),
    );
    const latency = fc.oneof(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 101, max: 1000 }));
    const op: fc.Arbitrary<Op> = fc.oneof(
      {
        weight: 3,
        arbitrary: fc.record({
          op: fc.constant("advance" as const),
          ms: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 100 }) }, fc.integer({ min: 100, max: 3000 }), fc.integer({ min: -3000, max: -1 })),
        }),
      },
      { weight: 4, arbitrary: fc.constant({ op: "acquire" as const }) },
      { weight: 4, arbitrary: fc.record({ op: fc.constantFrom("success" as const, "error" as const), latencyMs: latency, acquire: fc.constant(true) }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant("success" as const), latencyMs: latency }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant("error" as const), latencyMs: latency }) },
      { weight: 1, arbitrary: fc.constant({ op: "ignored" as const }) },
    );
    fc.assert(
      fc.property(optionsArb, fc.integer({ min: 0, max: 2e12 }), fc.array(op, { maxLength: 300, size: "max" }), (options, start, ops) => {
        const { transitions, listener } = recorder();
        const breaker = new CircuitBreaker(options, listener);
        const model = new ModelBreaker(checkCircuitBreakerOptions(options, "cb"));
        let now = start;
        // The breaker's own time: a step back between two of its calls counts as no time passing.
        let seenNow: number | undefined;
        let seenOwn = 0;
        const ownAt = (t: number): number => (seenNow === undefined ? t : seenOwn + Math.max(0, t - seenNow));
        const touch = (t: number): number => {
          seenOwn = ownAt(t);
          seenNow = t;
          return seenOwn;
        };
        /** Calls admitted and not reported yet (results only come for those). */
        let outstanding = 0;
        /** Admissions and permits given back in the current half-open episode. */
        let episodeAdmitted = 0;
        let episodeGivenBack = 0;
        /** tryAcquire, checked against the model and the invariants. */
        const acquire = (before: BreakerState, transitionsBefore: number): boolean => {
          const admitted = breaker.tryAcquire(now);
          assert.equal(admitted, model.acquire(touch(now)), `tryAcquire at ${ownAt(now)}`);
          if (before === "open") assert.equal(admitted, false, "nothing admitted while open");
          if (transitions.length > transitionsBefore && transitions.at(-1)?.[1] === "halfOpen") {
            episodeAdmitted = 0;
            episodeGivenBack = 0;
          }
          if (admitted) {
            outstanding++;
            if (breaker.state(now) === "halfOpen") episodeAdmitted++;
          }
          return admitted;
        };
        for (const o of ops) {
          const before = breaker.state(now);
          const transitionsBefore = transitions.length;
          switch (o.op) {
            case "advance":
              now += o.ms;
              break;
            case "acquire":
              acquire(before, transitionsBefore);
              break;
            case "success":
            case "error":
              if (o.acquire === true && !acquire(before, transitionsBefore)) break;
              if (outstanding === 0) continue;
              outstanding--;
              if (o.op === "success") breaker.onSuccess(now, o.latencyMs);
              else breaker.onError(now, o.latencyMs);
              model.result(touch(now), o.op === "error", o.latencyMs);
              break;
            case "ignored":
              if (outstanding === 0) continue;
              outstanding--;
              if (breaker.state(now) === "halfOpen" && model.pending > 0) episodeGivenBack++;
              breaker.onIgnored(now);
              touch(now);
              model.ignored();
              break;
          }
          assert.ok(episodeAdmitted <= options.halfOpenCalls + episodeGivenBack, `${episodeAdmitted} probes admitted, ${episodeGivenBack} given back`);
          assert.deepEqual(
            transitions.map(([from, to]) => `${from}>${to}`),
            model.transitions,
          );
          const own = ownAt(now);
          assert.equal(breaker.state(now), model.state === "open" && own - model.openedAt >= options.openMs ? "halfOpen" : model.state);
          if (model.state === "closed") {
            const w = model.window(own);
            const s = breaker.snapshot(now);
            assert.deepEqual([s.calls, s.errors, s.slowCalls], [w.calls, w.errors, w.slow]);
          }
        }
        transitions.forEach(([from, to], i) => {
          assert.ok(allowed.has(`${from}>${to}`), `${from} → ${to}`);
          assert.equal(from, i === 0 ? "closed" : transitions[i - 1]?.[1], "each transition starts where the previous ended");
        });
        assert.equal(breaker.snapshot(now).timesOpened, transitions.filter(([, to]) => to === "open").length);
      }),
      { numRuns: 400 },
    );
  });
});
