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
 * burst: use it where a millisecond or two does not matter (balancer warm-up, directory rechecks,
 * the remaining time sent to the provider, which the consumer's own exact deadline bounds anyway).
 */
export function tickNow(): number {
  if (!valid) {
    cached = Date.now();
    valid = true;
    queueMicrotask(invalidate);
  }
  return cached;
}
