import type { Socket } from "node:net";
import { debuglog } from "node:util";
import zookeeper, { type Client } from "node-zookeeper-client";
import { closedError, zookeeperError } from "./errors.js";

const debug = debuglog("farcall:registry");

/** A node-zookeeper-client callback: an error, or the operation's result. */
export type Done<T> = (error: unknown, result?: T) => void;

/** Options of {@link ZookeeperSession}; durations in milliseconds. */
export interface ZookeeperSessionOptions {
  readonly connect: string;
  readonly sessionTimeoutMs: number;
  /** Longest time one {@link ZookeeperSession.run} waits for a connection and retries. */
  readonly requestTimeoutMs: number;
  /** Longest wait in `close()` for the server to end the session before the socket is dropped. */
  readonly closeTimeoutMs: number;
  /** Called on every (re)connection, so watchers can re-read what they may have missed. */
  readonly onConnected: () => void;
}

function isConnected(client: Client): boolean {
  return client.getState() === zookeeper.State.SYNC_CONNECTED;
}

function isConnectionLoss(error: unknown): boolean {
  return error instanceof zookeeper.Exception && error.code === zookeeper.Exception.CONNECTION_LOSS;
}

/**
 * Owns one node-zookeeper-client `Client`: created on first use (a registry that is never used
 * never opens a socket), requests retried on `CONNECTION_LOSS` (the client fails them at once
 * while disconnected) until `requestTimeoutMs`, and closed by {@link ZookeeperSession.close},
 * which ends the ZooKeeper session so the server removes its ephemeral nodes at once.
 */
export class ZookeeperSession {
  readonly #options: ZookeeperSessionOptions;
  #client: Client | undefined;
  #closing: Promise<void> | undefined;
  /** Wakes every {@link ZookeeperSession.run} waiting for a connection; used by close. */
  readonly #waiters = new Set<() => void>();

  constructor(options: ZookeeperSessionOptions) {
    this.#options = options;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * Runs one client operation once connected, again after a `CONNECTION_LOSS` until
   * `requestTimeoutMs` has passed. A synchronous throw of the client (an invalid path) rejects.
   * @throws FarcallError `unavailable` (reason `registry_closed` once closed), or the client's
   * `Exception` for any other ZooKeeper error (`NO_NODE`, `NODE_EXISTS`, ...), for the caller.
   */
  async run<T>(what: string, op: (client: Client, done: Done<T>) => void): Promise<T> {
    const deadline = Date.now() + this.#options.requestTimeoutMs;
    for (;;) {
      if (this.closed) throw closedError();
      const client = this.#open();
      await this.#connected(client, deadline, what);
      try {
        return await new Promise<T>((resolve, reject) => {
          op(client, (error, result) => (error ? reject(error) : resolve(result as T)));
        });
      } catch (error) {
        if (!isConnectionLoss(error) || this.closed) throw error;
        if (Date.now() >= deadline) throw zookeeperError(what, error);
        debug("zookeeper: %s: connection lost, retrying", what);
      }
    }
  }

  /** Ends the session (the server deletes its ephemeral nodes) and closes the socket. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#closeNow();
    return this.#closing;
  }

  #open(): Client {
    if (this.#client !== undefined) return this.#client;
    const client = zookeeper.createClient(this.#options.connect, {
      sessionTimeout: this.#options.sessionTimeoutMs,
      spinDelay: 200,
      retries: 0,
    });
    client.on("state", (state) => debug("zookeeper: %s: state %s", this.#options.connect, String(state)));
    client.on("connected", () => {
      for (const wake of [...this.#waiters]) wake();
      if (!this.closed) this.#options.onConnected();
    });
    client.on("expired", () => {
      // Not handled yet: re-creating the client and re-registering is later work.
      debug("zookeeper: %s: session expired; its registrations are gone", this.#options.connect);
    });
    this.#client = client;
    client.connect();
    return client;
  }

  #connected(client: Client, deadline: number, what: string): Promise<void> {
    if (isConnected(client)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const settle = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(settle);
        if (this.closed) reject(closedError());
        else if (isConnected(client)) resolve();
        else reject(zookeeperError(what, new Error(`not connected to ${this.#options.connect} in time`)));
      };
      const timer = setTimeout(settle, Math.max(0, deadline - Date.now()));
      timer.unref();
      this.#waiters.add(settle);
    });
  }

  async #closeNow(): Promise<void> {
    for (const wake of [...this.#waiters]) wake();
    const client = this.#client;
    if (client === undefined) return;
    const { closeTimeoutMs, connect } = this.#options;
    // The client crashes when closed before its socket exists, and ends a session only over a
    // live connection: let a connection in progress finish first (bounded).
    if (!(await this.#until(client, "connected", closeTimeoutMs, () => isConnected(client)))) {
      debug("zookeeper: %s: not connected at close; dropping the connection attempt", connect);
    }
    client.close();
    if (!(await this.#until(client, "disconnected", closeTimeoutMs, () => false))) {
      // The server did not end the session in time: drop the socket (the client's own field; it
      // has no public way to) so nothing stays open. Ephemerals then go when the session expires.
      debug("zookeeper: %s: close timed out; dropping the connection", connect);
      (client as unknown as { connectionManager?: { socket?: Socket } }).connectionManager?.socket?.destroy();
    }
  }

  /** Resolves true on `event` (or at once when `already()` holds), false after `timeoutMs`. */
  #until(client: Client, event: "connected" | "disconnected", timeoutMs: number, already: () => boolean): Promise<boolean> {
    if (already()) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const settle = (happened: boolean): void => {
        clearTimeout(timer);
        client.removeListener(event, onEvent);
        resolve(happened);
      };
      const onEvent = (): void => settle(true);
      const timer = setTimeout(() => settle(false), timeoutMs);
      timer.unref();
      client.on(event, onEvent);
    });
  }
}
