import type { MethodDefinition, ServiceDefinition } from "../contract/define-service.js";
import type { Implementation } from "../contract/implementation.js";

export type { Implementation } from "../contract/implementation.js";
import { badOption } from "../errors/farcall-error.js";
import type { ConcurrencyLimiter, RateLimiter } from "../governance/limiter.js";
import { encodeRoute, routeKey } from "../protocol/binary/frame-encoder.js";

/**
 * The provider-side protection of one method, checked by the server on the request's header
 * before its body is decoded. A refused request is answered `resource_exhausted` with
 * `details.reason` and `details.retryAfterMs` (a oneway one is dropped):
 * - `concurrency` full: reason `"concurrency_limited"`, `retryAfterMs` 0. An admitted call holds
 *   one permit from admission (including any leaky bucket wait) until it settles, however it ends;
 *   the permit is released exactly once.
 * - `rateLimiter` returns -1: reason `"rate_limited"`, `retryAfterMs` 0 (the limiter gives no
 *   estimate). A delay above 0 (leaky bucket) makes the call wait that many ms before it runs.
 *
 * The concurrency limit is checked first, so a request it refuses takes no rate token. Limiters are
 * built by the caller and may be shared between methods.
 */
export interface MethodGuard {
  readonly rateLimiter?: RateLimiter;
  readonly concurrency?: ConcurrencyLimiter;
}

/** One routable method of one provided service. */
export interface Target {
  readonly definition: ServiceDefinition<unknown>;
  readonly method: MethodDefinition;
  /** Called with `this` = `self`, the call context first, then the arguments the consumer sent. */
  readonly fn: (...args: unknown[]) => unknown;
  readonly self: object;
  /** The method's protection, or undefined when it has none. */
  readonly guard: MethodGuard | undefined;
}

/** The provider's routing table: route key (from the frame header) to target. */
export class ServiceTable {
  readonly #targets = new Map<string, Target>();
  readonly #services: Array<ServiceDefinition<unknown>> = [];

  /**
   * Adds a service.
   * @param guards called once per method name, here; returns that method's {@link MethodGuard}, or
   *   undefined for none. Default: no method is guarded.
   * @throws FarcallError `invalid_argument` (`bad_option`) for a missing method or a duplicate.
   */
  add<T>(definition: ServiceDefinition<T>, implementation: Implementation<T>, guards?: (method: string) => MethodGuard | undefined): void {
    const self = implementation as unknown as Record<string, unknown>;
    // Everything is checked before anything is added: a refused service leaves no method behind.
    const entries: Array<[string, Target]> = [];
    for (const method of definition.methods.values()) {
      const fn = self[method.name];
      if (typeof fn !== "function") badOption(`implementation.${method.name}`, `${definition.name} must implement ${method.name}`);
      const key = routeKey(encodeRoute(definition.name, definition.version, definition.group, method.name));
      if (this.#targets.has(key)) badOption("definition", `${definition.name}:${definition.version} (group ${JSON.stringify(definition.group)}) is provided twice`);
      const guard = guards?.(method.name);
      const empty = guard === undefined || (guard.rateLimiter === undefined && guard.concurrency === undefined);
      entries.push([
        key,
        {
          definition: definition as ServiceDefinition<unknown>,
          method,
          fn: fn as (...args: unknown[]) => unknown,
          self,
          guard: empty ? undefined : guard,
        },
      ]);
    }
    for (const [key, target] of entries) this.#targets.set(key, target);
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
