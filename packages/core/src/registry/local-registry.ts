import { randomBytes } from "node:crypto";
import { mkdir, utimes } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { join, resolve } from "node:path";
import { debuglog } from "node:util";
import { badOption, FarcallError } from "../errors/farcall-error.js";
import type { Endpoint } from "./endpoint.js";
import { checkEndpoint, registryClosedError } from "./check-endpoint.js";
import { checkRulesToPublish, RulesWrites } from "./governance-rules.js";
import {
  currentHost,
  type EntryFile,
  entryFileName,
  maxEntryBytes,
  prepareDirectory,
  removeFile,
  serviceDirectoryName,
  writeFileAtomically,
} from "./local-registry-entries.js";
import { RulesWatch, writeRules } from "./local-registry-rules.js";
import { ServiceWatch } from "./local-registry-watch.js";
import type { Registration, Registry, Unwatch } from "./registry.js";
import { WatchDelivery } from "./watch-delivery.js";

const debug = debuglog("farcall:registry");

/** Options of {@link localRegistry}; every duration in milliseconds. */
export interface LocalRegistryOptions {
  /**
   * The shared directory. Default `<os.tmpdir()>/farcall-registry-<uid>` (user name where there
   * is no uid). Created with mode 0700; must be owned by the current user.
   */
  readonly directory?: string;
  /** How often a registration's file mtime is refreshed. Default 1000, at least 10. */
  readonly heartbeatIntervalMs?: number;
  /** Entries not refreshed for this long are dead. Default 3000, at least 2 × heartbeatIntervalMs. */
  readonly expireAfterMs?: number;
  /** Rescan period of every watch, in addition to fs.watch notices. Default 500, at least 10. */
  readonly pollIntervalMs?: number;
}

interface ResolvedOptions {
  readonly directory: string;
  readonly heartbeatIntervalMs: number;
  readonly expireAfterMs: number;
  readonly pollIntervalMs: number;
}

/** The default registry directory of the current user. */
export function defaultLocalRegistryDirectory(): string {
  const uid = process.getuid?.();
  const owner = uid ?? encodeURIComponent(userInfo().username).replace(/[.%]/g, "_");
  return join(tmpdir(), `farcall-registry-${owner}`);
}

function duration(name: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > 86_400_000) {
    badOption(name, `expected an integer number of milliseconds ${min}..86400000`);
  }
  return value;
}

function resolveOptions(options: LocalRegistryOptions): ResolvedOptions {
  const directory = options.directory ?? defaultLocalRegistryDirectory();
  if (typeof directory !== "string" || directory.length === 0) badOption("directory", "expected a non-empty path");
  const heartbeatIntervalMs = duration("heartbeatIntervalMs", options.heartbeatIntervalMs, 1000, 10);
  const expireAfterMs = duration("expireAfterMs", options.expireAfterMs, 3000, 20);
  if (expireAfterMs < 2 * heartbeatIntervalMs) badOption("expireAfterMs", "must be at least 2 × heartbeatIntervalMs");
  const pollIntervalMs = duration("pollIntervalMs", options.pollIntervalMs, 500, 10);
  return Object.freeze({ directory: resolve(directory), heartbeatIntervalMs, expireAfterMs, pollIntervalMs });
}

interface LocalEntry {
  readonly path: string;
  readonly content: string;
  /** Every file operation of this entry, chained so heartbeat and unregister never race. */
  op: Promise<void>;
  removed: boolean;
  unregistering: Promise<void> | undefined;
}

/**
 * A {@link Registry} for processes on one machine, with no server: a directory with one
 * subdirectory per service and one JSON file per registered endpoint, written atomically. The
 * file's mtime is its heartbeat, refreshed every `heartbeatIntervalMs`; watchers ignore and
 * delete entries older than `expireAfterMs` and, on the same host, entries whose pid is gone
 * (`kill -9` disappears within about `pollIntervalMs`). Watches use fs.watch for fast notice plus
 * a poll every `pollIntervalMs`. File content is untrusted: size-capped, parsed defensively,
 * junk ignored. Timers and fs watchers are unref'd: the registry never keeps a process alive.
 * Governance rules are one file per service under `<directory>/.rules/`, replaced atomically,
 * watched like the service directories (fs.watch plus a poll every `pollIntervalMs`), read as
 * untrusted (at most 65537 bytes, no symlink, no FIFO); `publishRules` calls of one instance for
 * one service land in call order. Rules outlive the process that published them.
 * `close()` deletes this instance's entries, stops every watch and waits for pending file I/O.
 * @throws FarcallError `invalid_argument`, reason `bad_option`, for invalid options.
 * `register` rejects with `invalid_argument` (`bad_endpoint`), `permission_denied`
 * (`unsafe_directory`: the directory is not this user's), `unavailable` (`registry_closed`), or
 * `internal` for a file-system failure; `publishRules` likewise, with `invalid_argument`
 * (`bad_rules`) for a bad service name or text.
 */
