import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { debuglog } from "node:util";
import type { Endpoint, Registration, Registry, Unwatch, WatchOptions } from "@farcall/core/extension";
import { defaultRegistryCacheDir, RegistryCache, RulesWrites, WatchDelivery } from "@farcall/core/extension";
import { createEtcdClient, type EtcdAuth } from "./etcd-client.js";
import { checkPrefix, consumersPrefix, providersPrefix, rulesKey } from "./etcd-keys.js";
import { OwnedKeys, type OwnedKey } from "./etcd-owned-keys.js";
import { rulesBytes, RulesWatch, writeRulesKey } from "./etcd-rules.js";
import { ServiceWatch } from "./etcd-service-watch.js";
import { badOption, closedError, encodeEndpoint, etcdError } from "./errors.js";

const debug = debuglog("farcall:registry");

/** Options of {@link etcdRegistry}; durations in milliseconds unless the name says otherwise. */
export interface EtcdRegistryOptions {
  /**
   * The cluster's client URLs as `host:port`, one string or several (a comma-separated string is
   * split), e.g. `"127.0.0.1:2379"`. Required. Plain gRPC (no TLS).
   */
  readonly hosts: string | readonly string[];
  /** The key prefix this registry uses. Default `"/farcall"`. */
  readonly prefix?: string;
  /**
   * TTL of the registry instance's lease, in seconds: a provider that dies without closing is
   * unlisted about this long after its last keepalive (sent every TTL/3). Default 10, 1..3600.
   * etcd raises a TTL under its minimum, 1.5 × its election timeout (by default 1000 ms, so 2 s).
   */
  readonly ttlSeconds?: number;
  /**
   * Deadline of each etcd request, and the longest `register` waits for etcd (retrying) before
   * it rejects. Default 10000, 100..600000.
   */
  readonly requestTimeoutMs?: number;
  /**
   * Directory of the consumer's cache of the last good provider list per service, used when a
   * watch starts and etcd does not answer within `cacheGraceMs`; `false` for none. Default
   * `$XDG_CACHE_HOME/farcall/registry`, else `~/.cache/farcall/registry`.
   */
  readonly cacheDir?: string | false;
  /** How long a new watch waits for etcd before it delivers the cached list. Default 300, 0..60000. */
  readonly cacheGraceMs?: number;
  /**
   * etcd user and password (etcd's own authentication; its roles decide what the user may read
   * and write). Default none.
   */
  readonly auth?: EtcdAuth;
}

interface ResolvedOptions {
  readonly hosts: readonly string[];
  readonly prefix: string;
  readonly ttlSeconds: number;
  readonly requestTimeoutMs: number;
  readonly cacheDir: string | false;
  readonly cacheGraceMs: number;
  readonly auth: EtcdAuth | undefined;
}

const hostPort = /^(?:[A-Za-z0-9_.-]{1,255}|\[[0-9A-Fa-f:.]{2,45}\]):\d{1,5}$/;

function integer(name: string, value: unknown, fallback: number, min: number, max: number, unit: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    badOption(name, `expected an integer number of ${unit} ${min}..${max}`);
  }
  return value;
}

function checkHosts(value: unknown): readonly string[] {
  const list = typeof value === "string" ? value.split(",") : value;
  if (!Array.isArray(list) || list.length === 0 || list.length > 64 || !list.every((h) => typeof h === "string" && hostPort.test(h))) {
    badOption("hosts", "expected host:port, or a list of them");
  }
  return Object.freeze([...(list as string[])]);
}

function checkAuth(value: unknown): EtcdAuth | undefined {
  if (value === undefined) return undefined;
  const { user, password } = (value ?? {}) as Partial<EtcdAuth>;
  if (typeof user !== "string" || !/^[^:\s]{1,256}$/.test(user) || typeof password !== "string" || password.length === 0 || password.length > 1024) {
    badOption("auth", "expected { user, password }: a user without ':' or spaces and a non-empty password");
  }
  return Object.freeze({ user, password });
}

