import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { debuglog } from "node:util";
import type { Endpoint, Registration, Registry, Unwatch, WatchOptions } from "@farcall/core/extension";
import { defaultRegistryCacheDir, RegistryCache, RulesWrites, WatchDelivery } from "@farcall/core/extension";
import { badOption, closedError, encodeEndpoint, zookeeperError } from "./errors.js";
import { aclsFor, type ZookeeperDigest } from "./zookeeper-acl.js";
import { OwnedNodes, type OwnedNode } from "./zookeeper-owned-nodes.js";
import { checkRoot, consumersPath, providersPath, rulesPath, servicePath } from "./zookeeper-paths.js";
import { rulesBytes, RulesWatch, writeRulesNode } from "./zookeeper-rules.js";
import { ServiceWatch } from "./zookeeper-service-watch.js";
import { ZookeeperSession } from "./zookeeper-session.js";

const debug = debuglog("farcall:registry");

/** Options of {@link zookeeperRegistry}; every duration in milliseconds. */
export interface ZookeeperRegistryOptions {
  /** ZooKeeper connection string: `host:port[,host:port...][/chroot]`, e.g. `"127.0.0.1:2181"`. Required. */
  readonly connect: string;
  /** The tree this registry uses. Default `"/farcall"`. */
  readonly root?: string;
  /**
   * Session timeout asked of the server (which clamps it to its min/max, by default 2 and 20 ×
   * tickTime): a provider that dies silently is unlisted after about this long. Default 15000,
   * 1000..600000.
   */
  readonly sessionTimeoutMs?: number;
  /** Longest time one ZooKeeper operation waits for a connection and retries. Default 10000, 100..600000. */
  readonly requestTimeoutMs?: number;
  /**
   * Directory of the consumer's cache of the last good provider list per service, used when a
   * watch starts and ZooKeeper does not answer within `cacheGraceMs`; `false` for none. Default
   * `$XDG_CACHE_HOME/farcall/registry`, else `~/.cache/farcall/registry`.
   */
  readonly cacheDir?: string | false;
  /** How long a new watch waits for ZooKeeper before it delivers the cached list. Default 300, 0..60000. */
  readonly cacheGraceMs?: number;
  /**
   * Digest credentials. When set, the nodes this registry creates get ACLs under which only this
   * digest user may create or delete provider nodes (everyone may read). Default none (open ACLs).
   */
  readonly digest?: ZookeeperDigest;
}

interface ResolvedOptions {
  readonly connect: string;
  readonly root: string;
  readonly sessionTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly cacheDir: string | false;
  readonly cacheGraceMs: number;
  readonly digest: ZookeeperDigest | undefined;
}

function duration(name: string, value: unknown, fallback: number, min: number, max = 600_000): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    badOption(name, `expected an integer number of milliseconds ${min}..${max}`);
  }
  return value;
}

function checkDigest(value: unknown): ZookeeperDigest | undefined {
  if (value === undefined) return undefined;
  const { user, password } = (value ?? {}) as Partial<ZookeeperDigest>;
  if (typeof user !== "string" || !/^[^:\s]{1,256}$/.test(user) || typeof password !== "string" || password.length === 0 || password.length > 1024) {
    badOption("digest", "expected { user, password }: a user without ':' or spaces and a non-empty password");
  }
  return Object.freeze({ user, password });
}

function resolveOptions(options: ZookeeperRegistryOptions): ResolvedOptions {
  const connect: unknown = options?.connect;
  if (typeof connect !== "string" || !/^[^\s,/]+(,[^\s,/]+)*(\/\S*)?$/.test(connect) || connect.length > 4096) {
    badOption("connect", "expected host:port[,host:port...][/chroot]");
  }
  const cacheDir: unknown = options.cacheDir;
  if (cacheDir !== undefined && cacheDir !== false && (typeof cacheDir !== "string" || cacheDir === "" || cacheDir.length > 4096)) {
    badOption("cacheDir", "expected a directory path, or false for no cache file");
  }
  return Object.freeze({
    connect,
    root: checkRoot(options.root ?? "/farcall"),
    sessionTimeoutMs: duration("sessionTimeoutMs", options.sessionTimeoutMs, 15_000, 1000),
    requestTimeoutMs: duration("requestTimeoutMs", options.requestTimeoutMs, 10_000, 100),
    cacheDir: cacheDir === undefined ? defaultRegistryCacheDir() : cacheDir,
    cacheGraceMs: duration("cacheGraceMs", options.cacheGraceMs, 300, 0, 60_000),
    digest: checkDigest(options.digest),
  });
}

