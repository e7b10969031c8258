import { debuglog } from "node:util";
import zookeeper, { type ACL, type Event, type Stat } from "node-zookeeper-client";
import type { ZookeeperSession } from "./zookeeper-session.js";

const debug = debuglog("farcall:registry");

/** One ephemeral node this registry keeps alive: a provider registration or a consumer entry. */
export interface OwnedNode {
  /**
   * `<folder>/<name>`: identifies the node. Its real path adds `-<session generation>`, so a node
   * re-created in a new session never collides with the old session's node, which a restarted
   * server may keep until that session expires.
   */
  readonly key: string;
  /** `<root>/<service>/providers` or `.../consumers`. */
  readonly folder: string;
  /** `<root>/<service>`. */
  readonly servicePath: string;
  readonly data: Buffer;
  readonly acl: ACL[];
  /** ACL of `folder` when it has to be created. */
  readonly folderAcl: ACL[];
  /** Consumer nodes are informational: a refusal (`NO_AUTH`) is logged, not retried. */
  readonly optional: boolean;
}

/** Options of {@link OwnedNodes}; durations in milliseconds. */
export interface OwnedNodesOptions {
  readonly session: ZookeeperSession;
  /** ACL of the root and service nodes when they have to be created. */
  readonly parentAcl: ACL[];
  /** Folders to create beside a provider's `providers/` (the `consumers/` folder), with their ACLs. */
  readonly siblingFolders: (node: OwnedNode) => ReadonlyArray<{ readonly path: string; readonly acl: ACL[] }>;
  /** First wait after a failed pass; doubles up to `maxRetryDelayMs`. */
  readonly retryDelayMs: number;
  readonly maxRetryDelayMs: number;
}

function hasCode(error: unknown, code: number): boolean {
  return error instanceof zookeeper.Exception && error.code === code;
}

/**
 * The ephemeral nodes a registry owns, kept in existence for as long as they are owned. A pass
 * checks every node with `exists` (which also arms a watch on it) and re-creates any that is
 * missing: after a session expiry (the server deleted them all), after an operator deleted one
 * by hand, or after a create was lost. Passes run one at a time on every (re)connection and every
 * deletion event; a failed pass is retried after a delay that doubles up to a cap, with ONE timer,
 * and never given up. A node is released (`release`) before it is deleted, so a pass in flight
 * cannot resurrect it: every create re-checks ownership afterwards and undoes itself if released.
 * Releasing deletes every path the node had in any session.
 */
