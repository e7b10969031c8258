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
