import type { Payload, PayloadKind } from "./payloads.js";

/** A running echo server inside a server child process. */
export interface ServerHandle {
  /** TCP port the server listens on, on 127.0.0.1. */
  readonly port: number;
  close(): Promise<void>;
}

/** Options for one client: one is created per measured cell and closed after it. */
export interface ClientOptions {
  readonly port: number;
  /** Calls the load loop keeps in flight; clients size connection pools from it. */
  readonly concurrency: number;
}

/** Sends one echo call and resolves with the echoed value. */
export type EchoCall = (value: Payload) => Promise<unknown>;

export interface ClientHandle {
  /** The call function for one payload kind, looked up once per cell, not per call. */
  callFor(kind: PayloadKind): EchoCall;
  close(): Promise<void>;
}

/**
 * One benchmarked RPC system. `startServer` runs in the server child process,
 * `createClient` in the client child process; both sides only meet over 127.0.0.1.
 */
export interface System {
  readonly name: string;
  startServer(): Promise<ServerHandle>;
  createClient(options: ClientOptions): Promise<ClientHandle>;
}
