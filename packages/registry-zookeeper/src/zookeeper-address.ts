import { badOption, type Registry } from "@farcall/core/extension";
import { zookeeperRegistry } from "./zookeeper-registry.js";

const hostPort = /^[A-Za-z0-9_.-]{1,255}:\d{1,5}$/;

/**
 * The registry of a `zookeeper://host:port[,host:port…][/root][?sessionTimeoutMs=N&requestTimeoutMs=N]`
 * address (the form `FARCALL_REGISTRY` and the config file's `registry.address` take). This is the
 * plugin entry `@farcall/core` loads for the `zookeeper` scheme.
 * @throws FarcallError `invalid_argument` (`bad_option`, option `registry`) for a malformed address.
 */
export function registryFromAddress(address: string): Registry {
  const match = /^zookeeper:\/\/([^/?]+)(\/[^?]*)?(?:\?(.*))?$/.exec(address);
  if (match === null) badOption("registry", `not a zookeeper:// address: ${JSON.stringify(address.slice(0, 200))}`);
  const hosts = (match[1] ?? "").split(",");
  if (!hosts.every((h) => hostPort.test(h))) badOption("registry", `zookeeper hosts must be host:port[,host:port]: ${JSON.stringify(match[1])}`);
  const options: { connect: string; root?: string; sessionTimeoutMs?: number; requestTimeoutMs?: number } = { connect: hosts.join(",") };
  const root = match[2];
  if (root !== undefined && root !== "" && root !== "/") options.root = root.replace(/\/+$/, "");
  for (const pair of (match[3] ?? "").split("&")) {
    if (pair === "") continue;
    const [key, value = ""] = pair.split("=");
    if (key !== "sessionTimeoutMs" && key !== "requestTimeoutMs") badOption("registry", `unknown zookeeper address parameter ${JSON.stringify(key)}`);
    if (!/^\d{1,9}$/.test(value)) badOption("registry", `${key} must be a number of milliseconds`);
    options[key] = Number(value);
  }
  return zookeeperRegistry(options);
}
