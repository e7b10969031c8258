import type { FarcallError } from "../errors/farcall-error.js";

/**
 * Told when one attempt to one endpoint starts and when it ends: how the client keeps per-endpoint
 * call statistics (in-flight count, latency) without wrapping each attempt's promise. The client
 * calls `started()` right after the pick; whoever then owns the attempt (the connection pool while
 * connecting, then the connection) calls `settled` exactly once, with the value `started()`
 * returned, however the attempt ends.
 */
export interface AttemptObserver {
  /** An attempt begins; returns its start time (the observer's own clock), handed back to `settled`. */
  started(): number;
  /**
   * The attempt had to wait for a connection, and its request goes out now: returns a fresh start
   * time to hand to `settled` instead, so that connecting does not count as the provider's
   * latency. Changes nothing else (the attempt stays in flight). Optional: without it the first
   * start time is kept.
   */
  resumed?(): number;
  /**
   * The attempt ended: with a reply when `error` is undefined, otherwise with `error` (its `sent`
   * tells whether the request left this process, its `code` what happened).
   */
  settled(startedAt: number, error: FarcallError | undefined): void;
}
