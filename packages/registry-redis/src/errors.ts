import { type FarcallError, registryClosedError, registryError } from "@farcall/core/extension";

export { badOption, encodeEndpoint } from "@farcall/core/extension";

/** `unavailable`, reason `registry_closed`: `register` on a closed registry. */
export function closedError(): FarcallError {
  return registryClosedError("redis");
}

/** `unavailable`: Redis did not complete `what` (unreachable, timed out, or refused). */
export function redisError(what: string, cause: unknown): FarcallError {
  return registryError("redis", what, cause);
}
