import { type FSWatcher, watch as watchDirectory } from "node:fs";
import { mkdir } from "node:fs/promises";
import { debuglog } from "node:util";
import { type EntryCache, scanServiceDirectory } from "./local-registry-entries.js";
import type { WatchDelivery } from "./watch-delivery.js";

const debug = debuglog("farcall:registry");

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
 * One `watch` of a local registry: scans the service directory when `fs.watch` reports a change
 * and every `pollIntervalMs` (fs.watch drops events on some systems and file systems), one scan
 * at a time, and hands each result to its {@link WatchDelivery}, which skips unchanged lists.
 * Owns one fs watcher and one unref'd timer; {@link ServiceWatch.stop} releases both.
 */
export class ServiceWatch {
  readonly #options: ServiceWatchOptions;
  readonly #cache: EntryCache = new Map();
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #scan: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #delivered = false;

  constructor(options: ServiceWatchOptions) {
    this.#options = options;
  }

  /** Starts the first scan; its result is the first delivery. */
  start(): void {
    this.#kick();
  }

  /** Stops watching; resolves when no scan is running any more. Idempotent; never rejects. */
  stop(): Promise<void> {
    this.#stopped = true;
    this.#options.delivery.stop();
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
    const { directory, service, expireAfterMs, prepare, delivery } = this.#options;
    try {
      await prepare();
      // Watch before reading, so that no change between the read and the watch is missed.
      if (this.#watcher === undefined && !this.#stopped) {
        await mkdir(directory, { recursive: true, mode: 0o700 });
        this.#openWatcher();
      }
      const endpoints = await scanServiceDirectory({ directory, service, expireAfterMs, cache: this.#cache });
      if (this.#stopped) return;
      delivery.deliver(endpoints);
      this.#delivered = true;
    } catch (error) {
      // A failed scan keeps the last list; only the first delivery is owed regardless.
      debug("local registry: scan of %s failed: %o", directory, error);
      if (this.#stopped || this.#delivered) return;
      delivery.deliver([]);
      this.#delivered = true;
    }
  }

  #openWatcher(): void {
    if (this.#stopped) return;
    try {
      const watcher = watchDirectory(this.#options.directory, { persistent: false }, () => this.#kick());
      watcher.on("error", (error) => {
        // The next poll opens a new watcher; until then polling alone keeps the list fresh.
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
