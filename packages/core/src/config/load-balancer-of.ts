import { adaptive } from "../cluster/load-balancers/adaptive.js";
import { checkHashKey, consistentHash, type HashKey } from "../cluster/load-balancers/consistent-hash.js";
import { leastActive } from "../cluster/load-balancers/least-active.js";
import type { LoadBalancer } from "../cluster/load-balancers/load-balancer.js";
import { roundRobin } from "../cluster/load-balancers/round-robin.js";
import { shortestResponse } from "../cluster/load-balancers/shortest-response.js";
import { weightedRandom } from "../cluster/load-balancers/weighted-random.js";
import { badOption } from "../errors/farcall-error.js";

/** The load balancers that can be chosen by name (in code, `FARCALL_LOAD_BALANCER` or `cluster.loadBalancer`). */
export const loadBalancerNames = ["random", "roundRobin", "leastActive", "consistentHash", "shortestResponse", "adaptive"] as const;

/** One of {@link loadBalancerNames}. */
export type LoadBalancerName = (typeof loadBalancerNames)[number];

/** Options a named balancer takes from the client's options. */
export interface NamedBalancerOptions {
  /** For `consistentHash`; ignored by the others. */
  readonly hashKey?: HashKey | undefined;
}

/**
 * Checks a `loadBalancer` option (a name or a `LoadBalancer` value) and, when given, a `hashKey`.
 * @throws FarcallError `invalid_argument` (`bad_option`) naming the option.
 */
export function checkLoadBalancer(value: unknown, hashKey?: unknown): void {
  const known = (loadBalancerNames as readonly unknown[]).includes(value);
  const balancer = typeof value === "object" && value !== null && typeof (value as Partial<LoadBalancer>).pick === "function";
  if (!known && !balancer) badOption("loadBalancer", `must be one of ${loadBalancerNames.join(", ")} or a LoadBalancer value, got ${JSON.stringify(value)}`);
  if (hashKey !== undefined) checkHashKey(hashKey);
}

/**
 * The balancer a client uses: a `LoadBalancer` value as it is, or a new instance of the named one
 * (every client gets its own, since round robin keeps state per instance).
 * @throws FarcallError `invalid_argument` (`bad_option`) for an unknown name or a bad `hashKey`.
 */
export function loadBalancerOf(value: LoadBalancerName | LoadBalancer | undefined, options: NamedBalancerOptions = {}): LoadBalancer {
  if (typeof value === "object") return value;
  switch (value) {
    case undefined:
    case "random":
      return weightedRandom();
    case "roundRobin":
      return roundRobin();
    case "leastActive":
      return leastActive();
    case "consistentHash":
      return consistentHash(options.hashKey === undefined ? {} : { hashKey: options.hashKey });
    case "shortestResponse":
      return shortestResponse();
    case "adaptive":
      return adaptive();
    default:
      return badOption("loadBalancer", `unknown load balancer ${JSON.stringify(value)}`);
  }
}
