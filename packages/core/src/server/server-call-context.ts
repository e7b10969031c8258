import type { CallContext } from "../call/call-context.js";
import { FarcallError, type Metadata } from "../errors/farcall-error.js";
import type { ServerConnection } from "../protocol/binary/server-connection.js";
import type { TimerEntry, TimingWheel } from "../timing/timing-wheel.js";

/**
 * The context of one running call. Its `AbortController` is created only when the implementation
 * reads `signal`, so calls that never look at it cost no controller, listener or timer.
 */
export class ServerCallContext implements CallContext, TimerEntry {
  #controller: AbortController | undefined;
  wheelSlot: TimerEntry[] | undefined = undefined;
  wheelIndex = 0;
  #abortHook: (() => void) | undefined;

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

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      const controller = new AbortController();
      this.#controller = controller;
      if (this.connection.closed) {
        controller.abort(new FarcallError("canceled", "the consumer's connection closed"));
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

  /** Releases the timer and hook; called when the call settles. */
  release(): void {
    if (this.#controller === undefined) return;
    if (this.wheelSlot !== undefined) this.wheel.remove(this);
    if (this.#abortHook) this.connection.aborts.delete(this.#abortHook);
  }
}
