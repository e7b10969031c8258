import { debuglog } from "node:util";
import { checkRulesToPublish, rulesTextOf } from "@farcall/core/extension";
import zookeeper, { type ACL, type Event, type Stat } from "node-zookeeper-client";
import type { ZookeeperSession } from "./zookeeper-session.js";

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

function hasCode(error: unknown, code: number): boolean {
  return error instanceof zookeeper.Exception && error.code === code;
}

/** Where and how the rules node of one service is written. */
export interface RulesNode {
  readonly session: ZookeeperSession;
  /** `<root>/<service>/rules`. */
  readonly path: string;
  /** `<root>/<service>`, created with `parentAcl` when missing. */
  readonly servicePath: string;
  readonly parentAcl: ACL[];
  /** ACL of the rules node: the provider nodes' ACL. */
  readonly acl: ACL[];
}

/**
 * Stores `data` as the rules node's data (a PERSISTENT node, created with its parents when
 * missing), or deletes the node for `undefined`. Retried operations are idempotent: a create
 * whose first attempt landed finds the node and sets it.
 * @throws the client's error (`NO_AUTH`, ...) or the session's `FarcallError`.
 */
export async function writeRulesNode(node: RulesNode, data: Buffer | undefined): Promise<void> {
  const { session, path, servicePath, parentAcl, acl } = node;
  if (data === undefined) {
    try {
      await session.run<void>(`delete ${path}`, (client, done) => client.remove(path, -1, (error) => done(error)));
    } catch (error) {
      if (!hasCode(error, zookeeper.Exception.NO_NODE)) throw error;
    }
    return;
  }
  for (let attempt = 0; ; attempt++) {
    try {
      await session.run<void>(`set ${path}`, (client, done) => client.setData(path, data, -1, (error) => done(error)));
      return;
    } catch (error) {
      if (!hasCode(error, zookeeper.Exception.NO_NODE) || attempt >= 2) throw error;
    }
    await session.run<string>(`create ${servicePath}`, (client, done) => client.mkdirp(servicePath, parentAcl, zookeeper.CreateMode.PERSISTENT, done));
    try {
      await session.run<void>(`create ${path}`, (client, done) => client.create(path, data, acl, zookeeper.CreateMode.PERSISTENT, (error) => done(error)));
      return;
    } catch (error) {
      // Created meanwhile (by someone else, or by this create's first attempt): set it.
      if (!hasCode(error, zookeeper.Exception.NODE_EXISTS)) throw error;
    }
  }
}

/** Options of {@link RulesWatch}. */
export interface RulesWatchOptions {
  readonly session: ZookeeperSession;
  /** `<root>/<service>/rules`. */
  readonly path: string;
  /** Wait after a failed read before the next one. */
  readonly retryDelayMs: number;
  readonly onChange: (rules: string | undefined) => void;
}

/**
 * One `watchRules` of a ZooKeeper registry: reads the rules node with a data watch (or, while it
 * does not exist, an existence watch), re-armed by every read; every notification and every
 * reconnection triggers a re-read, one at a time. Delivers the text when it differs from the last
 * one delivered, never re-entering the callback. A failed read keeps the last text (the first
 * delivery is owed regardless: `undefined`) and retries after `retryDelayMs` (one unref'd timer).
 */
export class RulesWatch {
  readonly #options: RulesWatchOptions;
  readonly #notify = (event: Event): void => {
    debug("zookeeper: %s: %s", this.#options.path, event.getName());
    this.kick();
  };
  #read: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #delivered = false;
  #last: string | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: RulesWatchOptions) {
    this.#options = options;
  }

  /** Reads now, or once more after the read in progress. */
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
        debug("zookeeper: reading %s failed: %o", this.#options.path, error);
        if (!this.#delivered) this.#deliver(undefined);
        this.#after(true);
      },
    );
  }

  /** No delivery and no read after this; resolves when the read in progress ends. Idempotent. */
  stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    return this.#read ?? Promise.resolve();
  }

  #after(failed: boolean): void {
    this.#read = undefined;
    if (this.#stopped) return;
    if (this.#again) {
      this.#again = false;
      this.kick();
    } else if (failed) {
      this.#timer = setTimeout(() => this.kick(), this.#options.retryDelayMs);
      this.#timer.unref();
    }
  }

  async #readOnce(): Promise<void> {
    const { session, path } = this.#options;
    let data: Buffer | undefined;
    try {
      data = await session.run<Buffer | undefined>(`read ${path}`, (client, done) =>
        client.getData(path, this.#notify, (error, bytes) => done(error, bytes ?? undefined)),
      );
    } catch (error) {
      if (!hasCode(error, zookeeper.Exception.NO_NODE)) throw error;
      // No rules: watch for the node to appear. If it appeared meanwhile, the next read has it.
      const stat = await session.run<Stat | null>(`exists ${path}`, (client, done) =>
        client.exists(path, this.#notify, (e, s) => done(e, s ?? null)),
      );
      if (stat !== null) {
        this.#again = true;
        return;
      }
      data = undefined;
    }
    this.#deliver(rulesTextOf(data));
  }

  #deliver(rules: string | undefined): void {
    if (this.#stopped || (this.#delivered && rules === this.#last)) return;
    this.#delivered = true;
    this.#last = rules;
    try {
      this.#options.onChange(rules);
    } catch (error) {
      debug("zookeeper: rules watch callback threw: %o", error);
    }
  }
}