/**
 * A {@link Registry} on Apache ZooKeeper.
 *
 * Layout: `<root>/<service>/providers/<pid>-<instance>-<n>`, one EPHEMERAL node per registration
 * holding the endpoint as JSON, and `<root>/<service>/consumers/<pid>-<instance>-<n>` per watch
 * (service URI-encoded; node names are unique to the process incarnation, so a restarted process
 * never collides with its predecessor's nodes).
 *
 * Sessions: a disconnect keeps everything (the client reconnects and resumes the session; watches
 * keep their last list). When the server declares the session expired, a new session starts at
 * once and every node this registry owns is re-created and every watch re-read. Owned nodes are
 * also re-created when deleted by hand. `close()` ends the session, so the server deletes the
 * nodes at once; a process that dies is unlisted when its session times out.
 *
 * Watches read the provider list with a child watch re-armed on every event and reconnection,
 * parse node data as untrusted (size-capped, `parseEndpoint`, must name the watched service),
 * deliver full lists one at a time, and save each non-empty list to the cache file, which a new
 * watch delivers when ZooKeeper has not answered within `cacheGraceMs`.
 *
 * Governance rules: the data of the PERSISTENT node `<root>/<service>/rules` (created with the
 * provider nodes' ACL: under `digest`, only that user may write it), so they outlive every
 * session. `watchRules` reads it with a data watch (an existence watch while it is missing),
 * re-armed on every event and reconnection; no data or no node is no rules.
 * @throws FarcallError `invalid_argument`, reason `bad_option`, for invalid options.
 * `register` rejects with `invalid_argument` (`bad_endpoint`), `unavailable` (`registry_closed`),
 * or `unavailable` when ZooKeeper cannot be reached within `requestTimeoutMs` or refuses the write
 * (for instance `NO_AUTH` under another user's ACL); `publishRules` likewise, with
 * `invalid_argument` (`bad_rules`) for a bad service name or text.
 */