export function localRegistry(options: LocalRegistryOptions = {}): Registry {
  const resolved = resolveOptions(options);
  const instance = randomBytes(6).toString("hex");
  const entries = new Set<LocalEntry>();
  const watches = new Set<ServiceWatch | RulesWatch>();
  /** This instance's rules writes, landing in call order per service. */
  const rulesWrites = new RulesWrites();
  const tasks = new Set<Promise<unknown>>();
  let sequence = 0;
  let prepared: Promise<void> | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let beating = false;
  let closing: Promise<void> | undefined;

  // A failure is not cached: the next register or scan tries again.
  const prepare = (): Promise<void> =>
    (prepared ??= prepareDirectory(resolved.directory).catch((error: unknown) => {
      prepared = undefined;
      throw error;
    }));

  function track<T>(task: Promise<T>): Promise<T> {
    tasks.add(task);
    const forget = (): void => void tasks.delete(task);
    task.then(forget, forget);
    return task;
  }

  function chain(entry: LocalEntry, step: () => Promise<void>): Promise<void> {
    entry.op = entry.op.then(step).catch((error) => debug("local registry: %s: %o", entry.path, error));
    return track(entry.op);
  }

  function beat(): void {
    if (beating || closing !== undefined) return;
    beating = true;
    const now = new Date();
    const steps = [...entries].map((entry) =>
      chain(entry, async () => {
        if (entry.removed) return;
        try {
          await utimes(entry.path, now, now);
        } catch (error) {
          // Swept while this process was stalled past expireAfterMs: write it again.
          if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
          await writeFileAtomically(entry.path, entry.content);
        }
      }),
    );
    void Promise.all(steps).finally(() => {
      beating = false;
    });
  }

  function unregister(entry: LocalEntry): Promise<void> {
    entry.unregistering ??= chain(entry, async () => {
      entry.removed = true;
      entries.delete(entry);
      await removeFile(entry.path);
    });
    return entry.unregistering;
  }

  async function registerNow(endpoint: Endpoint): Promise<Registration> {
    if (closing !== undefined) throw registryClosedError("local");
    const checked = checkEndpoint(endpoint);
    const file: EntryFile = { farcallLocalRegistry: 1, host: currentHost(), pid: process.pid, endpoint: checked };
    const content = JSON.stringify(file);
    if (Buffer.byteLength(content) > maxEntryBytes) {
      throw new FarcallError("invalid_argument", "endpoint: too large for the local registry", {
        reason: "bad_endpoint",
        sent: false,
      });
    }
    const directory = join(resolved.directory, serviceDirectoryName(checked.service));
    const entry: LocalEntry = {
      path: join(directory, entryFileName(instance, sequence++)),
      content,
      op: Promise.resolve(),
      removed: false,
      unregistering: undefined,
    };
    try {
      await prepare();
      await mkdir(directory, { recursive: true, mode: 0o700 });
      await writeFileAtomically(entry.path, content);
    } catch (error) {
      if (error instanceof FarcallError) throw error;
      throw new FarcallError("internal", `local registry: cannot write ${entry.path}`, { cause: error, sent: false });
    }
    if (closing !== undefined) {
      await removeFile(entry.path).catch(() => {});
      throw registryClosedError("local");
    }
    entries.add(entry);
    if (heartbeat === undefined) {
      heartbeat = setInterval(beat, resolved.heartbeatIntervalMs);
      heartbeat.unref();
    }
    return { unregister: () => unregister(entry) };
  }

  function watch(service: string, onChange: (endpoints: readonly Endpoint[]) => void): Unwatch {
    if (closing !== undefined) return () => {};
    const serviceWatch = new ServiceWatch({
      directory: join(resolved.directory, serviceDirectoryName(service)),
      service,
      pollIntervalMs: resolved.pollIntervalMs,
      expireAfterMs: resolved.expireAfterMs,
      prepare,
      delivery: new WatchDelivery(onChange),
    });
    watches.add(serviceWatch);
    serviceWatch.start();
    return () => {
      if (watches.delete(serviceWatch)) void track(serviceWatch.stop());
    };
  }

  async function writeRulesNow(service: string, rules: string | undefined): Promise<void> {
    if (closing !== undefined) throw registryClosedError("local");
    try {
      await prepare();
      await writeRules(resolved.directory, service, rules);
    } catch (error) {
      if (error instanceof FarcallError) throw error;
      throw new FarcallError("internal", `local registry: cannot write the rules of ${service}`, { cause: error, sent: false });
    }
  }

  function publishRules(service: string, rules: string | undefined): Promise<void> {
    try {
      checkRulesToPublish(service, rules);
    } catch (error) {
      return Promise.reject(error);
    }
    if (closing !== undefined) return Promise.reject(registryClosedError("local"));
    return track(rulesWrites.run(service, () => writeRulesNow(service, rules)));
  }

  function watchRules(service: string, onChange: (rules: string | undefined) => void): Unwatch {
    if (closing !== undefined) return () => {};
    const rulesWatch = new RulesWatch({ directory: resolved.directory, service, pollIntervalMs: resolved.pollIntervalMs, prepare, onChange });
    watches.add(rulesWatch);
    rulesWatch.start();
    return () => {
      if (watches.delete(rulesWatch)) void track(rulesWatch.stop());
    };
  }

  async function closeAll(): Promise<void> {
    clearInterval(heartbeat);
    const stopped = [...watches].map((w) => w.stop());
    watches.clear();
    // Registrations in flight see `closing` when their write ends and delete their own file.
    await Promise.allSettled([...stopped, ...tasks]);
    await Promise.allSettled([...entries].map(unregister));
    await Promise.allSettled([...tasks]);
    await prepared?.catch(() => {});
  }

  return {
    kind: "local",
    // Tracked as a whole, so that close() waits for a registration in flight to undo itself.
    register: (endpoint) => track(registerNow(endpoint)),
    watch,
    publishRules,
    watchRules,
    close: () => (closing ??= closeAll()),
  };
}
