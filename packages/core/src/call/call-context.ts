import type { Metadata } from "../errors/farcall-error.js";

/** What a provider's implementation receives as its first argument, before the caller's arguments. */
export interface CallContext {
  readonly service: string;
  readonly method: string;
  /** Metadata the consumer sent. */
  readonly metadata: Metadata;
  /** Absolute deadline in epoch ms (`Infinity` when the caller set none). */
  readonly deadline: number;
  /** Aborts when the deadline passes, the caller's connection drops, or the server is forced down. */
  readonly signal: AbortSignal;
  /** Address of the calling peer (`host:port`). */
  readonly remote: string;
}
