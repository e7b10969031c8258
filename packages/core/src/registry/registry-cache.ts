import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { mkdir, open } from "node:fs/promises";
import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { debuglog } from "node:util";
import { badOption } from "../errors/farcall-error.js";
import { type Endpoint, parseEndpoint } from "./endpoint.js";
import { writeFileAtomically } from "./local-registry-entries.js";

/*
 * On-disk layout of the registry cache:
 *   <dir>/                                    0700
 *     <sha256(scope) hex, 16 chars>/          0700, one per registry cluster + root
 *       <cacheFileName(service)>              0600, JSON:
 *         {"version":1,"service":"<service>","savedAt":<epoch ms>,"endpoints":[<Endpoint>...]}
 *       .<file name>.<rand>.tmp               written first, then renamed over the file
 * Why a cache at all: a consumer that starts while its registry server is down still finds the
 * providers it saw last time. The file is a hint, not a registry: it is read only when the
 * registry has not answered, and it is treated as untrusted input like registry data.
 */

const debug = debuglog("farcall:registry");

/** Bytes accepted for one cache file; a larger file is ignored. */
export const maxCacheFileBytes = 1024 * 1024;
/** Endpoints kept per service; further ones are neither written nor loaded. */
export const maxCacheEndpoints = 4096;
/** Bytes of a file left for everything but the endpoints; the endpoints get the rest. */
const envelopeBytes = 16 * 1024;
/** Encoded service names longer than this are shortened with a hash (names are at most 255 bytes). */
const maxPlainNameChars = 200;

/** Options of {@link RegistryCache}. */
export interface RegistryCacheOptions {
  /** Directory holding the cache files; created (recursively, mode 0o700) on first save. */
  readonly dir: string;
  /**
   * Identifies the registry cluster + root, e.g. `"zookeeper://127.0.0.1:2181/farcall"`; hashed
   * (sha256, hex, first 16 chars) into a sub-directory so different clusters never share entries.
   */
  readonly scope: string;
}

/**
 * The default cache directory: `$XDG_CACHE_HOME/farcall/registry` when `XDG_CACHE_HOME` is an
 * absolute path (the XDG spec says to ignore relative ones), else `~/.cache/farcall/registry`.
 */
export function defaultRegistryCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env["XDG_CACHE_HOME"];
  const base = xdg !== undefined && xdg !== "" && isAbsolute(xdg) ? xdg : join(homedir(), ".cache");
  return join(base, "farcall", "registry");
}

/**
 * The file name of `service`: `encodeURIComponent` with `.` also escaped (so `.`, `..` and
 * hidden names cannot occur), plus `.json`. Encoded names over 200 characters keep a
 * 120-character prefix plus `~` and a SHA-256 prefix, to stay under the 255-byte name limit;
 * a clash with a short name is harmless because the file records its service.
 */
export function cacheFileName(service: string): string {
  const encoded = encodeURIComponent(service).replace(/\./g, "%2E");
  if (encoded.length <= maxPlainNameChars) return `${encoded}.json`;
  return `${encoded.slice(0, 120)}~${createHash("sha256").update(service).digest("hex").slice(0, 32)}.json`;
}

/** Validates untrusted cache-file bytes; `undefined` unless the file is a cache of `service`. */
function parseCacheFile(bytes: Buffer, service: string): readonly Endpoint[] | undefined {
  if (bytes.length > maxCacheFileBytes) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const o = value as Record<string, unknown>;
  const raw = o["endpoints"];
  if (o["version"] !== 1 || o["service"] !== service || !Array.isArray(raw)) return undefined;
  const byId = new Map<string, Endpoint>();
  for (const item of raw as unknown[]) {
    const endpoint = parseEndpoint(item);
    if (endpoint === undefined || endpoint.service !== service || byId.has(endpoint.id)) continue;
    byId.set(endpoint.id, endpoint);
    if (byId.size >= maxCacheEndpoints) break;
  }
  return Object.freeze([...byId.values()]);
}

async function readCacheFile(path: string): Promise<Buffer | undefined> {
  // O_NONBLOCK: a FIFO planted where the file should be must not block a thread-pool thread.
  const flags = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);
  const handle = await open(path, flags);
  try {
    const info = await handle.stat();
    if (!info.isFile() || info.size > maxCacheFileBytes) return undefined;
    const buffer = Buffer.alloc(Math.min(info.size, maxCacheFileBytes) + 1);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    // A file that grew past the limit between stat and read is ignored like an oversized one.
    return length > maxCacheFileBytes ? undefined : buffer.subarray(0, length);
  } finally {
    await handle.close();
  }
}

/** Per-service write state: at most one write in flight, only the newest pending list kept. */
interface ServiceWrites {
  /** The endpoints JSON of the newest list not yet written, if any. */
  pending: string | undefined;
  /** The endpoints JSON this instance last wrote successfully. */
  written: string | undefined;
  /** The running write loop, if any. */
  drain: Promise<void> | undefined;
}