export function zookeeperRegistry(options: ZookeeperRegistryOptions): Registry {
  const resolved = resolveOptions(options);
  const { root } = resolved;
  const incarnation = `${process.pid}-${randomBytes(6).toString("hex")}`;
  const acls = aclsFor(resolved.digest);
  const watches = new Set<ServiceWatch | RulesWatch>();
  const rulesWrites = new RulesWrites();
  const tasks = new Set<Promise<unknown>>();
  const cache = resolved.cacheDir === false ? undefined : new RegistryCache({ dir: resolved.cacheDir, scope: `zookeeper://${resolved.connect}${root}` });
  let sequence = 0;
  let closing: Promise<void> | undefined;
  const session = new ZookeeperSession({
    connect: resolved.connect,
    sessionTimeoutMs: resolved.sessionTimeoutMs,
    requestTimeoutMs: resolved.requestTimeoutMs,
    closeTimeoutMs: Math.min(resolved.requestTimeoutMs, 2000),
    digest: resolved.digest === undefined ? undefined : `${resolved.digest.user}:${resolved.digest.password}`,
    onConnected: (newSession) => {
      // Events may have been missed while disconnected: re-read every watched service, and make
      // sure every owned node still exists (all of them are gone after an expiry).
      for (const w of watches) w.kick();
      if (newSession) owned.newSession();
      else owned.kick();
    },
  });
  const owned = new OwnedNodes({
    session,
    parentAcl: acls.parents,
    // Under ACLs, consumers without credentials cannot create folders: providers create theirs.
    siblingFolders: (node) =>
      resolved.digest !== undefined && node.folder.endsWith("/providers")
        ? [{ path: `${node.servicePath}/consumers`, acl: acls.consumers }]
        : [],
    retryDelayMs: 200,
    maxRetryDelayMs: Math.max(1000, Math.min(resolved.sessionTimeoutMs, 10_000)),
  });

  function track<T>(task: Promise<T>): Promise<T> {
    tasks.add(task);
    const forget = (): void => void tasks.delete(task);
    task.then(forget, forget);
    return task;
  }

  async function registerNow(endpoint: Endpoint): Promise<Registration> {
    if (closing !== undefined) throw closedError();
    const data = Buffer.from(encodeEndpoint(endpoint).json);
    const folder = providersPath(root, endpoint.service);
    const node: OwnedNode = {
      key: `${folder}/${incarnation}-${sequence++}`,
      folder,
      servicePath: servicePath(root, endpoint.service),
      data,
      acl: acls.providers,
      folderAcl: acls.providers,
      optional: false,
    };
    try {
      await owned.own(node);
    } catch (error) {
      if (closing !== undefined) throw closedError();
      throw zookeeperError(`register ${endpoint.service}`, error);
    }
    debug("zookeeper: registered %s", owned.pathOf(node));
    let unregistering: Promise<void> | undefined;
    return {
      unregister: () => {
        unregistering ??= track(owned.release(node.key)).catch((error: unknown) => {
          unregistering = undefined; // a later call tries again
          throw zookeeperError(`unregister ${endpoint.service}`, error);
        });
        return unregistering;
      },
    };
  }

  function consumerNode(service: string, application: string | undefined): OwnedNode {
    const folder = consumersPath(root, service);
    const info = { service, application: application ?? "", host: hostname(), pid: process.pid, startTime: Date.now() };
    return {
      key: `${folder}/${incarnation}-${sequence++}`,
      folder,
      servicePath: servicePath(root, service),
      data: Buffer.from(JSON.stringify(info)),
      acl: acls.consumerNode,
      folderAcl: acls.consumers,
      optional: true,
    };
  }

  function watch(service: string, onChange: (endpoints: readonly Endpoint[]) => void, watchOptions?: WatchOptions): Unwatch {
    if (closing !== undefined) return () => {};
    const serviceWatch = new ServiceWatch({
      session,
      service,
      path: providersPath(root, service),
      retryDelayMs: Math.min(1000, resolved.requestTimeoutMs),
      delivery: new WatchDelivery(onChange),
      cache,
      cacheGraceMs: resolved.cacheGraceMs,
    });
    watches.add(serviceWatch);
    serviceWatch.kick();
    const consumer = consumerNode(service, watchOptions?.application);
    owned.ownInBackground(consumer);
    return () => {
      if (!watches.delete(serviceWatch)) return;
      void track(serviceWatch.stop());
      void track(owned.release(consumer.key).catch((error: unknown) => debug("zookeeper: removing %s failed: %o", consumer.key, error)));
    };
  }

  async function publishRulesNow(service: string, data: Buffer | undefined): Promise<void> {
    if (closing !== undefined) throw closedError();
    const node = { session, path: rulesPath(root, service), servicePath: servicePath(root, service), parentAcl: acls.parents, acl: acls.providers };
    try {
      await writeRulesNode(node, data);
    } catch (error) {
      if (closing !== undefined) throw closedError();
      throw zookeeperError(`publish the rules of ${service}`, error);
    }
    debug("zookeeper: rules of %s %s", service, data === undefined ? "deleted" : "published");
  }

  function watchRules(service: string, onChange: (rules: string | undefined) => void): Unwatch {
    if (closing !== undefined) return () => {};
    const rulesWatch = new RulesWatch({ session, path: rulesPath(root, service), retryDelayMs: Math.min(1000, resolved.requestTimeoutMs), onChange });
    watches.add(rulesWatch);
    rulesWatch.kick();
    return () => {
      if (watches.delete(rulesWatch)) void track(rulesWatch.stop());
    };
  }

  async function closeAll(): Promise<void> {
    const stopped = [...watches].map((w) => w.stop());
    watches.clear();
    stopped.push(owned.stop());
    // Registrations in flight fail with registry_closed; ending the session deletes every node.
    await session.close();
    await Promise.allSettled([...stopped, ...tasks]);
    await cache?.flush();
  }

  return {
    kind: "zookeeper",
    register: (endpoint) => track(registerNow(endpoint)),
    watch,
    publishRules: async (service, rules) => {
      const data = rulesBytes(service, rules);
      if (closing !== undefined) throw closedError();
      return track(rulesWrites.run(service, () => publishRulesNow(service, data)));
    },
    watchRules,
    close: () => (closing ??= closeAll()),
  };
}
