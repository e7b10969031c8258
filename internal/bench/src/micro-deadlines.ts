// Micro-benchmark behind docs/benchmarks.md "Deadlines": the cost of giving every call a deadline
// that it almost always beats, with one setTimeout per call against farcall's timing wheel.
// Shape of the load: `inFlight` calls outstanding, each settling (and canceling its deadline)
// while the next one starts, as at 256 calls in flight. Run: node dist/src/micro-deadlines.js
import { type TimerEntry, TimingWheel } from "@farcall/core/testing";

const inFlight = 256;
const operations = 2_000_000;
const deadlineMs = 5000;

class Call implements TimerEntry {
  wheelSlot = -1;
  wheelNext: TimerEntry | undefined = undefined;
  wheelPrev: TimerEntry | undefined = undefined;
  constructor(readonly deadline: number) {}
  expire(): void {
    throw new Error("no deadline should fire in this benchmark");
  }
}

function withSetTimeout(): number {
  const window: Array<NodeJS.Timeout | undefined> = new Array(inFlight).fill(undefined);
  const fire = (): void => {
    throw new Error("no deadline should fire");
  };
  const started = process.hrtime.bigint();
  for (let i = 0; i < operations; i++) {
    const slot = i % inFlight;
    const previous = window[slot];
    if (previous !== undefined) clearTimeout(previous);
    window[slot] = setTimeout(fire, deadlineMs);
  }
  const elapsed = Number(process.hrtime.bigint() - started);
  for (const t of window) if (t !== undefined) clearTimeout(t);
  return elapsed / operations;
}

function withWheel(): number {
  const wheel = new TimingWheel();
  const window: Array<Call | undefined> = new Array(inFlight).fill(undefined);
  const started = process.hrtime.bigint();
  for (let i = 0; i < operations; i++) {
    const slot = i % inFlight;
    const previous = window[slot];
    if (previous !== undefined) wheel.remove(previous);
    const call = new Call(Date.now() + deadlineMs);
    wheel.add(call);
    window[slot] = call;
  }
  const elapsed = Number(process.hrtime.bigint() - started);
  for (const c of window) if (c !== undefined) wheel.remove(c);
  wheel.stop();
  return elapsed / operations;
}

const rounds = 5;
const results: Record<string, number[]> = { setTimeout: [], wheel: [] };
for (let r = 0; r < rounds; r++) {
  results["setTimeout"]?.push(withSetTimeout());
  results["wheel"]?.push(withWheel());
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
console.log(`deadline schedule + cancel, ${inFlight} outstanding, ${operations} operations, median of ${rounds} rounds`);
console.log("| mechanism | ns per call |\n| --- | ---: |");
for (const [name, xs] of Object.entries(results)) console.log(`| ${name} | ${median(xs).toFixed(0)} |`);
