// The demo's handle on one child process: forked with an IPC channel, its messages queued, every
// wait bounded, and a kill by PID that the demo runs for every child on the way out.
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";

/** How a child ended. */
export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** `performance.now()` when the exit was seen. */
  readonly at: number;
}

interface Waiter<M> {
  readonly match: (message: M) => boolean;
  readonly resolve: (message: M) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** One forked child whose messages have a `type`. */
export class DemoChild<M extends { readonly type: string }> {
  readonly label: string;
  readonly pid: number;
  /** Resolves when the child exits; never rejects. */
  readonly exited: Promise<ChildExit>;
  readonly #process: ChildProcess;
  readonly #messages: M[] = [];
  readonly #waiters = new Set<Waiter<M>>();
  #exit: ChildExit | undefined;

  constructor(label: string, script: URL, args: readonly string[], env: NodeJS.ProcessEnv) {
    this.label = label;
    // stdout and stderr are the demo's: the children's log lines show up in its output.
    this.#process = fork(fileURLToPath(script), args, { env, stdio: ["ignore", "inherit", "inherit", "ipc"] });
    if (this.#process.pid === undefined) throw new Error(`${label}: could not start ${fileURLToPath(script)}`);
    this.pid = this.#process.pid;
    // An IPC error racing the child's exit is not worth crashing the demo: the exit is seen anyway.
    this.#process.on("error", () => undefined);
    this.#process.on("message", (message) => this.#onMessage(message as M));
    let exitAt = 0;
    this.#process.once("exit", () => (exitAt = performance.now()));
    // `close` comes after `exit` once the IPC channel is drained too, so no message is missed.
    this.exited = new Promise((resolve) => {
      this.#process.once("close", (code, signal) => {
        const exit: ChildExit = { code, signal, at: exitAt || performance.now() };
        this.#exit = exit;
        for (const waiter of this.#waiters) {
          clearTimeout(waiter.timer);
          waiter.reject(new Error(`${this.label} exited (${describeExit(exit)}) before reporting`));
        }
        this.#waiters.clear();
        resolve(exit);
      });
    });
  }

  get running(): boolean {
    return this.#exit === undefined;
  }

  /**
   * The first message of `type` (that `match` accepts) not yet taken, waiting up to `timeoutMs`.
   * @throws Error when the child exits first or the time is up.
   */
  next<T extends M["type"]>(type: T, timeoutMs: number, match: (message: Extract<M, { type: T }>) => boolean = () => true): Promise<Extract<M, { type: T }>> {
    const accepts = (message: M): boolean => message.type === type && match(message as Extract<M, { type: T }>);
    const index = this.#messages.findIndex(accepts);
    if (index >= 0) return Promise.resolve(this.#messages.splice(index, 1)[0] as Extract<M, { type: T }>);
    if (this.#exit !== undefined) return Promise.reject(new Error(`${this.label} exited (${describeExit(this.#exit)}) before reporting ${type}`));
    return new Promise((resolve, reject) => {
      const waiter: Waiter<M> = {
        match: accepts,
        resolve: (message) => resolve(message as Extract<M, { type: T }>),
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(waiter);
          reject(new Error(`${this.label} did not report ${type} within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.#waiters.add(waiter);
    });
  }

  /** The child's exit, waiting up to `timeoutMs`. @throws Error when it is still running then. */
  async exit(timeoutMs: number): Promise<ChildExit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.label} (pid ${this.pid}) did not exit within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends `signal` to the child by PID when it is still running. */
  signal(signal: NodeJS.Signals): void {
    if (!this.running) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      // Gone between the check and the kill.
    }
  }

  #onMessage(message: M): void {
    for (const waiter of this.#waiters) {
      if (!waiter.match(message)) continue;
      this.#waiters.delete(waiter);
      clearTimeout(waiter.timer);
      waiter.resolve(message);
      return;
    }
    this.#messages.push(message);
  }
}

export function describeExit(exit: ChildExit): string {
  return exit.signal === null ? `code ${exit.code}` : `signal ${exit.signal}`;
}
