import type { ServiceDefinition } from "./define-service.js";
import type { Implementation } from "./implementation.js";

// Class to the definition it was decorated with. Keyed by the class object itself: nothing is
// looked up by name, nothing is registered as an import side effect.
const definitions = new WeakMap<object, ServiceDefinition<unknown>>();

/**
 * Marks a class as the implementation of `definition` (the seeds' `@RpcService`), so
 * `app.provide(new UserServiceImpl())` needs no definition argument. The class must implement
 * every method of `T` (a compile error otherwise). Optional: `app.provide(definition, impl)` does
 * the same without a decorator. Standard (TC39) decorators; no `experimentalDecorators`.
 *
 * ```ts
 * @rpcService(UserService)
 * class UserServiceImpl implements Implementation<UserService> { ... }
 * app.provide(new UserServiceImpl());
 * ```
 */
export function rpcService<T>(definition: ServiceDefinition<T>) {
  return <C extends abstract new (...args: never[]) => Implementation<T>>(target: C, _context: ClassDecoratorContext<C>): void => {
    definitions.set(target, definition as ServiceDefinition<unknown>);
  };
}

/** The definition an instance's class was decorated with by {@link rpcService}, if any. */
export function definitionOf(instance: object): ServiceDefinition<unknown> | undefined {
  let proto: unknown = Object.getPrototypeOf(instance);
  while (typeof proto === "object" && proto !== null) {
    const found = definitions.get((proto as { constructor: object }).constructor);
    if (found !== undefined) return found;
    proto = Object.getPrototypeOf(proto);
  }
  return undefined;
}
