import type { MethodDefinition, ServiceDefinition } from "../contract/define-service.js";
import type { Implementation } from "../contract/implementation.js";

export type { Implementation } from "../contract/implementation.js";
import { badOption } from "../errors/farcall-error.js";
import { encodeRoute, routeKey } from "../protocol/binary/frame-encoder.js";

/** One routable method of one provided service. */
export interface Target {
  readonly definition: ServiceDefinition<unknown>;
  readonly method: MethodDefinition;
  /** Called with `this` = `self`, the call context first, then the arguments the consumer sent. */
  readonly fn: (...args: unknown[]) => unknown;
  readonly self: object;
}

/** The provider's routing table: route key (from the frame header) to target. */
export class ServiceTable {
  readonly #targets = new Map<string, Target>();
  readonly #services: Array<ServiceDefinition<unknown>> = [];

  /** Adds a service. @throws FarcallError `invalid_argument` (`bad_option`) for a missing method or a duplicate. */
  add<T>(definition: ServiceDefinition<T>, implementation: Implementation<T>): void {
    const self = implementation as unknown as Record<string, unknown>;
    for (const method of definition.methods.values()) {
      const fn = self[method.name];
      if (typeof fn !== "function") badOption(`implementation.${method.name}`, `${definition.name} must implement ${method.name}`);
      const key = routeKey(encodeRoute(definition.name, definition.version, definition.group, method.name));
      if (this.#targets.has(key)) badOption("definition", `${definition.name}:${definition.version} (group ${JSON.stringify(definition.group)}) is provided twice`);
      this.#targets.set(key, {
        definition: definition as ServiceDefinition<unknown>,
        method,
        fn: fn as (...args: unknown[]) => unknown,
        self,
      });
    }
    this.#services.push(definition as ServiceDefinition<unknown>);
  }

  /** The target of a frame's route, or undefined. */
  get(key: string): Target | undefined {
    return this.#targets.get(key);
  }

  get services(): ReadonlyArray<ServiceDefinition<unknown>> {
    return this.#services;
  }
}
