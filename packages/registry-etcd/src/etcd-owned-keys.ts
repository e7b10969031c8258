import { debuglog } from "node:util";
import { EtcdLeaseInvalidError, type Etcd3, isRecoverableError, type Watcher } from "etcd3";
import { closedError, etcdError } from "./errors.js";
import { EtcdLease } from "./etcd-lease.js";
import { cancelWatcher, watchKey } from "./etcd-watchers.js";

const debug = debuglog("farcall:registry");

/** One key this registry keeps under its lease: a provider registration or a consumer entry. */
export interface OwnedKey {
  /** The whole etcd key, `<prefix>/<service>/providers/<name>` or `.../consumers/<name>`. */
  readonly key: string;
  readonly value: Buffer;
  /** Consumer keys are informational: a refusal (no permission) is logged, not retried until the next lease. */
  readonly optional: boolean;
}

/** Options of {@link OwnedKeys}; durations in milliseconds. */
export interface OwnedKeysOptions {
  readonly client: Etcd3;
  readonly ttlSeconds: number;
  /** First wait after a failed pass; doubles up to `maxRetryDelayMs`. */
  readonly retryDelayMs: number;
  readonly maxRetryDelayMs: number;
  /** Bound of each step of {@link OwnedKeys.close} (cancelling watches, revoking the lease). */
  readonly closeTimeoutMs: number;
}

interface KeyState {
  readonly owned: OwnedKey;
  readonly keyBytes: Buffer;
  /** Watches the key, so a deletion or an overwrite is repaired at once. */
  watcher: Watcher | undefined;
  /** The lease the key was last confirmed under. */
  leaseId: string | undefined;
  /** `own()` calls waiting for the first confirmation. */
  readonly waiters: Array<(error?: unknown) => void>;
}

/** What `own` resolves with when the put did not happen in time. */
const timedOut = Symbol("timed out");

/** Keys checked at once in one pass. */
const concurrency = 32;

function isPermanent(error: unknown): boolean {
  return !(error instanceof EtcdLeaseInvalidError) && !(error instanceof Error && isRecoverableError(error));
}

/**
 * The keys a registry owns, all under its one lease ({@link EtcdLease}), kept in existence for
 * as long as they are owned. A pass checks each key that may be wrong with one transaction:
 * "if the key holds our value under our lease, nothing; else put it under our lease". Keys are
 * checked when owned, when their watch sees them deleted or changed (an operator's `etcdctl
 * del`, the lease's expiry), when their watch reconnects (a change may have been missed), and
 * all of them when the lease is lost (a new lease is granted and every key put again). Passes
 * run one at a time; a failed pass is retried after a delay that doubles up to a cap, with ONE
 * timer, and never given up. A key is released (`release`) before it is deleted, so a pass in
 * flight cannot resurrect it: every put re-checks ownership afterwards and undoes itself.
 */
export class OwnedKeys {
  readonly #options: OwnedKeysOptions;
  readonly #lease: EtcdLease;
  readonly #keys = new Map<string, KeyState>();
  /** Keys to check in the next pass. */
  readonly #dirty = new Set<string>();
  /** Released keys whose deletion failed: retried by later passes. */
  readonly #orphans = new Set<string>();
  /** Optional keys refused under the current lease: not retried until the next one. */
  readonly #refused = new Set<string>();
  #pass: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;
  #failures = 0;
  #lastError: unknown;
  /** Leases found expired in a row by puts (a new one is granted at once a few times, then with backoff). */
  #leaseInvalidations = 0;
  /** Watch cancellations in flight, awaited by close. */
  readonly #cancelling = new Set<Promise<void>>();

