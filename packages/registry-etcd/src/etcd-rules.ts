import { setTimeout as delay } from "node:timers/promises";
import { debuglog } from "node:util";
import { checkRulesToPublish, rulesTextOf } from "@farcall/core/extension";
import { type Etcd3, type IWatchResponse, isRecoverableError, type Watcher } from "etcd3";
import { cancelWatcher } from "./etcd-watchers.js";

const debug = debuglog("farcall:registry");

/**
 * Checks the arguments of `publishRules` as core's registries do (`checkRulesToPublish`) and
 * returns the bytes to store.
 * @throws FarcallError `invalid_argument`, reason `bad_rules`, `details.path` `"service"` or `"rules"`.
 */
export function rulesBytes(service: string, rules: string | undefined): Buffer | undefined {
  checkRulesToPublish(service, rules);
  return rules === undefined ? undefined : Buffer.from(rules, "utf8");
}

/**
 * Puts `value` at `key` with no lease (rules outlive every registry instance), or deletes the key
 * for `undefined`. A transient failure (etcd unreachable, a connection still coming back after an
 * outage) is retried, 100 ms doubling to 1 s, until `timeoutMs` has passed or `stopped()` holds;
 * both operations are idempotent.
 * @throws etcd3's error: a permanent one at once, a transient one once out of time.
 */
export async function writeRulesKey(client: Etcd3, key: string, value: Buffer | undefined, timeoutMs: number, stopped: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    try {
      if (value === undefined) await client.kv.deleteRange({ key: Buffer.from(key) });
      else await client.kv.put({ key: Buffer.from(key), value });
      return;
    } catch (error) {
      const wait = Math.min(100 * 2 ** attempt, 1000);
      if (!(error instanceof Error) || !isRecoverableError(error) || stopped() || Date.now() + wait >= deadline) throw error;
      debug("etcd: writing %s failed (%s); retrying in %d ms", key, error.message, wait);
      await delay(wait, undefined, { ref: false });
    }
  }
}

/** Options of {@link RulesWatch}; durations in milliseconds. */
export interface RulesWatchOptions {
  readonly client: Etcd3;
  /** `<prefix>/<encoded service>/rules`. */
  readonly key: string;
  /** First wait after a failed read; doubles up to `maxRetryDelayMs`. */
  readonly retryDelayMs: number;
  readonly maxRetryDelayMs: number;
  /** Bound of the watch cancellation in {@link RulesWatch.stop}. */
  readonly closeTimeoutMs: number;
  readonly onChange: (rules: string | undefined) => void;
}

/**
 * One `watchRules` of an etcd registry: reads the rules key, then watches it from the next
 * revision, so no change falls between the two; each event is applied in order, and one older
 * than the state already delivered (a replay after a reconnection) is skipped. As for provider
 * watches (see etcd-service-watch.ts): a resumed watch starts from the revision applied, and when
 * etcd cancels the watch or answers from a revision behind the one applied (a cluster rebuilt
 * empty), the key is read again and a new watch started. Delivers the text when it differs from
 * the last one delivered, never re-entering the callback. A failed read keeps the last text (the
 * first delivery is owed regardless: `undefined`) and is retried with a doubling delay on one
 * unref'd timer.
 */
export class RulesWatch {
  readonly #options: RulesWatchOptions;
  /** Every change of the key up to this revision has been applied. */
  #revision = 0;
  #watcher: Watcher | undefined;
  #read: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #delivered = false;
  #last: string | undefined;
  #failures = 0;
  /** Watches cancelled by etcd in a row; the first is read again at once, later ones after a delay. */
  #cancellations = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #cancelling = new Set<Promise<void>>();

  constructor(options: RulesWatchOptions) {
    this.#options = options;
  }

