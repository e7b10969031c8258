import { setTimeout as delay } from "node:timers/promises";

/**
 * Polls `condition` every `everyMs` until it holds or `timeoutMs` has passed; resolves with the
 * time it held (`Date.now()`), or `undefined` when it never did. Never throws on timeout, so a
 * test can report the measured figure against its bar.
 */
export async function until(condition: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 5): Promise<number | undefined> {
  const deadline = Date.now() + timeoutMs;
  const rounds = Math.ceil(timeoutMs / everyMs) + 1;
  for (let round = 0; round <= rounds; round++) {
    if (await condition()) return Date.now();
    if (Date.now() >= deadline) return undefined;
    await delay(everyMs);
  }
  return undefined;
}
