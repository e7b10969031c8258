import { badOption } from "../errors/farcall-error.js";
import type { ConcurrencyLimiter } from "./limiter.js";

/** Highest concurrency limit accepted. */
const maxLimit = 1_000_000;

/**
 * Creates a cap of `limit` calls running at once. `tryAcquire()` counts a call and returns true
 * while fewer than `limit` are running, and returns false (counting nothing) otherwise;
 * `release()` ends one counted call. A `release()` with nothing running is a no-op, so `running`
 * is never negative. No queue, no timers, O(1).
 * @param limit an integer in 1..1000000 (may come from configuration data: it is checked).
 * @throws FarcallError `invalid_argument`, reason `bad_option`, `details.option` `maxConcurrent`,
 *   when `limit` is not such an integer.
 */
export function createConcurrencyLimiter(limit: number): ConcurrencyLimiter {
  if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1 || limit > maxLimit) {
    badOption("maxConcurrent", `must be an integer in [1, ${maxLimit}], got ${typeof limit === "number" ? String(limit) : typeof limit}`);
  }
  return new Concurrency(limit);
}

class Concurrency implements ConcurrencyLimiter {
  readonly limit: number;
  #running = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  get running(): number {
    return this.#running;
  }

  tryAcquire(): boolean {
    if (this.#running >= this.limit) return false;
    this.#running++;
    return true;
  }

  release(): void {
    if (this.#running > 0) this.#running--;
  }
}