/**
 * A consumer-side cache of the last good provider list of each service, shared by the network
 * registries (ZooKeeper, etcd, Redis) so that a consumer starting while its registry server is
 * down can still call. One JSON file per service under `<dir>/<scope hash>/`.
 *
 * Lifecycle: no timers and no handles are held between calls; {@link flush} waits for the
 * writes started so far, so a registry's `close()` should await it. Nothing here throws after
 * construction: failures are logged with `NODE_DEBUG=farcall:registry`.
 */
export class RegistryCache {
  readonly #directory: string;
  readonly #services = new Map<string, ServiceWrites>();

  /** @throws FarcallError `invalid_argument`, reason `bad_option`, for a missing dir or scope. */
  constructor(options: RegistryCacheOptions) {
    if (typeof options !== "object" || options === null) badOption("options", "expected an object");
    const { dir, scope } = options;
    if (typeof dir !== "string" || dir.length === 0) badOption("dir", "expected a non-empty path");
    if (typeof scope !== "string" || scope.length === 0) badOption("scope", "expected a non-empty string");
    const hash = createHash("sha256").update(scope).digest("hex").slice(0, 16);
    this.#directory = join(resolve(dir), hash);
  }

  /**
   * The cached endpoints of `service`, or `undefined` when there is no usable file. Never
   * throws: an unreadable, oversized (> 1 MiB), malformed or foreign file yields `undefined`;
   * junk entries are dropped (each is checked with `parseEndpoint` and must name `service`),
   * duplicates by id are dropped, and at most 4096 endpoints are returned.
   */
  async load(service: string): Promise<readonly Endpoint[] | undefined> {
    if (!validService(service)) return undefined;
    const path = join(this.#directory, cacheFileName(service));
    try {
      const bytes = await readCacheFile(path);
      return bytes === undefined ? undefined : parseCacheFile(bytes, service);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") debug("registry cache: cannot read %s: %o", path, error);
      return undefined;
    }
  }

  /**
   * Records `endpoints` as the last good list of `service`. Empty lists are not written (the
   * last non-empty list stays), nor is a list equal to the last one this instance wrote. Writes
   * are atomic (temp file + rename), coalesced per service (one write in flight; while it runs
   * only the newest list is kept and written next), and never throw.
   */
  save(service: string, endpoints: readonly Endpoint[]): void {
    try {
      if (!validService(service) || !Array.isArray(endpoints) || endpoints.length === 0) return;
      const json = endpointsJson(service, endpoints);
      let state = this.#services.get(service);
      if (state === undefined) {
        state = { pending: undefined, written: undefined, drain: undefined };
        this.#services.set(service, state);
      }
      if (state.drain === undefined && json === state.written) return;
      state.pending = json;
      // The check above makes a new drain reach its first await before it could end, so its
      // `finally` never runs before this assignment.
      state.drain ??= this.#drain(service, state);
    } catch (error) {
      debug("registry cache: cannot save %s: %o", service, error);
    }
  }

  /** Resolves when every write started so far (including lists still pending) has finished. */
  async flush(): Promise<void> {
    const drains: Promise<void>[] = [];
    for (const state of this.#services.values()) if (state.drain !== undefined) drains.push(state.drain);
    await Promise.all(drains);
  }

  async #drain(service: string, state: ServiceWrites): Promise<void> {
    try {
      for (let json = state.pending; json !== undefined; json = state.pending) {
        state.pending = undefined;
        if (json === state.written) continue;
        const path = join(this.#directory, cacheFileName(service));
        try {
          await mkdir(this.#directory, { recursive: true, mode: 0o700 });
          const content = `{"version":1,"service":${JSON.stringify(service)},"savedAt":${Date.now()},"endpoints":${json}}`;
          await writeFileAtomically(path, content);
          state.written = json;
        } catch (error) {
          debug("registry cache: cannot write %s: %o", path, error);
        }
      }
    } finally {
      state.drain = undefined;
    }
  }
}

function validService(service: unknown): service is string {
  return typeof service === "string" && service.length > 0 && service.length <= 1024;
}

/**
 * The canonical JSON array of a list: deduplicated by id and sorted by id (so a reordered push
 * is not a change), cut to 4096 endpoints and to what fits the file limit, so that every file
 * written can be loaded again. A cut list still names callable providers.
 */
function endpointsJson(service: string, endpoints: readonly Endpoint[]): string {
  const byId = new Map<string, Endpoint>();
  for (const endpoint of endpoints) if (!byId.has(endpoint.id)) byId.set(endpoint.id, endpoint);
  const sorted = [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const parts: string[] = [];
  let bytes = 2;
  for (const endpoint of sorted) {
    const part = JSON.stringify(endpoint);
    bytes += Buffer.byteLength(part) + 1;
    if (parts.length >= maxCacheEndpoints || bytes > maxCacheFileBytes - envelopeBytes) {
      debug("registry cache: %s has %d endpoints, keeping the first %d", service, sorted.length, parts.length);
      break;
    }
    parts.push(part);
  }
  return `[${parts.join(",")}]`;
}
