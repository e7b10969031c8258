import { badOption } from "../errors/farcall-error.js";
import { directRegistry, parseDirectAddress } from "../registry/direct-registry.js";
import { localRegistry } from "../registry/local-registry.js";
import { memoryRegistry } from "../registry/memory-registry.js";
import type { Registry } from "../registry/registry.js";
import { lazyRegistry } from "../registry/lazy-registry.js";
import { FarcallError } from "../errors/farcall-error.js";

interface RegistryPlugin {
  registryFromAddress(address: string): Registry;
}

/**
 * The registry of a plugin package, imported (by `load`, `import()` unless a test replaces it)
 * when first used; a missing package is a clear error.
 */
export function pluginRegistry(scheme: string, address: string, load: (name: string) => Promise<unknown> = (name) => import(name)): Registry {
  const name = `@farcall/registry-${scheme}`;
  return lazyRegistry(scheme, async () => {
    let plugin: Partial<RegistryPlugin>;
    try {
      plugin = (await load(name)) as Partial<RegistryPlugin>;
    } catch (error) {
      throw new FarcallError("invalid_argument", `registry ${scheme}://… needs the package ${name}: npm install ${name}`, {
        reason: "bad_option",
        details: { option: "registry" },
        cause: error,
        sent: false,
      });
    }
    if (typeof plugin.registryFromAddress !== "function") {
      throw new FarcallError("invalid_argument", `${name} does not export registryFromAddress`, { reason: "bad_option", details: { option: "registry" }, sent: false });
    }
    return plugin.registryFromAddress(address);
  });
}

/**
 * Turns a registry address into a registry: `local` or `local:///path/to/dir` (the embedded
 * registry; the default), `direct://host:port[,host:port]` (a static list), `memory` (this process
 * only; for tests and benchmarks), or `zookeeper://…` / `etcd://…` / `redis://…`, served by the
 * package `@farcall/registry-<scheme>` when it is installed (loaded on first use; it must export
 * `registryFromAddress(address): Registry`).
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
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//.exec(address)?.[1];
  if (scheme === "zookeeper" || scheme === "etcd" || scheme === "redis") return pluginRegistry(scheme, address);
  return badOption("registry", `unknown registry address ${JSON.stringify(address)} (use local, local:///dir, direct://host:port or memory)`);
}
