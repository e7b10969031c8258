import type { Call } from "../../call/call.js";
import { badOption } from "../../errors/farcall-error.js";
import type { Endpoint } from "../../registry/endpoint.js";
import { HashRing, hashString } from "./hash-ring.js";
import type { LoadBalancer } from "./load-balancer.js";
import { weightedRandom } from "./weighted-random.js";
import { scalarText } from "../../call/scalar-text.js";

/**
 * Where the consistent-hash balancer reads a call's key (sticky sessions: calls with the same key
 * go to the same provider):
 * - `{ argument: i }`: the call's argument at index `i` (0-based, 0..255);
 * - `{ metadata: "name" }`: the call's metadata value of that name (set with `withOptions`);
 * - a function of the call (code only).
 *
 * A string key is hashed as is; a number, bigint or boolean as `String(value)`. A call without a
 * key (argument or metadata value missing, or of another type) is balanced by weighted random.
 */
export type HashKey = { readonly argument: number } | { readonly metadata: string } | ((call: Call) => string | number | undefined);

/** Options of {@link consistentHash}. */
export interface ConsistentHashOptions {
  /** Where the key comes from. Default `{ argument: 0 }` (the first argument, as in Dubbo). */
  readonly hashKey?: HashKey;
  /** Points each endpoint owns on the ring, 1..10000. Default 160 (Dubbo's). More: keys spread more evenly, rings take longer to build. */
  readonly virtualNodes?: number;
  /** Uniform random numbers in [0, 1), for calls without a key. Default `Math.random`. */
  readonly random?: () => number;
}

const defaultHashKey: HashKey = Object.freeze({ argument: 0 });

/**
 * Checks a {@link HashKey} option.
 * @throws FarcallError `invalid_argument` (`bad_option`, `details.option` = `option`) for anything else.
 */
export function checkHashKey(value: unknown, option = "hashKey"): asserts value is HashKey {
  if (typeof value === "function") return;
  if (typeof value === "object" && value !== null) {
    const keys = Object.keys(value);
    const o = value as Record<string, unknown>;
    if (keys.length === 1 && keys[0] === "argument" && Number.isInteger(o["argument"]) && (o["argument"] as number) >= 0 && (o["argument"] as number) <= 255) return;
    if (keys.length === 1 && keys[0] === "metadata" && typeof o["metadata"] === "string" && /^.{1,256}$/su.test(o["metadata"])) return;
  }
  badOption(option, `must be { argument: <integer 0..255> }, { metadata: "<name, 1..256 characters>" } or a function of the call, got ${describe(value)}`);
}

function describe(value: unknown): string {
  if (typeof value === "object" && value !== null) {
    try {
      return JSON.stringify(value).slice(0, 100);
    } catch {
      return "an object";
    }
  }
  return String(value);
}

/**
 * Consistent hash: calls with the same key go to the same endpoint while it is in the list, for
 * caches and sessions held by one provider. Keys are placed on a {@link HashRing} of
 * `virtualNodes` points per endpoint address, built once per snapshot (and reused as is for a new
 * snapshot of the same addresses): when one of n endpoints leaves, only its keys (about 1/n) move;
 * when one joins, it takes about 1/(n+1). A retry (the call's `tried` excluded) goes to the next
 * endpoint clockwise, where the key would go if the tried one left. Weights and warm-up are
 * ignored, except that endpoints of weight 0 own no key while others have weight.
 * @throws FarcallError `invalid_argument` (`bad_option`) for a bad `hashKey` or `virtualNodes`.
 */
export function consistentHash(options: ConsistentHashOptions = {}): LoadBalancer {
  const hashKey = options.hashKey === undefined ? defaultHashKey : options.hashKey;
  checkHashKey(hashKey);
  const virtualNodes = options.virtualNodes ?? 160;
  if (!Number.isInteger(virtualNodes) || virtualNodes < 1 || virtualNodes > 10_000) badOption("virtualNodes", "must be an integer in 1..10000");
  const keyOf = keyReader(hashKey);
  const fallback = weightedRandom(options.random === undefined ? {} : { random: options.random });
  let ring: HashRing | undefined;
  return {
    name: "consistentHash",
    pick(endpoints: readonly Endpoint[], call: Call, now: number): Endpoint | undefined {
      const n = endpoints.length;
      if (n <= 1) return endpoints[0];
      const key = keyOf(call);
      if (key === undefined) return fallback.pick(endpoints, call, now);
      const hash = hashString(key);
      if (call.tried.length === 0) {
        if (ring?.endpoints !== endpoints) ring = ring?.reuseFor(endpoints) ?? HashRing.build(endpoints, virtualNodes);
        return endpoints[ring.locate(hash)];
      }
      // A retry: `endpoints` is the snapshot minus the tried providers.
      const allowed = new Set(endpoints);
      return ring?.locateAccepted(hash, (e) => allowed.has(e)) ?? HashRing.build(endpoints, virtualNodes).locateAccepted(hash, () => true);
    },
  };
}

function keyReader(hashKey: HashKey): (call: Call) => string | undefined {
  if (typeof hashKey === "function") return (call) => scalarText(hashKey(call));
  if ("argument" in hashKey) {
    const index = hashKey.argument;
    return (call) => scalarText(call.args[index]);
  }
  const name = hashKey.metadata;
  return (call) => scalarText(call.metadata[name]);
}

