import { badOption } from "../errors/farcall-error.js";
import { type Clock, systemClock } from "./clock.js";

/**
 * Something with a deadline that a {@link TimingWheel} holds. The wheel owns `wheelSlot` and
 * `wheelIndex`; classes that need a deadline (a pending call, a call context) implement this
 * interface themselves, so scheduling allocates nothing.
 */
export interface TimerEntry {
  /** Epoch milliseconds at or after which `expire()` runs. */
  readonly deadline: number;
  /** The slot holding the entry, undefined when not scheduled. Owned by the wheel. */
  wheelSlot: TimerEntry[] | undefined;
  /** Position in `wheelSlot`. Owned by the wheel. */
  wheelIndex: number;
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
 * schedule and O(1) removal (swap with the slot's last entry), one interval for any number of
 * pending calls, running only while entries exist. Removal really removes, so a call that settles
 * early leaves nothing behind for the garbage collector to promote. Chosen over one `setTimeout`
 * per call by the micro-benchmark in docs/benchmarks.md.
 */
export class TimingWheel {
  readonly #tickMs: number;
  readonly #slots: TimerEntry[][];
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
    this.#slots = Array.from({ length: slots }, () => []);
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
    if (entry.wheelSlot !== undefined) this.remove(entry);
    if (this.#size === 0) this.#cursorTime = this.#floor(this.#clock.now());
    const at = Math.max(this.#floor(entry.deadline), this.#cursorTime);
    const slot = this.#slots[(at / this.#tickMs) % this.#slots.length] as TimerEntry[];
    entry.wheelSlot = slot;
    entry.wheelIndex = slot.length;
    slot.push(entry);
    this.#size++;
    if (this.#autoTick && this.#timer === undefined) {
      this.#timer = setInterval(() => this.advance(this.#clock.now()), this.#tickMs);
      this.#timer.unref();
    }
  }

  /** Unschedules `entry`; does nothing when it is not scheduled. */
  remove(entry: TimerEntry): void {
    const slot = entry.wheelSlot;
    if (slot === undefined) return;
    const last = slot.pop() as TimerEntry;
    if (last !== entry) {
      slot[entry.wheelIndex] = last;
      last.wheelIndex = entry.wheelIndex;
    }
    entry.wheelSlot = undefined;
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
      this.#sweep(this.#slots[(time / this.#tickMs) % this.#slots.length] as TimerEntry[], now);
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

  #sweep(slot: TimerEntry[], now: number): void {
    // Walk backwards so removals (which move the last entry into the hole) never skip one.
    for (let i = slot.length - 1; i >= 0; i--) {
      const entry = slot[i];
      if (entry !== undefined && entry.deadline <= now) {
        this.remove(entry);
        entry.expire();
      }
    }
  }

  #floor(time: number): number {
    return time - (time % this.#tickMs);
  }
}
