import { badOption, type Registry } from "@farcall/core/extension";
import { zookeeperRegistry, type ZookeeperRegistryOptions } from "./zookeeper-registry.js";

const hostPort = /^[A-Za-z0-9_.-]{1,255}:\d{1,5}$/;
const durations = ["sessionTimeoutMs", "requestTimeoutMs", "cacheGraceMs"] as const;

function decode(part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return badOption("registry", `zookeeper address: malformed percent-encoding in the ${what}`);
  }
}

/**
 * The options of a `zookeeper://[user:password@]host:port[,host:port…][/root][?param=value&…]`
 * address (the form `FARCALL_REGISTRY` and the config file's `registry.address` take). Parameters:
 * `sessionTimeoutMs`, `requestTimeoutMs`, `cacheGraceMs` (integers), `cacheDir` (a percent-encoded
 * path, or `false`). `user:password` (percent-encoded) are digest credentials.
 * @throws FarcallError `invalid_argument` (`bad_option`, option `registry`) for a malformed
 * address; the message never repeats the password.
 */
export function parseZookeeperAddress(address: string): ZookeeperRegistryOptions {
  const match = /^zookeeper:\/\/(?:([^@/?]*)@)?([^@/?]+)(\/[^?]*)?(?:\?(.*))?$/.exec(address);
  if (match === null) badOption("registry", "not a zookeeper://[user:password@]host:port[,host:port][/root][?…] address");
  const [, userinfo, hostList = "", rootPart, query = ""] = match;
  const hosts = hostList.split(",");
  if (!hosts.every((h) => hostPort.test(h))) badOption("registry", `zookeeper hosts must be host:port[,host:port]: ${JSON.stringify(hostList.slice(0, 200))}`);
  const options: { -readonly [K in keyof ZookeeperRegistryOptions]: ZookeeperRegistryOptions[K] } = { connect: hosts.join(",") };
  if (rootPart !== undefined && rootPart !== "" && rootPart !== "/") options.root = rootPart.replace(/\/+$/, "");
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(":");
    if (colon <= 0) badOption("registry", "zookeeper credentials must be user:password@");
    options.digest = { user: decode(userinfo.slice(0, colon), "user"), password: decode(userinfo.slice(colon + 1), "password") };
  }
  const seen = new Set<string>();
  for (const pair of query.split("&")) {
    if (pair === "") continue;
    const equals = pair.indexOf("=");
    const key = equals < 0 ? pair : pair.slice(0, equals);
    const value = equals < 0 ? "" : pair.slice(equals + 1);
    if (seen.has(key)) badOption("registry", `zookeeper address parameter ${JSON.stringify(key.slice(0, 100))} given twice`);
    seen.add(key);
    if ((durations as readonly string[]).includes(key)) {
      if (!/^\d{1,9}$/.test(value)) badOption("registry", `${key} must be a number of milliseconds`);
      options[key as (typeof durations)[number]] = Number(value);
    } else if (key === "cacheDir") {
      if (value === "") badOption("registry", "cacheDir must be a percent-encoded path, or false");
      options.cacheDir = value === "false" ? false : decode(value, "cacheDir");
    } else {
      badOption("registry", `unknown zookeeper address parameter ${JSON.stringify(key.slice(0, 100))}`);
    }
  }
  return options;
}

/**
 * The registry of a `zookeeper://` address ({@link parseZookeeperAddress}). This is the plugin
 * entry `@farcall/core` loads for the `zookeeper` scheme.
 * @throws FarcallError `invalid_argument` (`bad_option`) for a malformed address or options.
 */
export function registryFromAddress(address: string): Registry {
  return zookeeperRegistry(parseZookeeperAddress(address));
}
