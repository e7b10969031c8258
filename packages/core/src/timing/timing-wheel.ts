import { badOption } from "../errors/farcall-error.js";
import { type Clock, systemClock } from "./clock.js";

/**
 * Something with a deadline that a {@link TimingWheel} holds. The wheel owns the `wheel*` fields
 * (an intrusive doubly linked list per slot); classes that need a deadline (a pending call, a call
 * context) implement this interface themselves, so scheduling allocates nothing. Start with
 * `wheelSlot = -1`, `wheelNext = wheelPrev = undefined`.
 */
export interface TimerEntry {
  /** Epoch milliseconds at or after which `expire()` runs. */
  readonly deadline: number;
  /** Index of the slot holding the entry, -1 when not scheduled. Owned by the wheel. */
  wheelSlot: number;
  wheelNext: TimerEntry | undefined;
  wheelPrev: TimerEntry | undefined;
  expire(): void;
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
 * A hashed timing wheel (the seeds' design, after Varghese & Lauck) for call deadlines: O(1)
 * schedule and O(1) removal, one interval for any number of pending calls, running only while
 * entries exist. Each slot is an intrusive linked list through the entries themselves: no arrays
 * that grow and shrink with every burst of calls (whose backing stores the garbage collector
 * would promote), and a call that settles early leaves nothing behind. Chosen over one
 * `setTimeout` per call by the micro-benchmark in docs/benchmarks.md.
 */
export class TimingWheel {
  readonly #tickMs: number;
  /** Head of each slot's list. */
  readonly #slots: Array<TimerEntry | undefined>;
  readonly #clock: Clock;
  readonly #autoTick: boolean;
  #cursorTime: number;
  #size = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: TimingWheelOptions = {}) {
    this.#tickMs = options.tickMs ?? 4;
    const slots = options.slots ?? 1024;
    if (!Number.isInteger(this.#tickMs) || this.#tickMs < 1) badOption("tickMs", "must be a positive integer");
    if (!Number.isInteger(slots) || slots < 1) badOption("slots", "must be a positive integer");
    this.#slots = new Array<TimerEntry | undefined>(slots).fill(undefined);
    this.#clock = options.clock ?? systemClock;
    this.#autoTick = options.autoTick ?? true;
    this.#cursorTime = this.#floor(this.#clock.now());
  }

  /** Entries scheduled and not yet fired or removed. */
  get size(): number {
    return this.#size;
  }

  /** Schedules `entry` at its deadline. A deadline in the past fires on the next tick. An entry already scheduled is moved. */
  add(entry: TimerEntry): void {
    if (entry.wheelSlot >= 0) this.remove(entry);
    if (this.#size === 0) this.#cursorTime = this.#floor(this.#clock.now());
    const at = Math.max(this.#floor(entry.deadline), this.#cursorTime);
    const index = (at / this.#tickMs) % this.#slots.length;
    const head = this.#slots[index];
    entry.wheelSlot = index;
    entry.wheelPrev = undefined;
    entry.wheelNext = head;
    if (head !== undefined) head.wheelPrev = entry;
    this.#slots[index] = entry;
    this.#size++;
    if (this.#autoTick && this.#timer === undefined) {
      this.#timer = setInterval(() => this.advance(this.#clock.now()), this.#tickMs);
      this.#timer.unref();
    }
  }

  /** Unschedules `entry`; does nothing when it is not scheduled. */
  remove(entry: TimerEntry): void {
    const index = entry.wheelSlot;
    if (index < 0) return;
    const { wheelPrev: prev, wheelNext: next } = entry;
    if (prev !== undefined) prev.wheelNext = next;
    else this.#slots[index] = next;
    if (next !== undefined) next.wheelPrev = prev;
    entry.wheelSlot = -1;
    entry.wheelNext = undefined;
    entry.wheelPrev = undefined;
    // Stop ticking as soon as nothing is scheduled: at low load a 4 ms interval that fires for
    // nothing costs far more (a wake-up each time) than re-creating it for the next call.
    if (--this.#size === 0) this.stop();
  }

  /** Fires every entry whose deadline is at or before `now`. Called by the interval or by tests. */
  advance(now: number): void {
    const end = this.#floor(now);
    // Never walk more than one rotation: after that every slot has been visited once.
    let steps = Math.min((end - this.#cursorTime) / this.#tickMs + 1, this.#slots.length);
    let time = this.#cursorTime;
    // Move the cursor first: an entry added by an expire() callback during this sweep lands in
    // `end`'s slot or later, never in a slot this sweep has already passed.
    this.#cursorTime = end;
    while (steps-- > 0) {
      this.#sweep((time / this.#tickMs) % this.#slots.length, now);
      time += this.#tickMs;
    }
    if (this.#size === 0) this.stop();
  }

  /** Stops the interval; entries stay and fire after the next `add` restarts it. */
  stop(): void {
    if (this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  #sweep(index: number, now: number): void {
    let entry = this.#slots[index];
    while (entry !== undefined) {
      let next = entry.wheelNext;
      if (entry.deadline <= now) {
        this.remove(entry);
        entry.expire();
        // expire() may have removed `next` (a connection failing all its calls): start over.
        if (next !== undefined && next.wheelSlot !== index) next = this.#slots[index];
      }
      entry = next;
    }
  }

  #floor(time: number): number {
    return time - (time % this.#tickMs);
  }
}
