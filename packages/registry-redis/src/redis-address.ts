import { badOption, type Registry } from "@farcall/core/extension";
import type { RedisRegistryOptions } from "./redis-options.js";
import { redisRegistry } from "./redis-registry.js";

const integers = ["heartbeatMs", "expireAfterMs", "sweepMs", "pollMs", "requestTimeoutMs", "cacheGraceMs"] as const;

function decode(part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return badOption("registry", `redis address: malformed percent-encoding in the ${what}`);
  }
}

/**
 * The options of a `redis://[[user]:password@]host[:port][/db][?param=value&…]` address (the form
 * `FARCALL_REGISTRY` and the config file's `registry.address` take). `host` is a name, an IPv4
 * address or a bracketed IPv6 address; the port defaults to 6379 and the db to 0. Credentials are
 * percent-encoded: `:password@` (the `default` user) or `user:password@` (an ACL user).
 * Parameters: `prefix`, `heartbeatMs`, `expireAfterMs`, `sweepMs`, `pollMs`, `requestTimeoutMs`,
 * `cacheGraceMs` (integers), `cacheDir` (a percent-encoded path, or `false`).
 * @throws FarcallError `invalid_argument` (`bad_option`, option `registry`) for a malformed
 * address; the message never repeats the password.
 */
export function parseRedisAddress(address: string): RedisRegistryOptions {
  const match = /^redis:\/\/(?:([^@/?]*)@)?([^@/?]+?)(?::(\d{1,5}))?(?:\/([^?]*))?(?:\?(.*))?$/.exec(address);
  if (match === null) badOption("registry", "not a redis://[[user]:password@]host[:port][/db][?…] address");
  const [, userinfo, host = "", port, dbPart, query = ""] = match;
  if (!/^(?:[A-Za-z0-9_.-]{1,255}|\[[0-9A-Fa-f:.]{2,45}\])$/.test(host)) badOption("registry", `redis host must be a name or an address: ${JSON.stringify(host.slice(0, 200))}`);
  const options: { -readonly [K in keyof RedisRegistryOptions]: RedisRegistryOptions[K] } = { host };
  if (port !== undefined) options.port = Number(port);
  if (dbPart !== undefined && dbPart !== "") {
    if (!/^\d{1,4}$/.test(dbPart)) badOption("registry", "the path of a redis address is the database number, e.g. /0");
    options.db = Number(dbPart);
  }
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(":");
    if (colon < 0) badOption("registry", "redis credentials must be :password@ or user:password@");
    const password = decode(userinfo.slice(colon + 1), "password");
    if (password === "") badOption("registry", "redis credentials must be :password@ or user:password@ with a password");
    options.password = password;
    if (colon > 0) options.username = decode(userinfo.slice(0, colon), "user");
  }
  const seen = new Set<string>();
  for (const pair of query.split("&")) {
    if (pair === "") continue;
    const equals = pair.indexOf("=");
    const key = equals < 0 ? pair : pair.slice(0, equals);
    const value = equals < 0 ? "" : pair.slice(equals + 1);
    if (seen.has(key)) badOption("registry", `redis address parameter ${JSON.stringify(key.slice(0, 100))} given twice`);
    seen.add(key);
    if ((integers as readonly string[]).includes(key)) {
      if (!/^\d{1,9}$/.test(value)) badOption("registry", `${key} must be a number of milliseconds`);
      options[key as (typeof integers)[number]] = Number(value);
    } else if (key === "prefix") {
      options.prefix = decode(value, "prefix");
    } else if (key === "cacheDir") {
      if (value === "") badOption("registry", "cacheDir must be a percent-encoded path, or false");
      options.cacheDir = value === "false" ? false : decode(value, "cacheDir");
    } else {
      badOption("registry", `unknown redis address parameter ${JSON.stringify(key.slice(0, 100))}`);
    }
  }
  return options;
}

/**
 * The registry of a `redis://` address ({@link parseRedisAddress}). This is the plugin entry
 * `@farcall/core` loads for the `redis` scheme.
 * @throws FarcallError `invalid_argument` (`bad_option`) for a malformed address or options.
 */
export function registryFromAddress(address: string): Registry {
  return redisRegistry(parseRedisAddress(address));
}
