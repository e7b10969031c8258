import type { CallContext } from "../call/call-context.js";

/**
 * What a provider implements for service `T`: every method, sync or async, receiving its declared
 * arguments followed by the {@link CallContext}. When an implementation declares fewer parameters
 * than a caller passed, the context still comes last: farcall pads missing arguments with
 * `undefined` up to the implementation's declared parameter count minus one.
 */
export type Implementation<T> = {
  [K in keyof T]: T[K] extends (...args: infer A) => infer R ? (...args: [...A, CallContext]) => R | Awaited<R> | Promise<Awaited<R>> : never;
};
