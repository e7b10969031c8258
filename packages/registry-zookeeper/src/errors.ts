import { type FarcallError, registryClosedError, registryError } from "@farcall/core/extension";

export { badOption, encodeEndpoint } from "@farcall/core/extension";

/** `unavailable`, reason `registry_closed`: `register` on a closed registry. */
export function closedError(): FarcallError {
  return registryClosedError("zookeeper");
}

/** `unavailable`: ZooKeeper did not complete `what` (unreachable, session lost, or refused). */
export function zookeeperError(what: string, cause: unknown): FarcallError {
  return registryError("zookeeper", what, cause);
}
