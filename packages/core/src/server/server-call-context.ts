import type { CallContext } from "../call/call-context.js";
import { FarcallError, type Metadata } from "../errors/farcall-error.js";
import type { ServerConnection } from "../protocol/binary/server-connection.js";
import type { TimerEntry, TimingWheel } from "../timing/timing-wheel.js";

/**
 * The context of one running call. Its `AbortController` is created only when the implementation
 * reads `signal`, so calls that never look at it cost no controller, listener or timer. Once the
 * call has settled ({@link release}), reading `signal` registers nothing: it returns a signal that
 * is aborted if the connection has closed or the deadline has passed at that moment, and otherwise
 * never aborts.
 */
export class ServerCallContext implements CallContext, TimerEntry {
  #controller: AbortController | undefined;
  wheelSlot = -1;
  wheelNext: TimerEntry | undefined = undefined;
  wheelPrev: TimerEntry | undefined = undefined;
  #abortHook: (() => void) | undefined;
  #released = false;

  constructor(
    readonly service: string,
    readonly method: string,
    readonly metadata: Metadata,
    readonly deadline: number,
    readonly connection: ServerConnection,
    private readonly wheel: TimingWheel,
  ) {}

  get remote(): string {
    return this.connection.remote;
  }

  /** Whether the call has settled (its reply, if any, is written). */
  get settled(): boolean {
    return this.#released;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      const controller = new AbortController();
      this.#controller = controller;
      if (this.connection.closed) {
        controller.abort(new FarcallError("canceled", "the consumer's connection closed"));
      } else if (this.#released) {
        // Settled: nothing would ever remove a hook or a wheel entry registered now.
        if (Date.now() >= this.deadline) this.expire();
      } else {
        this.#abortHook = () => controller.abort(new FarcallError("canceled", "the consumer's connection closed"));
        this.connection.aborts.add(this.#abortHook);
        if (this.deadline !== Infinity) {
          this.wheel.add(this);
        }
      }
    }
    return this.#controller.signal;
  }

  /** The deadline passed: abort the implementation's signal. */
  expire(): void {
    this.#controller?.abort(new FarcallError("deadline_exceeded", "the call's deadline passed"));
  }

  /** Marks the call settled and releases the timer and hook; called once, when the call settles. */
  release(): void {
    this.#released = true;
    if (this.#controller === undefined) return;
    if (this.wheelSlot >= 0) this.wheel.remove(this);
    if (this.#abortHook !== undefined) {
      this.connection.aborts.delete(this.#abortHook);
      this.#abortHook = undefined;
    }
  }
}