  constructor(options: OwnedKeysOptions) {
    this.#options = options;
    this.#lease = new EtcdLease({
      client: options.client,
      ttlSeconds: options.ttlSeconds,
      revokeTimeoutMs: options.closeTimeoutMs,
      onLost: () => this.#leaseLost(),
    });
  }

  /**
   * Owns `key` and waits until it is put under the lease, at most `timeoutMs`. On failure (etcd
   * unreachable in time, or the put refused) the key is released again.
   * @throws FarcallError `unavailable` (reason `registry_closed` when closed meanwhile).
   */
  async own(key: OwnedKey, timeoutMs: number): Promise<void> {
    if (this.#stopped) throw closedError();
    const state = this.#add(key);
    let timer: NodeJS.Timeout | undefined;
    const outcome = await new Promise<unknown>((resolve) => {
      state.waiters.push(resolve);
      timer = setTimeout(() => resolve(timedOut), timeoutMs);
      timer.unref();
      this.kick(key.key);
    });
    clearTimeout(timer);
    if (outcome === undefined) return;
    // A put refused outright never happened; one that timed out may have: delete it.
    await this.release(key.key, outcome === timedOut).catch(() => undefined);
    if (this.#stopped) throw closedError();
    throw etcdError(`put ${key.key}`, outcome === timedOut ? (this.#lastError ?? new Error(`no answer within ${timeoutMs} ms`)) : outcome);
  }

  /** Owns `key` and puts it in the background (retried like any key that is missing). */
  ownInBackground(key: OwnedKey): void {
    if (this.#stopped) return;
    this.#add(key);
    this.kick(key.key);
  }

  /**
   * Stops keeping `key` and deletes it (unless `put` is false: it was never put). When etcd
   * cannot be reached, later passes retry the deletion (until the lease goes, which takes the
   * key with it). A key etcd refused is not deleted.
   * @throws etcd3's error of the failed deletion.
   */
  async release(key: string, put = true): Promise<void> {
    const state = this.#keys.get(key);
    const refused = this.#refused.delete(key);
    this.#keys.delete(key);
    this.#dirty.delete(key);
    if (state !== undefined) {
      this.#settle(state, closedError());
      this.#cancel(state);
    }
    if (refused || !put) return;
    try {
      await this.#options.client.kv.deleteRange({ key: Buffer.from(key) });
      this.#orphans.delete(key);
    } catch (error) {
      if (!this.#stopped) {
        this.#orphans.add(key);
        this.#schedule(true);
      }
      throw error;
    }
  }

  /** Checks `key` (every key when omitted) now, or once more after the pass in flight. */
  kick(key?: string): void {
    if (this.#stopped) return;
    if (key === undefined) for (const k of this.#keys.keys()) this.#dirty.add(k);
    else if (this.#keys.has(key)) this.#dirty.add(key);
    if (this.#pass !== undefined) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#dirty.size === 0 && this.#orphans.size === 0) return;
    this.#pass = this.#passOnce().then(
      () => this.#after(false),
      (error: unknown) => {
        this.#lastError = error;
        debug("etcd: keeping owned keys failed: %s", error instanceof Error ? error.message : String(error));
        this.#after(true);
      },
    );
  }

  /**
   * No pass after this; cancels the key watches and revokes the lease, so etcd deletes every
   * owned key at once. Each step is bounded by `closeTimeoutMs`. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const state of this.#keys.values()) {
      this.#settle(state, closedError());
      this.#cancel(state);
    }
    this.#keys.clear();
    await this.#pass;
    await Promise.all([...this.#cancelling]);
    await this.#lease.revoke();
  }

  #add(key: OwnedKey): KeyState {
    const state: KeyState = { owned: key, keyBytes: Buffer.from(key.key), watcher: undefined, leaseId: undefined, waiters: [] };
    this.#keys.set(key.key, state);
    this.#orphans.delete(key.key);
    return state;
  }

  #leaseLost(): void {
    this.#refused.clear();
    for (const state of this.#keys.values()) state.leaseId = undefined;
    this.kick();
  }

  #after(failed: boolean): void {
    this.#pass = undefined;
    if (this.#stopped) return;
    this.#failures = failed ? this.#failures + 1 : 0;
    if (this.#again) {
      this.#again = false;
      // After a failure, what is still dirty waits for the retry timer, not a tight loop.
      if (!failed) return this.kick();
    }
    this.#schedule(failed);
  }

  /** Arms the one retry timer after a failure (or when work is left over). */
  #schedule(failed: boolean): void {
    if (this.#stopped || this.#pass !== undefined || this.#timer !== undefined) return;
    if (!failed && this.#dirty.size === 0 && this.#orphans.size === 0) return;
    const { retryDelayMs, maxRetryDelayMs } = this.#options;
    const delay = Math.min(retryDelayMs * 2 ** Math.max(0, this.#failures - 1), maxRetryDelayMs);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.kick();
    }, delay);
    this.#timer.unref();
  }

  async #passOnce(): Promise<void> {
    const failures: unknown[] = [];
    for (const key of [...this.#orphans]) {
      try {
        await this.#options.client.kv.deleteRange({ key: Buffer.from(key) });
        this.#orphans.delete(key);
      } catch (error) {
        failures.push(error);
      }
    }
    if (this.#dirty.size === 0) {
      if (failures.length > 0) throw failures[0];
      return;
    }
    let leaseId: string;
    try {
      leaseId = await this.#lease.current();
    } catch (error) {
      // Refused outright (bad credentials, no permission): registrations waiting fail now.
      if (isPermanent(error)) for (const key of this.#dirty) this.#failed(key, error, "");
      throw error;
    }
    const todo = [...this.#dirty].filter((key) => !this.#refused.has(key));
    this.#dirty.clear();
    for (let i = 0; i < todo.length && !this.#stopped; i += concurrency) {
      await Promise.all(
        todo.slice(i, i + concurrency).map(async (key) => {
          try {
            await this.#ensure(key, leaseId);
          } catch (error) {
            if (this.#keys.has(key)) this.#dirty.add(key);
            if (this.#failed(key, error, leaseId)) failures.push(error);
          }
        }),
      );
    }
    if (failures.length > 0) throw failures[0];
    this.#leaseInvalidations = 0;
  }

  /** Puts `key` under `leaseId` unless it is already there with its value; then watches it. */
  async #ensure(key: string, leaseId: string): Promise<void> {
    const state = this.#keys.get(key);
    if (state === undefined) return;
    const { keyBytes, owned } = state;
    const response = await this.#options.client.kv.txn({
      compare: [
        { key: keyBytes, target: "Lease", result: "Equal", lease: leaseId },
        { key: keyBytes, target: "Value", result: "Equal", value: owned.value },
      ],
      success: [],
      failure: [{ request_put: { key: keyBytes, value: owned.value, lease: leaseId } }],
    });
    if (this.#keys.get(key) !== state) {
      // Released while being put: undo (a failed delete is retried as an orphan).
      if (!response.succeeded) await this.release(key).catch(() => undefined);
      return;
    }
    if (!response.succeeded) debug("etcd: put %s under lease %s", key, leaseId);
    state.leaseId = leaseId;
    this.#settle(state, undefined);
    if (state.watcher === undefined) {
      // From the revision after this check, so any later change is seen.
      state.watcher = watchKey(this.#options.client, keyBytes, Number(response.header.revision) + 1, {
        isMine: (kv, type) => type === "Put" && kv.lease === state.leaseId && kv.value.equals(owned.value),
        onSuspect: () => this.kick(key),
        onEnded: (watcher) => {
          if (state.watcher === watcher) state.watcher = undefined;
        },
      });
    }
  }

  /**
   * Handles a key's failure; false when it needs no retry timer: the lease was found expired
   * (a new one is granted at once, a few times in a row at most) or an optional key was refused.
   */
  #failed(key: string, error: unknown, leaseId: string): boolean {
    if (error instanceof EtcdLeaseInvalidError) {
      // Expired under us (a put raced the expiry): grant a new one and put everything again.
      if (this.#lease.id === leaseId) this.#leaseInvalidations++;
      this.#lease.invalidate(leaseId);
      this.#leaseLost();
      return this.#leaseInvalidations > 3;
    }
    if (!isPermanent(error)) return true;
    const state = this.#keys.get(key);
    if (state === undefined) return false;
    if (state.owned.optional) {
      debug("etcd: %s refused (%s); not retried under this lease", key, error instanceof Error ? error.message : String(error));
      this.#refused.add(key);
      this.#dirty.delete(key);
      return false;
    }
    // A registration refused outright (no permission, bad request) fails now, not at its timeout.
    this.#settle(state, error);
    return true;
  }

  #cancel(state: KeyState): void {
    const watcher = state.watcher;
    state.watcher = undefined;
    if (watcher === undefined) return;
    const cancelling = cancelWatcher(watcher, this.#options.closeTimeoutMs).finally(() => this.#cancelling.delete(cancelling));
    this.#cancelling.add(cancelling);
  }

  #settle(state: KeyState, error: unknown): void {
    for (const waiter of state.waiters.splice(0)) waiter(error);
  }
}
