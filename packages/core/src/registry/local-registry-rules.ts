import { constants } from "node:fs";
import { mkdir, open } from "node:fs/promises";
import { join } from "node:path";
import { debuglog } from "node:util";
import { maxGovernanceRulesBytes } from "./governance-rules.js";
import { removeFile, serviceDirectoryName, writeFileAtomically } from "./local-registry-entries.js";
import { DirectoryWatch } from "./local-registry-watch.js";

const debug = debuglog("farcall:registry");

/*
 * Governance rules in the local registry's directory (see local-registry-entries.ts for the rest):
 *   <directory>/.rules/                                  0700; a service directory name never
 *                                                        starts with '.', so this is no service
 *     <service directory name>.json                      the rules text of one service, mode 0600
 *     .<service directory name>.json.<rand>.tmp          written first, then renamed over it
 * The files have no heartbeat and are never swept: rules are configuration, not registrations.
 * They live apart from the service directories so that providers' heartbeats (mtime updates,
 * every second) do not wake rules watchers, and rules changes do not wake endpoint watchers.
 */

/** The directory of every service's rules file. */
export function rulesDirectory(directory: string): string {
  return join(directory, ".rules");
}

/** The rules file of `service`. */
export function rulesFile(directory: string, service: string): string {
  return join(rulesDirectory(directory), `${serviceDirectoryName(service)}.json`);
}

/**
 * Stores `rules` as the rules file of `service` (atomically: readers see the old text or the new
 * one), or deletes it for `undefined`. The registry directory must be prepared.
 */
export async function writeRules(directory: string, service: string, rules: string | undefined): Promise<void> {
  const path = rulesFile(directory, service);
  if (rules === undefined) {
    await removeFile(path);
    return;
  }
  await mkdir(rulesDirectory(directory), { recursive: true, mode: 0o700 });
  await writeFileAtomically(path, rules);
}

/** What one read of a rules file found, with the file identity it was read from. */
interface RulesRead {
  /** Inode, size and times of the file read: equal keys, equal content. `""` for no file. */
  readonly key: string;
  readonly rules: string | undefined;
}

/**
 * Reads a rules file as untrusted: never follows a symlink, never blocks on a FIFO, never reads
 * more than {@link maxGovernanceRulesBytes} + 1 bytes. No file, a symlink, anything but a regular
 * file, or an empty file: no rules. A longer file is returned cut after the limit + 1 bytes, for
 * the parser to reject as too large. `known` (the previous read) is returned when the file is
 * the same, without reading it again.
 */
export async function readRulesFile(path: string, known: RulesRead | undefined): Promise<RulesRead> {
  const flags = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);
  let handle;
  try {
    handle = await open(path, flags);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ELOOP" || code === "ENOTDIR") return { key: "", rules: undefined };
    throw error;
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) return { key: "", rules: undefined };
    const key = `${info.ino}/${info.size}/${info.mtimeMs}/${info.ctimeMs}`;
    if (known !== undefined && known.key === key) return known;
    const buffer = Buffer.alloc(Math.min(info.size, maxGovernanceRulesBytes) + 1);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    return { key, rules: length === 0 ? undefined : buffer.toString("utf8", 0, length) };
  } finally {
    await handle.close();
  }
}

/** Options of {@link RulesWatch}. */
export interface RulesWatchOptions {
  /** The registry directory. */
  readonly directory: string;
  readonly service: string;
  readonly pollIntervalMs: number;
  /** Resolves when the registry directory is ready; a rejection fails the read. */
  readonly prepare: () => Promise<void>;
  readonly onChange: (rules: string | undefined) => void;
}

/**
 * One `watchRules` of a local registry: reads the service's rules file whenever `fs.watch`
 * reports a change in the rules directory and every `pollIntervalMs` (only a `fstat` when the
 * file has not changed), and delivers the text when it differs from the last one delivered. A
 * failed read keeps the last text; the first delivery is owed regardless (`undefined`).
 */
export class RulesWatch {
  readonly #loop: DirectoryWatch;
  readonly #onChange: (rules: string | undefined) => void;
  #known: RulesRead | undefined;
  #delivered = false;
  #last: string | undefined;
  #stopped = false;

  constructor(options: RulesWatchOptions) {
    const path = rulesFile(options.directory, options.service);
    this.#onChange = options.onChange;
    this.#loop = new DirectoryWatch({
      directory: rulesDirectory(options.directory),
      pollIntervalMs: options.pollIntervalMs,
      prepare: options.prepare,
      scan: async () => {
        this.#known = await readRulesFile(path, this.#known);
        this.#deliver(this.#known.rules);
      },
      failed: () => {
        if (!this.#delivered) this.#deliver(undefined);
      },
    });
  }

  /** Starts the first read; its result is the first delivery. */
  start(): void {
    this.#loop.start();
  }

  /** No delivery after this; resolves when no read is running any more. Idempotent; never rejects. */
  stop(): Promise<void> {
    this.#stopped = true;
    return this.#loop.stop();
  }

  /** Reads run one at a time and the callback runs inside one: it is never re-entered. */
  #deliver(rules: string | undefined): void {
    if (this.#stopped || (this.#delivered && rules === this.#last)) return;
    this.#delivered = true;
    this.#last = rules;
    try {
      this.#onChange(rules);
    } catch (error) {
      debug("local registry: rules watch callback threw: %o", error);
    }
  }
}