  /** Reads the key and (re)starts the watch now, or once more after the read in progress. */
  kick(): void {
    if (this.#stopped) return;
    if (this.#read !== undefined) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#read = this.#readOnce().then(
      () => this.#after(false),
      (error: unknown) => {
        debug("etcd: reading %s failed: %s", this.#options.key, error instanceof Error ? error.message : String(error));
        if (!this.#delivered) this.#deliver(undefined);
        this.#after(true);
      },
    );
  }

  /** No delivery and no read after this; cancels the watch. Resolves when all is released. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#dropWatcher();
    await this.#read;
    await Promise.all([...this.#cancelling]);
  }

  #after(failed: boolean): void {
    this.#read = undefined;
    if (this.#stopped) return;
    this.#failures = failed ? this.#failures + 1 : 0;
    if (this.#again && !failed) {
      this.#again = false;
      this.kick();
    } else if (failed) {
      this.#again = false;
      this.#retryLater();
    }
  }

  #retryLater(): void {
    if (this.#stopped || this.#timer !== undefined) return;
    const { retryDelayMs, maxRetryDelayMs } = this.#options;
    const delay = Math.min(retryDelayMs * 2 ** Math.max(0, this.#failures - 1), maxRetryDelayMs);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.kick();
    }, delay);
    this.#timer.unref();
  }

  async #readOnce(): Promise<void> {
    const { client, key } = this.#options;
    const response = await client.kv.range({ key: Buffer.from(key) });
    if (this.#stopped) return;
    const revision = Number(response.header.revision);
    // The running watch may have applied a change newer than this read meanwhile: keep it.
    if (revision >= this.#revision) {
      this.#revision = revision;
      this.#deliver(rulesTextOf(response.kvs[0]?.value));
    }
    this.#dropWatcher();
    this.#watch(this.#revision + 1);
  }

  #watch(startRevision: number): void {
    const { client, key } = this.#options;
    const watcher = client.watch().key(key).startRevision(String(startRevision)).watcher();
    this.#watcher = watcher;
    // After etcd3's own listeners, which set the resume revision from each answer's header.
    const resumeFrom = (): void => {
      watcher.request.start_revision = this.#revision + 1;
    };
    watcher.on("connected", (response: IWatchResponse) => {
      resumeFrom();
      if (this.#watcher !== watcher || Number(response.header.revision) >= this.#revision) return;
      debug("etcd: %s: etcd is at revision %s, behind %d; reading it again", key, response.header.revision, this.#revision);
      // Another history: what it holds now replaces what was applied from the old one.
      this.#revision = 0;
      this.#dropWatcher();
      this.kick();
    });
    watcher.on("data", (response: IWatchResponse) => {
      if (this.#watcher !== watcher) return;
      for (const event of response.events) {
        const revision = Number(event.kv.mod_revision);
        if (revision <= this.#revision) continue;
        this.#revision = revision;
        this.#cancellations = 0;
        this.#deliver(event.type === "Delete" ? undefined : rulesTextOf(event.kv.value));
      }
      this.#revision = Math.max(this.#revision, Number(response.header.revision));
      resumeFrom();
    });
    watcher.on("disconnected", (error: Error) => debug("etcd: watch of %s disconnected: %s", key, error.message));
    watcher.on("error", (error: Error) => {
      if (this.#watcher !== watcher) return;
      debug("etcd: watch of %s cancelled by etcd (%s); reading it again", key, error.message);
      this.#watcher = undefined;
      if (this.#cancellations++ === 0) this.kick();
      else {
        this.#failures++;
        this.#retryLater();
      }
    });
  }

  #dropWatcher(): void {
    const watcher = this.#watcher;
    this.#watcher = undefined;
    if (watcher === undefined) return;
    const cancelling = cancelWatcher(watcher, this.#options.closeTimeoutMs).finally(() => this.#cancelling.delete(cancelling));
    this.#cancelling.add(cancelling);
  }

  /** Reads and watch events are handled one at a time, and the callback runs inside one: never re-entered. */
  #deliver(rules: string | undefined): void {
    if (this.#stopped || (this.#delivered && rules === this.#last)) return;
    this.#delivered = true;
    this.#last = rules;
    try {
      this.#options.onChange(rules);
    } catch (error) {
      debug("etcd: rules watch callback threw: %o", error);
    }
  }
}
