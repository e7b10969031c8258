import type { CallContext } from "../call/call-context.js";

/**
 * What a provider implements for service `T`: every method, sync or async, receiving the
 * {@link CallContext} first and then the arguments the consumer passed:
 * `getById: (ctx, id) => users.get(id)`.
 *
 * The context comes first so that it can never be confused with an argument: a consumer that sends
 * more (or fewer) arguments than the interface declares cannot shift data into the context's
 * place, and optional parameters need no padding (see docs/adr/0007-context-first.md).
 */
export type Implementation<T> = {
  [K in keyof T]: T[K] extends (...args: infer A) => infer R ? (ctx: CallContext, ...args: A) => R | Awaited<R> | Promise<Awaited<R>> : never;
};
