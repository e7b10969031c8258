import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";

/** Counts of active handles and requests by type (`TCPWrap`, `Timeout`, `FSReqCallback`, ...). */
export function activeResources(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const type of process.getActiveResourcesInfo()) counts.set(type, (counts.get(type) ?? 0) + 1);
  return counts;
}

/**
 * Snapshots active resources; the returned check fails the test when sockets, servers, timers or
 * immediates outlive the code under test. It waits (bounded, 2 s) for asynchronous closes to land.
 */
export function trackResources(): () => Promise<void> {
  const before = activeResources();
  return async () => {
    let extra: string[] = [];
    for (let i = 0; i < 40; i++) {
      const after = activeResources();
      extra = [];
      for (const [type, n] of after) {
        const base = before.get(type) ?? 0;
        if (n > base && type !== "TTYWrap" && type !== "PipeWrap" && type !== "ProcessWrap" && type !== "SignalWrap") {
          extra.push(`${type}: ${base} -> ${n}`);
        }
      }
      if (extra.length === 0) return;
      await sleep(50);
    }
    assert.fail(`leaked resources: ${extra.join(", ")}`);
  };
}
