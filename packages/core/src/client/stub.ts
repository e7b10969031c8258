import type { MethodNames } from "../contract/define-service.js";
import { badOption, type Metadata } from "../errors/farcall-error.js";

/**
 * The consumer's typed view of service `T`: every method returns a promise of its result.
 * `await users.getById("1")` is a `User`.
 */
export type Stub<T> = {
  readonly [K in MethodNames<T>]: T[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never;
};

/** Options of one call or of a stub made with {@link withOptions}. */
export interface CallOptions {
  /** Deadline in milliseconds from now; overrides the method's and the client's. */
  readonly timeoutMs?: number;
  /** Aborts the call with `canceled`. */
  readonly signal?: AbortSignal;
  /** Sent with the call; the provider reads it from its context. */
  readonly metadata?: Metadata;
}

/** Internal: how a stub reaches the client that built it. */
export const stubFactory: unique symbol = Symbol("farcall.stubFactory");

interface StubSource {
  readonly [stubFactory]: (options: CallOptions) => object;
}

/**
 * A copy of `stub` whose calls use `options` (deadline, abort signal, metadata). Cheap: share one
 * per request scope rather than one per call when you can.
 *
 * ```ts
 * const user = await withOptions(users, { timeoutMs: 200, signal }).getById("1");
 * ```
 * @throws FarcallError `invalid_argument` (`bad_option`) when `stub` is not a farcall stub or a timeout is not positive.
 */
export function withOptions<S extends object>(stub: S, options: CallOptions): S {
  const source = stub as unknown as Partial<StubSource>;
  const factory = source[stubFactory];
  if (typeof factory !== "function") badOption("stub", "not a farcall stub (use the value app.client() returned)");
  return factory(options) as S;
}
