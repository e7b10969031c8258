import { badOption, type Registry } from "@farcall/core/extension";
import { etcdRegistry, type EtcdRegistryOptions } from "./etcd-registry.js";

const hostPort = /^(?:[A-Za-z0-9_.-]{1,255}|\[[0-9A-Fa-f:.]{2,45}\]):\d{1,5}$/;
const durations = ["requestTimeoutMs", "cacheGraceMs"] as const;

function decode(part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return badOption("registry", `etcd address: malformed percent-encoding in the ${what}`);
  }
}

/**
 * The options of an `etcd://[user:password@]host:port[,host:port…][/prefix][?param=value&…]`
 * address (the form `FARCALL_REGISTRY` and the config file's `registry.address` take).
 * Parameters: `ttlSeconds` (integer seconds), `requestTimeoutMs`, `cacheGraceMs` (integer
 * milliseconds), `cacheDir` (a percent-encoded path, or `false`). `user:password`
 * (percent-encoded) are etcd credentials.
 * @throws FarcallError `invalid_argument` (`bad_option`, option `registry`) for a malformed
 * address; the message never repeats the password.
 */
export function parseEtcdAddress(address: string): EtcdRegistryOptions {
  const match = /^etcd:\/\/(?:([^@/?]*)@)?([^@/?]+)(\/[^?]*)?(?:\?(.*))?$/.exec(address);
  if (match === null) badOption("registry", "not an etcd://[user:password@]host:port[,host:port][/prefix][?…] address");
  const [, userinfo, hostList = "", prefixPart, query = ""] = match;
  const hosts = hostList.split(",");
  if (!hosts.every((h) => hostPort.test(h))) badOption("registry", `etcd hosts must be host:port[,host:port]: ${JSON.stringify(hostList.slice(0, 200))}`);
  const options: { -readonly [K in keyof EtcdRegistryOptions]: EtcdRegistryOptions[K] } = { hosts };
  if (prefixPart !== undefined && prefixPart !== "" && prefixPart !== "/") options.prefix = decode(prefixPart.replace(/\/+$/, ""), "prefix");
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(":");
    if (colon <= 0) badOption("registry", "etcd credentials must be user:password@");
    options.auth = { user: decode(userinfo.slice(0, colon), "user"), password: decode(userinfo.slice(colon + 1), "password") };
  }
  const seen = new Set<string>();
  for (const pair of query.split("&")) {
    if (pair === "") continue;
    const equals = pair.indexOf("=");
    const key = equals < 0 ? pair : pair.slice(0, equals);
    const value = equals < 0 ? "" : pair.slice(equals + 1);
    if (seen.has(key)) badOption("registry", `etcd address parameter ${JSON.stringify(key.slice(0, 100))} given twice`);
    seen.add(key);
    if ((durations as readonly string[]).includes(key)) {
      if (!/^\d{1,9}$/.test(value)) badOption("registry", `${key} must be a number of milliseconds`);
      options[key as (typeof durations)[number]] = Number(value);
    } else if (key === "ttlSeconds") {
      if (!/^\d{1,9}$/.test(value)) badOption("registry", "ttlSeconds must be a number of seconds");
      options.ttlSeconds = Number(value);
    } else if (key === "cacheDir") {
      if (value === "") badOption("registry", "cacheDir must be a percent-encoded path, or false");
      options.cacheDir = value === "false" ? false : decode(value, "cacheDir");
    } else {
      badOption("registry", `unknown etcd address parameter ${JSON.stringify(key.slice(0, 100))}`);
    }
  }
  return options;
}

/**
 * The registry of an `etcd://` address ({@link parseEtcdAddress}). This is the plugin entry
 * `@farcall/core` loads for the `etcd` scheme.
 * @throws FarcallError `invalid_argument` (`bad_option`) for a malformed address or options.
 */
export function registryFromAddress(address: string): Registry {
  return etcdRegistry(parseEtcdAddress(address));
}
