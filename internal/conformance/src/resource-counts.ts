import { createHook } from "node:async_hooks";

/** Handle and request types whose count may grow with reconnections. */
const tracked = new Set(["Timeout", "Immediate", "TCPWRAP", "TCPCONNECTWRAP", "GETADDRINFOREQWRAP", "PIPEWRAP", "PROCESSWRAP", "FSREQCALLBACK"]);

/** Counts of `items` by value. */
export function countBy(items: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[item] = (counts[item] ?? 0) + 1;
  return counts;
}

/**
 * Two views of the resources alive in this process, by type: `process.getActiveResourcesInfo()`
 * (ref'd handles and timers only) and an async hook's set of resources created since `start()`
 * and not yet destroyed (which also sees unref'd timers, as the registry's retry timers are).
 */
export class ResourceCounter {
  readonly #live = new Map<number, string>();
  readonly #hook = createHook({
    init: (asyncId, type) => {
      if (tracked.has(type)) this.#live.set(asyncId, type);
    },
    destroy: (asyncId) => {
      this.#live.delete(asyncId);
    },
  });

  start(): this {
    this.#hook.enable();
    return this;
  }

  stop(): void {
    this.#hook.disable();
  }

  /** Both views now, prefixed `active:` and `live:`. */
  sample(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const [type, n] of Object.entries(countBy(process.getActiveResourcesInfo()))) counts[`active:${type}`] = n;
    for (const [type, n] of Object.entries(countBy([...this.#live.values()]))) counts[`live:${type}`] = n;
    return counts;
  }
}

/** Per key, the smallest count over `samples` (transient timers and requests come and go). */
export function minimum(samples: readonly Record<string, number>[]): Record<string, number> {
  const keys = new Set(samples.flatMap((s) => Object.keys(s)));
  const result: Record<string, number> = {};
  for (const key of keys) result[key] = Math.min(...samples.map((s) => s[key] ?? 0));
  return result;
}
