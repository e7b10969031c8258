import { createHash, randomBytes } from "node:crypto";
import { constants, readlinkSync } from "node:fs";
import { chmod, lstat, mkdir, open, readdir, rename, rm, stat, unlink, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { FarcallError } from "../errors/farcall-error.js";
import { type Endpoint, maxEndpointBytes, parseEndpoint } from "./endpoint.js";

/*
 * On-disk layout of the local registry (see local-registry.ts for the why):
 *   <directory>/                               0700, owned by the user
 *     <service directory name>/                one per service, see serviceDirectoryName
 *       <pid>-<instance>-<n>.json              one entry per registered endpoint, mode 0600
 *       .<pid>-<instance>-<n>.json.<rand>.tmp  written first, then renamed over the entry
 * An entry holds {@link EntryFile} as JSON; its mtime is the heartbeat.
 */

/** The JSON content of one entry file. */
export interface EntryFile {
  /** Layout version; readers ignore files with another value. */
  readonly farcallLocalRegistry: 1;
  /** Host identity of the writer; pids are compared only on the same host. */
  readonly host: string;
  /** The writing process, checked with `process.kill(pid, 0)` on the same host. */
  readonly pid: number;
  readonly endpoint: Endpoint;
}

/** Bytes accepted for one entry file: an endpoint plus its envelope. */
export const maxEntryBytes = maxEndpointBytes + 1024;
/** Entry files read per service and scan; the rest are ignored. */
export const maxEntryFiles = 4096;
const readBatch = 16;

let hostIdentity: string | undefined;

/**
 * This host as entries record it: the host name plus, on Linux, the pid namespace, so that
 * containers sharing the directory never judge each other's pids.
 */
export function currentHost(): string {
  if (hostIdentity !== undefined) return hostIdentity;
  let namespace = "";
  try {
    namespace = readlinkSync("/proc/self/ns/pid");
  } catch {
    // Not Linux, or no /proc: the host name alone.
  }
  hostIdentity = namespace === "" ? hostname() : `${hostname()}/${namespace}`;
  return hostIdentity;
}

/**
 * A file-name-safe, collision-free directory name for a service: `encodeURIComponent` with
 * `. * ! ' ( ) ~` also escaped (so `.` and `..` are safe); names longer than 120 characters keep
 * an 80-character prefix plus `~` and a SHA-256 prefix (`~` never appears in the short form).
 */
export function serviceDirectoryName(service: string): string {
  const encoded = encodeURIComponent(service).replace(
    /[.*!'()~]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  if (encoded.length <= 120) return encoded;
  return `${encoded.slice(0, 80)}~${createHash("sha256").update(service).digest("hex").slice(0, 32)}`;
}

/** The entry file name of registration `n` of one registry instance of this process. */
export function entryFileName(instance: string, n: number): string {
  return `${process.pid}-${instance}-${n}.json`;
}

function isEntryName(name: string): boolean {
  return name.endsWith(".json") && !name.startsWith(".");
}

function isTempName(name: string): boolean {
  return name.startsWith(".") && name.endsWith(".tmp");
}

function unsafeDirectory(directory: string, problem: string): FarcallError {
  return new FarcallError("permission_denied", `local registry directory ${directory}: ${problem}`, {
    reason: "unsafe_directory",
    details: { directory },
    sent: false,
  });
}

/**
 * Creates the registry directory (0700) if needed and checks that it is a directory owned by
 * this user; tightens its mode to 0700 when group or others have access. Ownership is not
 * checked where `process.getuid` is missing (Windows).
 * @throws FarcallError `permission_denied`, reason `unsafe_directory`.
 */
export async function prepareDirectory(directory: string): Promise<void> {
  await mkdir(directory, { recursive: true, mode: 0o700 });
  let info = await lstat(directory);
  if (info.isSymbolicLink()) {
    const uid = process.getuid?.();
    if (uid !== undefined && info.uid !== uid) throw unsafeDirectory(directory, "a symlink owned by another user");
    info = await stat(directory);
  }
  if (!info.isDirectory()) throw unsafeDirectory(directory, "not a directory");
  const uid = process.getuid?.();
  if (uid === undefined) return;
  if (info.uid !== uid) throw unsafeDirectory(directory, "owned by another user");
  if ((info.mode & 0o077) !== 0) await chmod(directory, 0o700);
}

/** Writes `content` to `path` so that readers see the old file, no file, or all of the new one. */
export async function writeFileAtomically(path: string, content: string): Promise<void> {
  const slash = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  const temp = `${path.slice(0, slash + 1)}.${path.slice(slash + 1)}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    await writeFile(temp, content, { mode: 0o600, flag: "wx" });
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true }).catch(() => {});
    throw error;
  }
}

/** Removes a file, ignoring a file already gone. */
export async function removeFile(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
}

/** Whether `pid` of this host may be alive: only `ESRCH` from `kill(pid, 0)` proves it dead. */
export function mayBeAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || pid >= 2 ** 31) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

/** Parsed entries of one directory scan, cached by file name and inode to skip re-reading. */
export type EntryCache = Map<string, { readonly ino: number; readonly size: number; readonly entry: EntryFile | undefined }>;

/** Validates untrusted entry-file bytes; `undefined` for junk. */
export function parseEntryFile(bytes: Buffer, service: string): EntryFile | undefined {
  if (bytes.length > maxEntryBytes) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const o = value as Record<string, unknown>;
  if (o["farcallLocalRegistry"] !== 1 || typeof o["host"] !== "string" || typeof o["pid"] !== "number") return undefined;
  const endpoint = parseEndpoint(o["endpoint"]);
  if (endpoint === undefined || endpoint.service !== service) return undefined;
  return { farcallLocalRegistry: 1, host: o["host"], pid: o["pid"], endpoint };
}

async function readSmallFile(path: string): Promise<Buffer | undefined> {
  // O_NONBLOCK: a FIFO planted in the directory must not block a thread-pool thread.
  const flags = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);
  const handle = await open(path, flags);
  try {
    if (!(await handle.stat()).isFile()) return undefined;
    const buffer = Buffer.alloc(maxEntryBytes + 1);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return bytesRead > maxEntryBytes ? undefined : buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** Options of {@link scanServiceDirectory}. */
export interface ScanOptions {
  readonly directory: string;
  readonly service: string;
  readonly expireAfterMs: number;
  readonly cache: EntryCache;
}

/**
 * Reads the live endpoints of one service directory. Skips junk (non-files, oversized, not JSON,
 * invalid endpoints, another service). Deletes expired entries (mtime older than
 * `expireAfterMs`), entries of dead pids on this host, and temp files older than
 * `expireAfterMs`. A missing directory is an empty list.
 */
export async function scanServiceDirectory(options: ScanOptions): Promise<Endpoint[]> {
  const { directory, service, expireAfterMs, cache } = options;
  let names: string[];
  try {
    names = await readdir(directory);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
  const entries = names.filter(isEntryName).sort().slice(0, maxEntryFiles);
  const temps = names.filter(isTempName).slice(0, maxEntryFiles);
  const seen = new Set(entries);
  for (const name of cache.keys()) if (!seen.has(name)) cache.delete(name);
  const host = currentHost();
  const endpoints: Endpoint[] = [];
  const readOne = async (name: string): Promise<void> => {
    const path = join(directory, name);
    const info = await lstat(path).catch(() => undefined);
    if (info === undefined || !info.isFile()) return;
    if (Date.now() - info.mtimeMs > expireAfterMs) {
      await sweep(path, expireAfterMs);
      return;
    }
    let cached = cache.get(name);
    if (cached === undefined || cached.ino !== info.ino || cached.size !== info.size) {
      const bytes = info.size > maxEntryBytes ? undefined : await readSmallFile(path).catch(() => undefined);
      cached = { ino: info.ino, size: info.size, entry: bytes && parseEntryFile(bytes, service) };
      cache.set(name, cached);
    }
    const entry = cached.entry;
    if (entry === undefined) return;
    if (entry.host === host && !mayBeAlive(entry.pid)) {
      await removeFile(path).catch(() => {});
      return;
    }
    endpoints.push(entry.endpoint);
  };
  const sweepTemp = async (name: string): Promise<void> => {
    const path = join(directory, name);
    const info = await lstat(path).catch(() => undefined);
    if (info !== undefined && Date.now() - info.mtimeMs > expireAfterMs) await sweep(path, expireAfterMs);
  };
  for (let i = 0; i < entries.length; i += readBatch) {
    await Promise.all(entries.slice(i, i + readBatch).map(readOne));
  }
  for (let i = 0; i < temps.length; i += readBatch) {
    await Promise.all(temps.slice(i, i + readBatch).map(sweepTemp));
  }
  const byId = new Map<string, Endpoint>();
  for (const endpoint of endpoints) if (!byId.has(endpoint.id)) byId.set(endpoint.id, endpoint);
  return [...byId.values()];
}

/** Deletes a stale file after checking again that no heartbeat touched it meanwhile. */
async function sweep(path: string, expireAfterMs: number): Promise<void> {
  const info = await lstat(path).catch(() => undefined);
  if (info !== undefined && Date.now() - info.mtimeMs > expireAfterMs) await removeFile(path).catch(() => {});
}
