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
  /** `user:password` for ZooKeeper's digest scheme, sent on every connection; none when undefined. */
  readonly digest?: string | undefined;
  /**
   * Called on every (re)connection, so owners can re-read what they may have missed and re-create
   * what they own. `newSession` is true on the first connection of a session (the very first one,
   * and the first after an expiry, when every ephemeral node and watch of the old session is gone).
   */
  readonly onConnected: (newSession: boolean) => void;
}

/** The parts of node-zookeeper-client's private connection manager the handshake guard uses. */
interface ConnectionManagerInternals {
  socket?: Socket;
  state?: number;
  onSocketConnected: (this: ConnectionManagerInternals, ...args: unknown[]) => void;
  connect: (this: ConnectionManagerInternals, ...args: unknown[]) => void;
}

/** node-zookeeper-client's `ConnectionManager` state while it waits for a session answer. */
const managerConnecting = 1;

/**
 * Two repairs to node-zookeeper-client 1.1.3 (pinned), made on its private connection manager,
 * whose methods are looked up anew at every connect:
 * - It times out the TCP connect but not the session handshake after it: a server that accepts
 *   the socket and never answers (ZooKeeper 3.8 does this to connections that arrive while it is
 *   still loading its database) leaves it waiting forever, and its session expires unnoticed. A
 *   socket with no session answer `timeoutMs` after it connected is destroyed, so the client's
 *   own reconnect loop tries again (one timer per attempt, cleared when the socket closes).
 * - `close()` while it is between two connection attempts does not stop the next attempt, after
 *   which it reconnects forever: once `stopped()` holds, it no longer connects.
 */
function repairClient(client: Client, timeoutMs: number, connect: string, stopped: () => boolean): void {
  const manager = (client as unknown as { connectionManager?: ConnectionManagerInternals }).connectionManager;
  if (manager === undefined || typeof manager.onSocketConnected !== "function" || typeof manager.connect !== "function") return;
  const onSocketConnected = manager.onSocketConnected;
  manager.onSocketConnected = function (this: ConnectionManagerInternals, ...args: unknown[]): void {
    const socket = this.socket;
    if (socket !== undefined) {
      const timer = setTimeout(() => {
        if (this.socket === socket && this.state === managerConnecting) {
          debug("zookeeper: %s: no session answer %d ms after connecting; reconnecting", connect, timeoutMs);
          socket.destroy();
        }
      }, timeoutMs);
      timer.unref();
      socket.once("close", () => clearTimeout(timer));
    }
    onSocketConnected.apply(this, args);
  };
  const reconnect = manager.connect;
  manager.connect = function (this: ConnectionManagerInternals, ...args: unknown[]): void {
    if (stopped()) {
      debug("zookeeper: %s: closed; not reconnecting", connect);
      return;
    }
    reconnect.apply(this, args);
  };
}

function isConnected(client: Client): boolean {
  return client.getState() === zookeeper.State.SYNC_CONNECTED;
}

/** Errors after which the same operation may succeed on a (new) connection. */
function isRetryable(error: unknown): boolean {
  return (
    error instanceof zookeeper.Exception &&
    (error.code === zookeeper.Exception.CONNECTION_LOSS || error.code === zookeeper.Exception.SESSION_EXPIRED)
  );
}

/**
 * Owns the ZooKeeper session of one registry: one node-zookeeper-client `Client` at a time,
 * created on first use (a registry that is never used never opens a socket).
 *
 * - A disconnect is not an expiry: the client reconnects on its own (every 0-200 ms across the
 *   servers, forever) and resumes the same session, whose ephemeral nodes the server keeps until
 *   the session times out. Nothing is deregistered meanwhile.
 * - A session ends when the server says it expired (a reconnect that arrived too late), or when
 *   no server could be reached for a whole session timeout (the session clock). The client is
 *   then replaced at once by a new one; its first connection reports `newSession` so the owner
 *   re-creates its nodes and re-arms its watches. Retries are the client's own reconnect loop
 *   plus at most one session-clock timer, so nothing piles up however often it flaps.
 * - Requests fail at once while disconnected; {@link ZookeeperSession.run} waits for a connection
 *   and retries them until `requestTimeoutMs`.
 * - {@link ZookeeperSession.close} ends the session, so the server deletes its ephemeral nodes at once.
 */
export class ZookeeperSession {
  readonly #options: ZookeeperSessionOptions;
  #client: Client | undefined;
  #closing: Promise<void> | undefined;
  /** Wakes every {@link ZookeeperSession.run} waiting for a connection (on connect, expiry, close). */
  readonly #waiters = new Set<() => void>();
  #sessionClock: NodeJS.Timeout | undefined;
  #generation = 0;