export class OwnedNodes {
  readonly #options: OwnedNodesOptions;
  readonly #nodes = new Map<string, OwnedNode>();
  /** Key → every path created for it (one per session it lived in). */
  readonly #created = new Map<string, Set<string>>();
  /** Optional nodes refused by ZooKeeper in this session: not retried until the next session. */
  readonly #refused = new Set<string>();
  readonly #onEvent = (event: Event): void => {
    // Deleted (re-create it) or changed (the watch is spent): a pass re-checks and re-arms.
    debug("zookeeper: owned %s: %s", event.getPath(), event.getName());
    this.kick();
  };
  #pass: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;
  #failures = 0;

  constructor(options: OwnedNodesOptions) {
    this.#options = options;
  }

  get size(): number {
    return this.#nodes.size;
  }

  /**
   * Owns `node` and creates it now (the first attempt waits up to the session's request timeout).
   * On failure the node is released again and the error rethrown.
   */
  async own(node: OwnedNode): Promise<void> {
    this.#nodes.set(node.key, node);
    try {
      // A session that ends during the attempt leaves the node to the new session: try again (bounded).
      for (let attempt = 0; attempt < 3 && !(await this.#ensure(node)); attempt++);
    } catch (error) {
      await this.release(node.key).catch(() => undefined);
      throw error;
    }
  }

  /** The path `node` has in the current session. */
  pathOf(node: OwnedNode): string {
    return `${node.key}-${this.#options.session.generation}`;
  }

  /** Owns `node` and creates it in the background (retried like any missing node). */
  ownInBackground(node: OwnedNode): void {
    this.#nodes.set(node.key, node);
    this.kick();
  }

  /**
   * Stops keeping the node `key` alive and deletes it, in every session it was created in.
   * @throws the client's error, except `NO_NODE`; a later call tries again.
   */
  async release(key: string): Promise<void> {
    this.#nodes.delete(key);
    this.#refused.delete(key);
    const paths = this.#created.get(key);
    if (paths === undefined) return;
    for (const path of [...paths]) {
      await this.#remove(path);
      paths.delete(path);
    }
    this.#created.delete(key);
  }

  /** A new session: optional nodes refused in the old one are tried again. */
  newSession(): void {
    this.#refused.clear();
    this.kick();
  }

  /** Checks every node now, or once more after the pass in flight. */
  kick(): void {
    if (this.#stopped) return;
    if (this.#pass !== undefined) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#nodes.size === 0) return;
    this.#pass = this.#passOnce().then(
      () => this.#after(false),
      (error: unknown) => {
        debug("zookeeper: keeping owned nodes failed: %o", error);
        this.#after(true);
      },
    );
  }

  /** No pass after this; resolves when the pass in flight ends. The nodes go with the session. */
  stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    return this.#pass ?? Promise.resolve();
  }

  #after(failed: boolean): void {
    this.#pass = undefined;
    if (this.#stopped) return;
    this.#failures = failed ? this.#failures + 1 : 0;
    if (this.#again) {
      this.#again = false;
      this.kick();
    } else if (failed) {
      const { retryDelayMs, maxRetryDelayMs } = this.#options;
      const delay = Math.min(retryDelayMs * 2 ** (this.#failures - 1), maxRetryDelayMs);
      this.#timer = setTimeout(() => this.kick(), delay);
      this.#timer.unref();
    }
  }

  async #passOnce(): Promise<void> {
    const failures: unknown[] = [];
    for (const node of [...this.#nodes.values()]) {
      if (this.#stopped) return;
      if (this.#refused.has(node.key)) continue;
      try {
        await this.#ensure(node);
      } catch (error) {
        if (node.optional && hasCode(error, zookeeper.Exception.NO_AUTH)) {
          debug("zookeeper: %s: refused (NO_AUTH); not retried in this session", node.key);
          this.#refused.add(node.key);
        } else {
          failures.push(error);
        }
      }
    }
    if (failures.length > 0) throw failures[0];
  }

  /**
   * Makes sure `node` exists in the current session (creating it and its folders if needed) and
   * watches it. False when the session changed meanwhile or the node was released.
   */
  async #ensure(node: OwnedNode): Promise<boolean> {
    const { session } = this.#options;
    const path = this.pathOf(node);
    const stat = await session.run<Stat | null>(`exists ${path}`, (client, done) =>
      client.exists(path, this.#onEvent, (error, s) => done(error, s ?? null)),
    );
    // A new session may have begun meanwhile (its pass follows), or the node was released.
    if (stat !== null) return this.pathOf(node) === path;
    if (this.#nodes.get(node.key) !== node || this.pathOf(node) !== path) return false;
    let paths = this.#created.get(node.key);
    if (paths === undefined) this.#created.set(node.key, (paths = new Set()));
    paths.add(path);
    await this.#create(node, path);
    // Arm the deletion watch on the new node.
    await session.run<Stat | null>(`exists ${path}`, (client, done) =>
      client.exists(path, this.#onEvent, (error, s) => done(error, s ?? null)),
    );
    // Released while being created: undo.
    if (this.#nodes.get(node.key) !== node) {
      await this.#remove(path);
      return false;
    }
    debug("zookeeper: created %s", path);
    return this.pathOf(node) === path;
  }

  async #create(node: OwnedNode, path: string): Promise<void> {
    try {
      await this.#createNode(path, node.data, node.acl, zookeeper.CreateMode.EPHEMERAL);
    } catch (error) {
      if (!hasCode(error, zookeeper.Exception.NO_NODE)) throw error;
      // The folders are missing: create them (each may exist by now), then the node.
      const { session, parentAcl, siblingFolders } = this.#options;
      await session.run<string>(`create ${node.servicePath}`, (client, done) =>
        client.mkdirp(node.servicePath, parentAcl, zookeeper.CreateMode.PERSISTENT, done),
      );
      for (const folder of [{ path: node.folder, acl: node.folderAcl }, ...siblingFolders(node)]) {
        await this.#createNode(folder.path, undefined, folder.acl, zookeeper.CreateMode.PERSISTENT);
      }
      await this.#createNode(path, node.data, node.acl, zookeeper.CreateMode.EPHEMERAL);
    }
  }

  /** Creates one node; `NODE_EXISTS` counts as success (a retried create whose first attempt landed). */
  #createNode(path: string, data: Buffer | undefined, acl: ACL[], mode: number): Promise<void> {
    return this.#options.session.run<void>(`create ${path}`, (client, done) =>
      client.create(path, data ?? Buffer.alloc(0), acl, mode, (error) => done(hasCode(error, zookeeper.Exception.NODE_EXISTS) ? null : error)),
    );
  }

  async #remove(path: string): Promise<void> {
    const { session } = this.#options;
    try {
      await session.run<void>(`delete ${path}`, (client, done) => client.remove(path, -1, (error) => done(error)));
    } catch (error) {
      // Gone already, or closed meanwhile (ending the session deletes the node).
      if (hasCode(error, zookeeper.Exception.NO_NODE) || session.closed) return;
      throw error;
    }
  }
}
