import { type FarcallError, registryClosedError, registryError } from "@farcall/core/extension";

export { badOption, encodeEndpoint } from "@farcall/core/extension";

/** `unavailable`, reason `registry_closed`: `register` on a closed registry. */
export function closedError(): FarcallError {
  return registryClosedError("etcd");
}

/** `unavailable`: etcd did not complete `what` (unreachable, lease lost, or refused). */
export function etcdError(what: string, cause: unknown): FarcallError {
  return registryError("etcd", what, cause);
}
