import { type Clock, systemClock } from "./clock.js";

/**
 * A scheduled expiry. `cancel()` is O(1): the entry is only marked and skipped (and dropped) when
 * its slot comes round, so a call that settles before its deadline costs one object and one push.
 */
export class WheelEntry {
  /** Set when canceled or fired. */
  done = false;
  constructor(
    readonly deadline: number,
    readonly onExpire: () => void,
  ) {}
  cancel(): void {
    this.done = true;
  }
}

/** Options of {@link TimingWheel}. */
export interface TimingWheelOptions {
  /** Granularity in milliseconds; expiries fire at most this late (plus event-loop delay). Default 4. */
  readonly tickMs?: number;
  /** Number of slots; one rotation covers `tickMs * slots` ms. Default 1024. */
  readonly slots?: number;
  /** Default {@link systemClock}. */
  readonly clock?: Clock;
  /** Drive the wheel with an unref'd interval while it holds entries. Default true; tests pass false and call {@link TimingWheel.advance}. */
  readonly autoTick?: boolean;
}

/**
 * A hashed timing wheel (the seeds' design, after Varghese & Lauck) for call deadlines: O(1) add and
 * cancel, one interval for any number of pending calls, and the interval runs only while entries
 * exist. Chosen over one `setTimeout` per call by the micro-benchmark in docs/benchmarks.md.
 */
export class TimingWheel {
  readonly #tickMs: number;
  readonly #slots: WheelEntry[][];
  readonly #clock: Clock;
  readonly #autoTick: boolean;
  #cursorTime: number;
  #size = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: TimingWheelOptions = {}) {
    this.#tickMs = options.tickMs ?? 4;
    const slots = options.slots ?? 1024;
    this.#slots = Array.from({ length: slots }, () => []);
    this.#clock = options.clock ?? systemClock;
    this.#autoTick = options.autoTick ?? true;
    this.#cursorTime = this.#floor(this.#clock.now());
  }

  /** Entries added and not yet fired or swept (canceled ones count until their slot is swept). */
  get size(): number {
    return this.#size;
  }

  /** Schedules `onExpire` at `deadline` (epoch ms). A deadline in the past fires on the next tick. */
  add(deadline: number, onExpire: () => void): WheelEntry {
    const entry = new WheelEntry(deadline, onExpire);
    const at = Math.max(this.#floor(deadline), this.#cursorTime);
    const slot = this.#slots[(at / this.#tickMs) % this.#slots.length] as WheelEntry[];
    slot.push(entry);
    this.#size++;
    if (this.#autoTick && this.#timer === undefined) {
      this.#timer = setInterval(() => this.advance(this.#clock.now()), this.#tickMs);
      this.#timer.unref();
    }
    return entry;
  }

  /** Fires every entry whose deadline is at or before `now`. Called by the interval or by tests. */
  advance(now: number): void {
    const end = this.#floor(now);
    // Never walk more than one rotation: after that every slot has been visited once.
    let steps = Math.min((end - this.#cursorTime) / this.#tickMs + 1, this.#slots.length);
    let time = this.#cursorTime;
    while (steps-- > 0) {
      this.#sweep(this.#slots[(time / this.#tickMs) % this.#slots.length] as WheelEntry[], now);
      time += this.#tickMs;
    }
    this.#cursorTime = end;
    if (this.#size === 0) this.stop();
  }

  /** Stops the interval; entries stay and fire after the next `add` restarts it. */
  stop(): void {
    if (this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  #sweep(slot: WheelEntry[], now: number): void {
    if (slot.length === 0) return;
    let kept = 0;
    for (let i = 0; i < slot.length; i++) {
      const entry = slot[i] as WheelEntry;
      if (entry.done) {
        this.#size--;
      } else if (entry.deadline <= now) {
        entry.done = true;
        this.#size--;
        entry.onExpire();
      } else {
        slot[kept++] = entry;
      }
    }
    slot.length = kept;
  }

  #floor(time: number): number {
    return time - (time % this.#tickMs);
  }
}
