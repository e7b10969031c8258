import { badOption } from "../errors/farcall-error.js";
import { directRegistry, parseDirectAddress } from "../registry/direct-registry.js";
import { localRegistry } from "../registry/local-registry.js";
import { memoryRegistry } from "../registry/memory-registry.js";
import type { Registry } from "../registry/registry.js";

/**
 * Turns a registry address into a registry: `local` or `local:///path/to/dir` (the embedded
 * registry; the default), `direct://host:port[,host:port]` (a static list), `memory` (this process
 * only; for tests and benchmarks).
 * @throws FarcallError `invalid_argument` (`bad_option`, option `registry`) for anything else.
 */
export function registryFromAddress(address: string): Registry {
  if (address === "local") return localRegistry();
  if (address.startsWith("local://")) {
    const directory = address.slice("local://".length);
    if (!directory.startsWith("/")) badOption("registry", `local registry path must be absolute: ${address}`);
    return localRegistry({ directory });
  }
  if (address === "memory") return memoryRegistry();
  if (address.startsWith("direct://")) return directRegistry({ endpoints: parseDirectAddress(address) });
  const scheme = /^([a-z][a-z0-9+.-]*):/.exec(address)?.[1];
  if (scheme === "zookeeper" || scheme === "etcd" || scheme === "redis") {
    badOption("registry", `${scheme} registries come from @farcall/registry-${scheme}: pass its registry value as the registry option`);
  }
  return badOption("registry", `unknown registry address ${JSON.stringify(address)} (use local, local:///dir, direct://host:port or memory)`);
}