function resolveOptions(options: EtcdRegistryOptions): ResolvedOptions {
  if (typeof options !== "object" || options === null) badOption("options", "expected an object");
  const cacheDir: unknown = options.cacheDir;
  if (cacheDir !== undefined && cacheDir !== false && (typeof cacheDir !== "string" || cacheDir === "" || cacheDir.length > 4096)) {
    badOption("cacheDir", "expected a directory path, or false for no cache file");
  }
  return Object.freeze({
    hosts: checkHosts(options.hosts),
    prefix: checkPrefix(options.prefix ?? "/farcall"),
    ttlSeconds: integer("ttlSeconds", options.ttlSeconds, 10, 1, 3600, "seconds"),
    requestTimeoutMs: integer("requestTimeoutMs", options.requestTimeoutMs, 10_000, 100, 600_000, "milliseconds"),
    cacheDir: cacheDir === undefined ? defaultRegistryCacheDir() : cacheDir,
    cacheGraceMs: integer("cacheGraceMs", options.cacheGraceMs, 300, 0, 60_000, "milliseconds"),
    auth: checkAuth(options.auth),
  });
}

/**
 * A {@link Registry} on etcd v3 (3.4 or later), built on the etcd3 client.
 *
 * Layout: `<prefix>/<service>/providers/<pid>-<instance>-<n>`, one key per registration holding
 * the endpoint as JSON, and `<prefix>/<service>/consumers/<pid>-<instance>-<n>` per watch
 * (service URI-encoded; names unique to the process incarnation). Every key of a registry
 * instance is attached to its one lease, kept alive by etcd3 (a keepalive every TTL/3).
 *
 * Leases: a disconnect keeps everything (etcd keeps the lease for its TTL, and a restarted etcd
 * gives it a full TTL again). When the lease is lost (etcd says it expired, e.g. after the
 * process was frozen; or no keepalive got through for 2 × TTL) a new one is granted at once and
 * every owned key put under it, retried with a bounded backoff on one timer, never given up.
 * Owned keys deleted or overwritten by someone else are put back at once (each key is watched).
 * `close()` revokes the lease, so etcd deletes the keys at once; a process that dies is unlisted
 * when its lease's TTL runs out.
 *
 * Watches read the provider prefix at one revision, then watch it from the next one, resume
 * from the last applied revision after a disconnect, read everything again when that revision
 * was compacted, parse values as untrusted (size-capped, `parseEndpoint`, must name the watched
 * service), deliver full lists one at a time, and save each non-empty list to the cache file,
 * which a new watch delivers when etcd has not answered within `cacheGraceMs`.
 *
 * Governance rules: the value of the key `<prefix>/<service>/rules`, put without a lease (rules
 * outlive every registry instance). `watchRules` reads it and watches it from the next revision,
 * resumed and re-read exactly as provider watches are; an empty value or no key is no rules.
 * @throws FarcallError `invalid_argument`, reason `bad_option`, for invalid options.
 * `register` rejects with `invalid_argument` (`bad_endpoint`), `unavailable` (`registry_closed`),
 * or `unavailable` when etcd cannot be reached within `requestTimeoutMs` or refuses the write
 * (for instance a user without write permission on the prefix); `publishRules` likewise, with
 * `invalid_argument` (`bad_rules`) for a bad service name or text.
 */