  constructor(options: ZookeeperSessionOptions) {
    this.#options = options;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * Which client (and so which session) is current: 1 for the first, +1 for every replacement
   * after an expiry. Nodes named with it never collide with an older session's leftovers.
   */
  get generation(): number {
    return this.#generation;
  }

  /** True while the current client is connected. */
  get connected(): boolean {
    return this.#client !== undefined && isConnected(this.#client);
  }

  /** The current session's id (16 hex digits), or undefined before the first connection. */
  get sessionId(): string | undefined {
    const client = this.#client;
    if (client === undefined || !isConnected(client)) return undefined;
    return client.getSessionId().toString("hex");
  }

  /**
   * Runs one client operation once connected, again after a connection loss or a session expiry
   * until `requestTimeoutMs` has passed. A synchronous throw of the client (an invalid path) rejects.
   * @throws FarcallError `unavailable` (reason `registry_closed` once closed; or ZooKeeper not
   * reachable in time), or the client's `Exception` for any other ZooKeeper error (`NO_NODE`,
   * `NODE_EXISTS`, `NO_AUTH`, ...), for the caller to judge.
   */
  async run<T>(what: string, op: (client: Client, done: Done<T>) => void): Promise<T> {
    const deadline = Date.now() + this.#options.requestTimeoutMs;
    for (;;) {
      const client = await this.#connectedClient(deadline, what);
      try {
        return await new Promise<T>((resolve, reject) => {
          op(client, (error, result) => (error ? reject(error) : resolve(result as T)));
        });
      } catch (error) {
        if (!isRetryable(error) || this.closed) throw error;
        if (Date.now() >= deadline) throw zookeeperError(what, error);
        debug("zookeeper: %s: %s, retrying", what, String(error));
      }
    }
  }

  /** Ends the session (the server deletes its ephemeral nodes) and closes the socket. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#closeNow();
    return this.#closing;
  }

  /** Opens the client if there is none; never after close. */
  open(): void {
    if (!this.closed) this.#open();
  }

  #open(): Client {
    if (this.#client !== undefined) return this.#client;
    const { connect, sessionTimeoutMs, digest } = this.#options;
    const client = zookeeper.createClient(connect, { sessionTimeout: sessionTimeoutMs, spinDelay: 200, retries: 0 });
    if (digest !== undefined) client.addAuthInfo("digest", Buffer.from(digest));
    // The first connect() below is ours; later ones are the client's reconnects.
    repairClient(client, Math.min(5000, Math.max(500, Math.floor(sessionTimeoutMs / 4))), connect, () => this.closed || this.#client !== client);
    this.#generation++;
    let first = true;
    client.on("state", (state) => debug("zookeeper: %s: state %s", connect, String(state)));
    client.on("connected", () => {
      if (this.#client !== client) {
        // A replaced client whose last attempt still got through: end its session.
        client.close();
        return;
      }
      this.#clearSessionClock();
      this.#wake();
      const newSession = first;
      first = false;
      if (!this.closed) this.#options.onConnected(newSession);
    });
    client.on("disconnected", () => {
      if (this.#client === client && !this.closed) this.#startSessionClock(client);
    });
    client.on("expired", () => {
      if (this.#client !== client || this.closed) return;
      debug("zookeeper: %s: session expired; starting a new one", connect);
      // The expired client has closed its socket and will not reconnect: replace it now.
      this.#replace(client);
    });
    client.on("authenticationFailed", () => {
      if (this.#client !== client) return;
      // Not retried in a loop: the next operation opens a new client.
      debug("zookeeper: %s: authentication failed", connect);
      this.#client = undefined;
      this.#clearSessionClock();
      this.#wake();
    });
    this.#client = client;
    client.connect();
    return client;
  }

  /**
   * The session clock: a client that could not reach any server for longer than the session
   * timeout assumes its session is gone (the server expires it, or lost it with its data: a
   * rebuilt ensemble refuses the old session for ever) and starts a new one, without deleting
   * anything. Nodes of the old session that a restarted server kept expire on their own; owners
   * name nodes per session ({@link ZookeeperSession.generation}) so the two never collide.
   * One timer, started on a disconnect and cleared on a connection.
   */
  #startSessionClock(client: Client): void {
    if (this.#sessionClock !== undefined) return;
    const timeoutMs = client.getSessionTimeout() || this.#options.sessionTimeoutMs;
    this.#sessionClock = setTimeout(() => {
      this.#sessionClock = undefined;
      if (this.#client !== client || this.closed || isConnected(client)) return;
      debug("zookeeper: %s: no server for %d ms (the session timeout); starting a new session", this.#options.connect, timeoutMs);
      (client as unknown as { connectionManager?: ConnectionManagerInternals }).connectionManager?.socket?.destroy();
      this.#replace(client);
    }, timeoutMs);
    this.#sessionClock.unref();
  }

  #clearSessionClock(): void {
    clearTimeout(this.#sessionClock);
    this.#sessionClock = undefined;
  }

  /** Drops `client` (it no longer reconnects) and starts a new one with a new session. */
  #replace(client: Client): void {
    if (this.#client !== client) return;
    this.#clearSessionClock();
    this.#client = undefined;
    this.#open();
    this.#wake();
  }

  #wake(): void {
    for (const wake of [...this.#waiters]) wake();
  }

  /** The current client once connected; waits at most until `deadline`. */
  async #connectedClient(deadline: number, what: string): Promise<Client> {
    for (;;) {
      if (this.closed) throw closedError();
      const client = this.#open();
      if (isConnected(client)) return client;
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw zookeeperError(what, new Error(`not connected to ${this.#options.connect} in time`));
      await new Promise<void>((resolve) => {
        const settle = (): void => {
          clearTimeout(timer);
          this.#waiters.delete(settle);
          resolve();
        };
        const timer = setTimeout(settle, remaining);
        timer.unref();
        this.#waiters.add(settle);
      });
    }
  }

  async #closeNow(): Promise<void> {
    this.#clearSessionClock();
    this.#wake();
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
      // Not unref'd: a process whose last work is awaiting close() must not exit before it ends
      // (bounded by closeTimeoutMs).
      const timer = setTimeout(() => settle(false), timeoutMs);
      client.on(event, onEvent);
    });
  }
}
