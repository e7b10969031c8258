import { type FSWatcher, watch as watchDirectory } from "node:fs";
import { mkdir } from "node:fs/promises";
import { debuglog } from "node:util";
import { type EntryCache, scanServiceDirectory } from "./local-registry-entries.js";
import type { WatchDelivery } from "./watch-delivery.js";

const debug = debuglog("farcall:registry");

/** Options of {@link DirectoryWatch}. */
export interface DirectoryWatchOptions {
  /** The directory to watch; created (0700) when missing. */
  readonly directory: string;
  readonly pollIntervalMs: number;
  /** Resolves when the registry directory is ready; a rejection fails the scan. */
  readonly prepare: () => Promise<void>;
  /** Reads what the directory holds now and delivers it; never called twice at once. */
  readonly scan: () => Promise<void>;
  /** A scan (or `prepare`) failed with `error` (already logged). */
  readonly failed: (error: unknown) => void;
}

/**
 * The loop behind every watch of a local registry: runs `scan` when `fs.watch` reports a change
 * in `directory` and every `pollIntervalMs` (fs.watch drops events on some systems and file
 * systems), one scan at a time; a change during a scan runs one more after it. Owns one fs
 * watcher and one unref'd timer; {@link DirectoryWatch.stop} releases both.
 */
export class DirectoryWatch {
  readonly #options: DirectoryWatchOptions;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #scan: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  constructor(options: DirectoryWatchOptions) {
    this.#options = options;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Starts the first scan. */
  start(): void {
    this.#kick();
  }

  /** Stops watching; resolves when no scan is running any more. Idempotent; never rejects. */
  stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#closeWatcher();
    return this.#scan ?? Promise.resolve();
  }

  #kick(): void {
    if (this.#stopped) return;
    if (this.#scan !== undefined) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#scan = this.#scanOnce().finally(() => {
      this.#scan = undefined;
      if (this.#stopped) return;
      if (this.#again) {
        this.#again = false;
        this.#kick();
        return;
      }
      this.#timer = setTimeout(() => this.#kick(), this.#options.pollIntervalMs);
      this.#timer.unref();
    });
  }

  async #scanOnce(): Promise<void> {
    const { directory, prepare, scan, failed } = this.#options;
    try {
      await prepare();
      // Watch before reading, so that no change between the read and the watch is missed.
      if (this.#watcher === undefined && !this.#stopped) {
        await mkdir(directory, { recursive: true, mode: 0o700 });
        this.#openWatcher();
      }
      if (this.#stopped) return;
      await scan();
    } catch (error) {
      debug("local registry: scan of %s failed: %o", directory, error);
      if (!this.#stopped) failed(error);
    }
  }

  #openWatcher(): void {
    if (this.#stopped) return;
    try {
      const watcher = watchDirectory(this.#options.directory, { persistent: false }, () => this.#kick());
      watcher.on("error", (error) => {
        // The next poll opens a new watcher; until then polling alone keeps the watch fresh.
        debug("local registry: fs.watch of %s failed: %o", this.#options.directory, error);
        if (this.#watcher === watcher) this.#closeWatcher();
      });
      this.#watcher = watcher;
    } catch (error) {
      // ENOSPC (inotify limit) or an unsupported file system: polling only.
      debug("local registry: cannot fs.watch %s: %o", this.#options.directory, error);
    }
  }

  #closeWatcher(): void {
    const watcher = this.#watcher;
    this.#watcher = undefined;
    watcher?.close();
  }
}

/** Options of {@link ServiceWatch}. */
export interface ServiceWatchOptions {
  /** The service's directory inside the registry directory. */
  readonly directory: string;
  readonly service: string;
  readonly pollIntervalMs: number;
  readonly expireAfterMs: number;
  /** Resolves when the registry directory is ready; a rejection means "deliver an empty list". */
  readonly prepare: () => Promise<void>;
  readonly delivery: WatchDelivery;
}

/**
 * One `watch` of a local registry: scans the service directory on every turn of its
 * {@link DirectoryWatch} and hands each result to its {@link WatchDelivery}, which skips
 * unchanged lists. A failed scan keeps the last list; only the first delivery is owed regardless
 * (an empty list).
 */
export class ServiceWatch {
  readonly #cache: EntryCache = new Map();
  readonly #loop: DirectoryWatch;
  readonly #delivery: WatchDelivery;
  #delivered = false;

  constructor(options: ServiceWatchOptions) {
    const { directory, service, expireAfterMs, delivery } = options;
    this.#delivery = delivery;
    this.#loop = new DirectoryWatch({
      directory,
      pollIntervalMs: options.pollIntervalMs,
      prepare: options.prepare,
      scan: async () => {
        const endpoints = await scanServiceDirectory({ directory, service, expireAfterMs, cache: this.#cache });
        if (this.#loop.stopped) return;
        delivery.deliver(endpoints);
        this.#delivered = true;
      },
      failed: () => {
        if (this.#delivered) return;
        delivery.deliver([]);
        this.#delivered = true;
      },
    });
  }

  /** Starts the first scan; its result is the first delivery. */
  start(): void {
    this.#loop.start();
  }

  /** Stops watching; resolves when no scan is running any more. Idempotent; never rejects. */
  stop(): Promise<void> {
    this.#delivery.stop();
    return this.#loop.stop();
  }
}
