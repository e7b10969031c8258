import type { Metadata } from "../errors/farcall-error.js";

/** Identifies one method of one service: what the wire route carries. */
export interface MethodRef {
  readonly service: string;
  readonly version: string;
  readonly group: string;
  readonly method: string;
  /** Safe to run more than once: timeouts and connection failures may be retried. */
  readonly idempotent: boolean;
  /** Fire and forget: no reply is awaited. */
  readonly oneway: boolean;
}

/**
 * One invocation, immutable. A retry is a copy with `attempt + 1`. Built once per call by the
 * stub; every layer (interceptors, fault tolerance, balancer, connection) sees the same shape.
 */
export interface Call {
  readonly ref: MethodRef;
  readonly args: readonly unknown[];
  /** Crosses the wire. */
  readonly metadata: Metadata;
  /** Absolute deadline in epoch milliseconds (`Date.now()` scale); `Infinity` for none. */
  readonly deadline: number;
  /** Aborts the call with `canceled`. */
  readonly signal: AbortSignal | undefined;
  /** 0 for the first attempt. */
  readonly attempt: number;
  /** Provider addresses (`host:port`) tried by earlier attempts; failover excludes them. */
  readonly tried: readonly string[];
  /**
   * The provider address (`host:port`) this attempt must go to, bypassing the balancer: set by
   * strategies that choose providers themselves (forking, broadcast). Undefined: the balancer picks.
   */
  readonly target?: string;
}

/** What a successful call resolves to. */
export interface Reply {
  readonly value: unknown;
  readonly metadata: Metadata | undefined;
}

/** One shape at every layer: take a call, settle with a reply or reject with a `FarcallError`. */
export type Invoke = (call: Call) => Promise<Reply>;

/** Wraps an {@link Invoke}; composes like middleware. */
export type Interceptor = (next: Invoke) => Invoke;

/** Composes interceptors so that the first one in the list runs first (outermost). */
export function compose(interceptors: readonly Interceptor[], last: Invoke): Invoke {
  let invoke = last;
  for (let i = interceptors.length - 1; i >= 0; i--) invoke = (interceptors[i] as Interceptor)(invoke);
  return invoke;
}