export function etcdRegistry(options: EtcdRegistryOptions): Registry {
  const resolved = resolveOptions(options);
  const { prefix, requestTimeoutMs } = resolved;
  const incarnation = `${process.pid}-${randomBytes(6).toString("hex")}`;
  const closeTimeoutMs = Math.min(requestTimeoutMs, 2000);
  // No socket is opened before the first request.
  const client = createEtcdClient({ hosts: resolved.hosts, requestTimeoutMs, auth: resolved.auth });
  const watches = new Set<ServiceWatch | RulesWatch>();
  const rulesWrites = new RulesWrites();
  const tasks = new Set<Promise<unknown>>();
  const cache = resolved.cacheDir === false ? undefined : new RegistryCache({ dir: resolved.cacheDir, scope: `etcd://${resolved.hosts.join(",")}${prefix}` });
  const owned = new OwnedKeys({
    client,
    ttlSeconds: resolved.ttlSeconds,
    retryDelayMs: 100,
    maxRetryDelayMs: Math.max(250, Math.min(2000, resolved.ttlSeconds * 250)),
    closeTimeoutMs,
  });
  let sequence = 0;
  let closing: Promise<void> | undefined;

  function track<T>(task: Promise<T>): Promise<T> {
    tasks.add(task);
    const forget = (): void => void tasks.delete(task);
    task.then(forget, forget);
    return task;
  }

  async function registerNow(endpoint: Endpoint): Promise<Registration> {
    if (closing !== undefined) throw closedError();
    const data = Buffer.from(encodeEndpoint(endpoint).json);
    const key: OwnedKey = { key: `${providersPrefix(prefix, endpoint.service)}${incarnation}-${sequence++}`, value: data, optional: false };
    await owned.own(key, requestTimeoutMs);
    debug("etcd: registered %s", key.key);
    let unregistering: Promise<void> | undefined;
    return {
      unregister: () => {
        unregistering ??= track(owned.release(key.key)).catch((error: unknown) => {
          unregistering = undefined; // a later call tries again
          if (closing !== undefined) return; // revoking the lease deleted it
          throw etcdError(`unregister ${endpoint.service}`, error);
        });
        return unregistering;
      },
    };
  }

  function consumerKey(service: string, application: string | undefined): OwnedKey {
    const info = { service, application: application ?? "", host: hostname(), pid: process.pid, startTime: Date.now() };
    return { key: `${consumersPrefix(prefix, service)}${incarnation}-${sequence++}`, value: Buffer.from(JSON.stringify(info)), optional: true };
  }

  function watch(service: string, onChange: (endpoints: readonly Endpoint[]) => void, watchOptions?: WatchOptions): Unwatch {
    if (closing !== undefined) return () => {};
    const serviceWatch = new ServiceWatch({
      client,
      service,
      prefix: providersPrefix(prefix, service),
      retryDelayMs: 250,
      maxRetryDelayMs: Math.min(1000, requestTimeoutMs),
      closeTimeoutMs,
      delivery: new WatchDelivery(onChange),
      cache,
      cacheGraceMs: resolved.cacheGraceMs,
    });
    watches.add(serviceWatch);
    serviceWatch.kick();
    const consumer = consumerKey(service, watchOptions?.application);
    owned.ownInBackground(consumer);
    return () => {
      if (!watches.delete(serviceWatch)) return;
      void track(serviceWatch.stop());
      void track(owned.release(consumer.key).catch((error: unknown) => debug("etcd: removing %s failed: %o", consumer.key, error)));
    };
  }

  async function publishRulesNow(service: string, value: Buffer | undefined): Promise<void> {
    if (closing !== undefined) throw closedError();
    try {
      await writeRulesKey(client, rulesKey(prefix, service), value, requestTimeoutMs, () => closing !== undefined);
    } catch (error) {
      if (closing !== undefined) throw closedError();
      throw etcdError(`publish the rules of ${service}`, error);
    }
    debug("etcd: rules of %s %s", service, value === undefined ? "deleted" : "published");
  }

  function watchRules(service: string, onChange: (rules: string | undefined) => void): Unwatch {
    if (closing !== undefined) return () => {};
    const rulesWatch = new RulesWatch({
      client,
      key: rulesKey(prefix, service),
      retryDelayMs: 250,
      maxRetryDelayMs: Math.min(1000, requestTimeoutMs),
      closeTimeoutMs,
      onChange,
    });
    watches.add(rulesWatch);
    rulesWatch.kick();
    return () => {
      if (watches.delete(rulesWatch)) void track(rulesWatch.stop());
    };
  }

  async function closeAll(): Promise<void> {
    const stopped = [...watches].map((w) => w.stop());
    watches.clear();
    // Registrations in flight fail with registry_closed; revoking the lease deletes every key.
    await Promise.allSettled([...stopped, owned.close()]);
    await Promise.allSettled([...tasks]);
    client.close();
    await cache?.flush();
  }

  return {
    kind: "etcd",
    register: (endpoint) => track(registerNow(endpoint)),
    watch,
    publishRules: async (service, rules) => {
      const value = rulesBytes(service, rules);
      if (closing !== undefined) throw closedError();
      return track(rulesWrites.run(service, () => publishRulesNow(service, value)));
    },
    watchRules,
    close: () => (closing ??= closeAll()),
  };
}
