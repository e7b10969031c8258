import type { Clock } from "../../timing/clock.js";

/** What {@link Liveness.check} asks its connection to do. */
export type LivenessVerdict = "ok" | "ping" | "dead";

/**
 * Heartbeat bookkeeping of one consumer connection, kept apart so its rules can be tested with a
 * fake clock. Checked every `intervalMs / 2`:
 * - after `intervalMs` without reading anything, send one ping (never a second while one is
 *   unanswered);
 * - the peer is dead once nothing was read for `3 × intervalMs` and a ping has been unanswered
 *   for at least `intervalMs`; while our own writes are still queued (a ping stuck behind a large
 *   upload) the limit doubles;
 * - a check that runs late (our own event loop stalled for over 1.5 check periods) only pings:
 *   replies may be sitting unread in the socket, so a stall is never taken for a dead peer.
 */
export class Liveness {
  #lastReadAt: number;
  #lastCheckAt: number;
  #pingSentAt = -Infinity;

  constructor(
    readonly intervalMs: number,
    private readonly clock: Clock,
  ) {
    this.#lastReadAt = clock.now();
    this.#lastCheckAt = this.#lastReadAt;
  }

  /** Call on every chunk read. */
  read(now: number): void {
    this.#lastReadAt = now;
  }

  /** Decides what to do now; `bufferedBytes` is what our socket has not sent yet. */
  check(bufferedBytes: number): LivenessVerdict {
    const now = this.clock.now();
    const late = now - this.#lastCheckAt > 0.75 * this.intervalMs;
    this.#lastCheckAt = now;
    const idle = now - this.#lastReadAt;
    const pingOutstanding = this.#pingSentAt > this.#lastReadAt;
    if (!late && pingOutstanding) {
      const limit = bufferedBytes > 0 ? 6 * this.intervalMs : 3 * this.intervalMs;
      if (idle >= limit && now - this.#pingSentAt >= this.intervalMs) return "dead";
      return "ok";
    }
    if (idle >= this.intervalMs && !pingOutstanding) {
      this.#pingSentAt = now;
      return "ping";
    }
    return "ok";
  }

  /** Milliseconds without data, for messages. */
  idleMs(): number {
    return this.clock.now() - this.#lastReadAt;
  }
}
