import { debuglog } from "node:util";
import { Redis } from "ioredis";
import { closedError, redisError } from "./errors.js";

const debug = debuglog("farcall:registry");

/** Where and how to connect; durations in milliseconds. */
export interface RedisConnectionOptions {
  readonly host: string;
  readonly port: number;
  readonly db: number;
  readonly username: string | undefined;
  readonly password: string | undefined;
  /** Longest wait for one command's reply, and for a connection in {@link RedisConnection.whenReady}. */
  readonly requestTimeoutMs: number;
  /** Most time between two reconnection attempts. */
  readonly maxReconnectDelayMs: number;
  /** Name shown by `CLIENT LIST`, e.g. `farcall:4242:commands`. */
  readonly connectionName: string;
  /** Called on every `ready` (the first connection and every reconnection). */
  readonly onReady: () => void;
}

/** How one reconnection attempt is delayed: 50 ms doubling up to `maxMs`, plus up to 20 % jitter. */
export function reconnectDelay(attempt: number, maxMs: number): number {
  const base = Math.min(50 * 2 ** Math.min(attempt - 1, 16), maxMs);
  return Math.round(base * (1 + Math.random() * 0.2));
}

/**
 * One ioredis connection with the registry's rules: it connects on first use and then
 * reconnects for ever (one timer, 50 ms doubling to `maxReconnectDelayMs`); commands are never
 * queued while disconnected (ioredis's offline queue is off), so nothing piles up during an
 * outage: callers wait for `ready` with a deadline ({@link whenReady}) or skip their turn; every
 * command times out after `requestTimeoutMs`, and a timeout drops the connection (a server that
 * stopped answering is treated as gone). ioredis's `error` events are logged
 * (`NODE_DEBUG=farcall:registry`), never thrown.
 */
export class RedisConnection {
  readonly client: Redis;
  readonly #options: RedisConnectionOptions;
  readonly #waiters = new Set<{ resolve: () => void; reject: (error: unknown) => void; timer: NodeJS.Timeout }>();
  #started = false;
  #closed = false;
  #lastError: unknown;

  constructor(options: RedisConnectionOptions) {
    this.#options = options;
    this.client = new Redis({
      host: options.host,
      port: options.port,
      db: options.db,
      lazyConnect: true,
      enableOfflineQueue: false,
      autoResubscribe: false,
      commandTimeout: options.requestTimeoutMs,
      connectTimeout: options.requestTimeoutMs,
      maxRetriesPerRequest: null,
      // A server loading its data answers LOADING; ioredis then waits ≥ 1 s before it checks
      // again, unless told otherwise. A registry wants to be back as soon as the data is.
      maxLoadingRetryTime: 100,
      connectionName: options.connectionName,
      disableClientInfo: true,
      retryStrategy: (attempt: number) => (this.#closed ? null : reconnectDelay(attempt, options.maxReconnectDelayMs)),
      ...(options.username === undefined ? {} : { username: options.username }),
      ...(options.password === undefined ? {} : { password: options.password }),
    });
    this.client.on("error", (error: unknown) => {
      this.#lastError = error;
      debug("redis: %s: %s", options.connectionName, error instanceof Error ? error.message : String(error));
    });
    this.client.on("ready", () => {
      debug("redis: %s: ready", options.connectionName);
      for (const waiter of [...this.#waiters]) {
        clearTimeout(waiter.timer);
        this.#waiters.delete(waiter);
        waiter.resolve();
      }
      if (!this.#closed) options.onReady();
    });
  }

  get ready(): boolean {
    return !this.#closed && this.client.status === "ready";
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Starts connecting (once); later calls do nothing. */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.client.connect().catch(() => undefined); // errors are reported through the error event
  }

  /**
   * Resolves once the connection is ready (at once when it is).
   * @throws FarcallError `unavailable` when it is not ready within `timeoutMs`, or `unavailable`
   * (`registry_closed`) when the connection is closed meanwhile.
   */
  whenReady(timeoutMs: number, what: string): Promise<void> {
    if (this.#closed) return Promise.reject(closedError());
    this.start();
    if (this.ready) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(waiter);
          const last = this.#lastError instanceof Error ? this.#lastError.message : "no connection";
          reject(redisError(what, new Error(`not connected within ${timeoutMs} ms (${last})`)));
        }, timeoutMs),
      };
      waiter.timer.unref();
      this.#waiters.add(waiter);
    });
  }

  /**
   * Waits for the connection (up to `requestTimeoutMs`), then runs `command`.
   * @throws FarcallError `unavailable` for no connection, a failed or timed-out command.
   */
  async run<T>(what: string, command: (client: Redis) => Promise<T>): Promise<T> {
    await this.whenReady(this.#options.requestTimeoutMs, what);
    try {
      return await command(this.client);
    } catch (error) {
      this.#onCommandError(error);
      throw redisError(what, error);
    }
  }

  /** Runs `command` only when connected now; `undefined` (and no command) otherwise. */
  async runIfReady<T>(what: string, command: (client: Redis) => Promise<T>): Promise<T | undefined> {
    if (!this.ready) return undefined;
    try {
      return await command(this.client);
    } catch (error) {
      this.#onCommandError(error);
      throw redisError(what, error);
    }
  }

  #onCommandError(error: unknown): void {
    if (error instanceof Error && error.message === "Command timed out" && this.ready) {
      debug("redis: %s: a command timed out; reconnecting", this.#options.connectionName);
      this.client.disconnect(true);
    }
  }

  /**
   * Ends the connection: QUIT when connected (replies to commands sent before it still arrive),
   * else (or when QUIT is not answered within `timeoutMs`) the socket is dropped. No reconnection
   * after this; waiters reject with `registry_closed`. Idempotent.
   */
  async close(timeoutMs: number): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const waiter of [...this.#waiters]) {
      clearTimeout(waiter.timer);
      this.#waiters.delete(waiter);
      waiter.reject(closedError());
    }
    if (this.client.status === "ready") {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      });
      await Promise.race([this.client.quit().then(() => undefined, () => undefined), late]);
      clearTimeout(timer);
    }
    this.client.disconnect();
  }
}
