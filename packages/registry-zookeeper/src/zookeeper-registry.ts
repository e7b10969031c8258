import { randomBytes } from "node:crypto";
import { debuglog } from "node:util";
import type { Endpoint, Registration, Registry, Unwatch } from "@farcall/core/extension";
import zookeeper from "node-zookeeper-client";
import { badOption, closedError, encodeEndpoint, zookeeperError } from "./errors.js";
import { WatchDelivery } from "@farcall/core/extension";
import { checkRoot, providersPath } from "./zookeeper-paths.js";
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
}

interface ResolvedOptions {
  readonly connect: string;
  readonly root: string;
  readonly sessionTimeoutMs: number;
  readonly requestTimeoutMs: number;
}

function duration(name: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > 600_000) {
    badOption(name, `expected an integer number of milliseconds ${min}..600000`);
  }
  return value;
}

function resolveOptions(options: ZookeeperRegistryOptions): ResolvedOptions {
  const connect: unknown = options?.connect;
  if (typeof connect !== "string" || !/^[^\s,/]+(,[^\s,/]+)*(\/\S*)?$/.test(connect) || connect.length > 4096) {
    badOption("connect", "expected host:port[,host:port...][/chroot]");
  }
  return Object.freeze({
    connect,
    root: checkRoot(options.root ?? "/farcall"),
    sessionTimeoutMs: duration("sessionTimeoutMs", options.sessionTimeoutMs, 15_000, 1000),
    requestTimeoutMs: duration("requestTimeoutMs", options.requestTimeoutMs, 10_000, 100),
  });
}

function hasCode(error: unknown, code: number): boolean {
  return error instanceof zookeeper.Exception && error.code === code;
}

/**
 * A {@link Registry} on Apache ZooKeeper. Each registration is an EPHEMERAL node
 * `<root>/<service>/providers/<pid>-<instance>-<n>` (service URI-encoded; the node name is unique
 * to this process incarnation, so a restarted provider never collides with its predecessor's
 * node) holding the endpoint as JSON. The node lives as long as this registry's ZooKeeper session:
 * `close()` ends the session and the server deletes the nodes at once; a process that dies is
 * unlisted when its session times out. Watches read `<root>/<service>/providers` with a child
 * watch re-armed on every event and reconnection, parse node data as untrusted (size-capped,
 * `parseEndpoint`), and deliver full lists, never concurrently. The client connects on first use;
 * it owns one socket and no timer while idle (pending waits and retries use unref'd timers).
 *
 * Not handled yet: session expiry (registrations are not re-created after it), a hung server
 * (no watchdog), empty-list protection and a cache file for when ZooKeeper is down.
 * @throws FarcallError `invalid_argument`, reason `bad_option`, for invalid options.
 * `register` rejects with `invalid_argument` (`bad_endpoint`), `unavailable` (`registry_closed`),
 * or `unavailable` when ZooKeeper cannot be reached within `requestTimeoutMs` or refuses the write.
 */
export function zookeeperRegistry(options: ZookeeperRegistryOptions): Registry {
  const resolved = resolveOptions(options);
  const incarnation = `${process.pid}-${randomBytes(6).toString("hex")}`;
  const watches = new Set<ServiceWatch>();
  const tasks = new Set<Promise<unknown>>();
  let sequence = 0;
  let closing: Promise<void> | undefined;
  const session = new ZookeeperSession({
    connect: resolved.connect,
    sessionTimeoutMs: resolved.sessionTimeoutMs,
    requestTimeoutMs: resolved.requestTimeoutMs,
    closeTimeoutMs: Math.min(resolved.requestTimeoutMs, 2000),
    // Events may have been missed while disconnected: re-read every watched service.
    onConnected: () => {
      for (const w of watches) w.kick();
    },
  });

  function track<T>(task: Promise<T>): Promise<T> {
    tasks.add(task);
    const forget = (): void => void tasks.delete(task);
    task.then(forget, forget);
    return task;
  }

  async function remove(path: string): Promise<void> {
    try {
      await session.run<void>(`delete ${path}`, (client, done) => client.remove(path, -1, (error) => done(error)));
    } catch (error) {
      if (hasCode(error, zookeeper.Exception.NO_NODE)) return;
      // Closed meanwhile: ending the session deletes the node.
      if (session.closed) return;
      throw zookeeperError(`delete ${path}`, error);
    }
  }

  async function registerNow(endpoint: Endpoint): Promise<Registration> {
    if (closing !== undefined) throw closedError();
    const { data } = encodeEndpoint(endpoint);
    const parent = providersPath(resolved.root, endpoint.service);
    const path = `${parent}/${incarnation}-${sequence++}`;
    try {
      await session.run<string>(`create ${parent}`, (client, done) => client.mkdirp(parent, done));
      await session.run<string>(`create ${path}`, (client, done) =>
        client.create(path, data, zookeeper.CreateMode.EPHEMERAL, (error, created) =>
          // A retried create whose first attempt reached the server: the node is ours.
          done(hasCode(error, zookeeper.Exception.NODE_EXISTS) ? null : error, created),
        ),
      );
    } catch (error) {
      if (closing !== undefined) throw closedError();
      throw zookeeperError(`register ${endpoint.service}`, error);
    }
    debug("zookeeper: registered %s", path);
    let unregistering: Promise<void> | undefined;
    return {
      unregister: () => {
        unregistering ??= track(remove(path)).catch((error: unknown) => {
          unregistering = undefined; // a later call tries again
          throw error;
        });
        return unregistering;
      },
    };
  }

  function watch(service: string, onChange: (endpoints: readonly Endpoint[]) => void): Unwatch {
    if (closing !== undefined) return () => {};
    const serviceWatch = new ServiceWatch({
      session,
      service,
      path: providersPath(resolved.root, service),
      retryDelayMs: Math.min(1000, resolved.requestTimeoutMs),
      delivery: new WatchDelivery(onChange),
    });
    watches.add(serviceWatch);
    serviceWatch.kick();
    return () => {
      if (watches.delete(serviceWatch)) void track(serviceWatch.stop());
    };
  }

  async function closeAll(): Promise<void> {
    const stopped = [...watches].map((w) => w.stop());
    watches.clear();
    // Registrations in flight fail with registry_closed; ending the session deletes every node.
    await session.close();
    await Promise.allSettled([...stopped, ...tasks]);
  }

  return {
    kind: "zookeeper",
    register: (endpoint) => track(registerNow(endpoint)),
    watch,
    close: () => (closing ??= closeAll()),
  };
}
