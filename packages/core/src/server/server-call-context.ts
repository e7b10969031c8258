import type { CallContext } from "../call/call-context.js";
import { FarcallError, type Metadata } from "../errors/farcall-error.js";
import type { ServerConnection } from "../protocol/binary/server-connection.js";
import type { TimingWheel, WheelEntry } from "../timing/timing-wheel.js";

/**
 * The context of one running call. Its `AbortController` is created only when the implementation
 * reads `signal`, so calls that never look at it cost no controller, listener or timer.
 */
export class ServerCallContext implements CallContext {
  #controller: AbortController | undefined;
  #timer: WheelEntry | undefined;
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
          this.#timer = this.wheel.add(this.deadline, () => controller.abort(new FarcallError("deadline_exceeded", "the call's deadline passed")));
        }
      }
    }
    return this.#controller.signal;
  }

  /** Releases the timer and hook; called when the call settles. */
  release(): void {
    if (this.#controller === undefined) return;
    this.#timer?.cancel();
    if (this.#abortHook) this.connection.aborts.delete(this.#abortHook);
  }
}
