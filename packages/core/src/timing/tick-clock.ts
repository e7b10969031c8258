let cached = 0;
let valid = false;
const invalidate = (): void => {
  valid = false;
};

/**
 * `Date.now()`, read at most once per burst of synchronous work: the first read schedules its own
 * invalidation as a microtask, so calls issued together (256 continuations resumed by one batch
 * of replies) share one clock read. `Date.now()` costs ~90 ns on these machines, and the call path
 * needs "now" several times per call. Stale by at most the length of the current microtask
 * burst (well under a millisecond for a burst of 256 calls here): use it where that does not
 * matter — a call's deadline (which can only come that much early), balancer warm-up, directory
 * rechecks, the remaining time sent to the provider.
 */
export function tickNow(): number {
  if (!valid) {
    cached = Date.now();
    valid = true;
    queueMicrotask(invalidate);
  }
  return cached;
}

let cachedPrecise = 0;
let validPrecise = false;
const invalidatePrecise = (): void => {
  validPrecise = false;
};

/**
 * `performance.now()` (monotonic milliseconds with a fraction), read at most once per burst of
 * synchronous work, like {@link tickNow}: the calls started together share one start time and
 * the replies decoded from one chunk of bytes share one arrival time. What the consumer's call
 * statistics time latencies with: a sub-millisecond resolution matters there (calls on a LAN take
 * well under a millisecond), and one read per burst instead of two per call keeps it cheap
 * (`performance.now()` costs ~90 ns on these machines).
 */
export function tickPreciseNow(): number {
  if (!validPrecise) {
    cachedPrecise = performance.now();
    validPrecise = true;
    queueMicrotask(invalidatePrecise);
  }
  return cachedPrecise;
}
