import { defaultRegistryCacheDir } from "@farcall/core/extension";
import { badOption } from "./errors.js";

/** Options of `redisRegistry`; every duration in milliseconds. */
export interface RedisRegistryOptions {
  /** Redis host name or IP address. Default `"127.0.0.1"`. */
  readonly host?: string;
  /** Redis port. Default 6379. */
  readonly port?: number;
  /** Database number (`SELECT`). Default 0, 0..1023. */
  readonly db?: number;
  /** ACL user name (Redis 6+); only with `password`. Default none (the `default` user). */
  readonly username?: string;
  /** Password (`AUTH`). Default none. Never logged nor repeated in error messages. */
  readonly password?: string;
  /**
   * First part of every key and of the change channel, e.g. `farcall:{users.UserService}:providers`
   * and `farcall:changes`: registries with one prefix on one server and db see each other.
   * Default `"farcall"`; letters, digits and `_.-`, 1..64 characters.
   */
  readonly prefix?: string;
  /** How often each registration (and each watching consumer) reports to Redis. Default 5000, 100..600000. */
  readonly heartbeatMs?: number;
  /**
   * A provider whose last report is older than this is removed by the next sweep: a process
   * killed without unregistering leaves the lists between `expireAfterMs` and `expireAfterMs +
   * sweepMs` after its last report. At least 3 × `heartbeatMs`. Default 15000, 300..3600000.
   * Every registry of one prefix should use the same `heartbeatMs` and `expireAfterMs`.
   */
  readonly expireAfterMs?: number;
  /**
   * How often this registry calls the sweep script (±10 %). Whatever the number of registries,
   * one sweep at most runs per 0.8 × `sweepMs`. At most (`expireAfterMs` − `heartbeatMs`) / 2.
   * Default 5000, 50..600000.
   */
  readonly sweepMs?: number;
  /** How often a consumer reads the global version, in case pub/sub missed a change. Default 2000, 50..600000. */
  readonly pollMs?: number;
  /**
   * Longest wait for one Redis command, and for a connection before `register` (or one read of
   * the watches) gives up with `unavailable`. Default 10000, 100..600000.
   */
  readonly requestTimeoutMs?: number;
  /**
   * Directory of the consumer's cache of the last good provider list per service, used when a
   * watch starts and Redis does not answer within `cacheGraceMs`; `false` for none. Default
   * `$XDG_CACHE_HOME/farcall/registry`, else `~/.cache/farcall/registry`.
   */
  readonly cacheDir?: string | false;
  /** How long a new watch waits for Redis before it delivers the cached list. Default 300, 0..60000. */
  readonly cacheGraceMs?: number;
}

/** {@link RedisRegistryOptions} validated, defaulted and frozen. */
export interface ResolvedRedisOptions {
  readonly host: string;
  readonly port: number;
  readonly db: number;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly prefix: string;
  readonly heartbeatMs: number;
  readonly expireAfterMs: number;
  readonly sweepMs: number;
  readonly pollMs: number;
  readonly requestTimeoutMs: number;
  readonly cacheDir: string | false;
  readonly cacheGraceMs: number;
}

function integer(name: string, value: unknown, fallback: number, min: number, max: number, what = "an integer number of milliseconds"): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    badOption(name, `expected ${what} ${min}..${max}`);
  }
  return value;
}

function optionalString(name: string, value: unknown, maxLength: number): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || value.length === 0 || value.length > maxLength) badOption(name, `expected a non-empty string of at most ${maxLength} characters`);
  return value;
}

/**
 * Validates `options` once, at construction.
 * @throws FarcallError `invalid_argument`, reason `bad_option`, naming the option; a message never
 * repeats the password.
 */
export function resolveRedisOptions(options: RedisRegistryOptions): ResolvedRedisOptions {
  if (typeof options !== "object" || options === null) badOption("options", "expected an object");
  const host: unknown = options.host ?? "127.0.0.1";
  if (typeof host !== "string" || !/^(?:[A-Za-z0-9_.-]{1,255}|\[[0-9A-Fa-f:.]{2,45}\])$/.test(host)) {
    badOption("host", "expected a host name or an IP address ([…] for IPv6)");
  }
  const username = optionalString("username", options.username, 256);
  const password = optionalString("password", options.password, 4096);
  if (username !== undefined && password === undefined) badOption("username", "a user name needs a password");
  const prefix: unknown = options.prefix ?? "farcall";
  if (typeof prefix !== "string" || !/^[A-Za-z0-9_.-]{1,64}$/.test(prefix)) badOption("prefix", "expected 1..64 letters, digits or _.-");
  const heartbeatMs = integer("heartbeatMs", options.heartbeatMs, 5000, 100, 600_000);
  const expireAfterMs = integer("expireAfterMs", options.expireAfterMs, Math.max(15_000, 3 * heartbeatMs), 300, 3_600_000);
  if (expireAfterMs < 3 * heartbeatMs) badOption("expireAfterMs", "expected at least 3 × heartbeatMs");
  const sweepMs = integer("sweepMs", options.sweepMs, Math.min(5000, Math.floor((expireAfterMs - heartbeatMs) / 2)), 50, 600_000);
  if (sweepMs > (expireAfterMs - heartbeatMs) / 2) badOption("sweepMs", "expected at most (expireAfterMs − heartbeatMs) / 2");
  const cacheDir: unknown = options.cacheDir;
  if (cacheDir !== undefined && cacheDir !== false && (typeof cacheDir !== "string" || cacheDir === "" || cacheDir.length > 4096)) {
    badOption("cacheDir", "expected a directory path, or false for no cache file");
  }
  return Object.freeze({
    host: host.startsWith("[") ? host.slice(1, -1) : host,
    port: integer("port", options.port, 6379, 1, 65_535, "a TCP port"),
    db: integer("db", options.db, 0, 0, 1023, "a database number"),
    username,
    password,
    prefix,
    heartbeatMs,
    expireAfterMs,
    sweepMs,
    pollMs: integer("pollMs", options.pollMs, 2000, 50, 600_000),
    requestTimeoutMs: integer("requestTimeoutMs", options.requestTimeoutMs, 10_000, 100, 600_000),
    cacheDir: cacheDir === undefined ? defaultRegistryCacheDir() : cacheDir,
    cacheGraceMs: integer("cacheGraceMs", options.cacheGraceMs, 300, 0, 60_000),
  });
}
