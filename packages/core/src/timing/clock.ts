/** A source of the current time in epoch milliseconds. Swapped for a fake in tests. */
export interface Clock {
  now(): number;
}

/** The real clock: `Date.now()`. */
export const systemClock: Clock = Object.freeze({ now: () => Date.now() });
