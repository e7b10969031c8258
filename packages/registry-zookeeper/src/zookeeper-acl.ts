import { createHash } from "node:crypto";
import zookeeper, { type ACL } from "node-zookeeper-client";

/** Credentials of ZooKeeper's `digest` scheme. */
export interface ZookeeperDigest {
  readonly user: string;
  readonly password: string;
}

/** The ACLs this registry gives the nodes it creates. */
export interface ZookeeperAcls {
  /** The root and the per-service nodes. */
  readonly parents: ACL[];
  /** `providers/` and each provider node. */
  readonly providers: ACL[];
  /** `consumers/`: anyone may add and remove consumer nodes. */
  readonly consumers: ACL[];
  /** Each consumer node. */
  readonly consumerNode: ACL[];
}

const { Permission } = zookeeper;
const anyone = new zookeeper.Id("world", "anyone");
const open = (): ACL[] => [new zookeeper.ACL(Permission.ALL, anyone)];

/** ZooKeeper's digest id of a user: `user:base64(sha1("user:password"))`. */
export function digestId(digest: ZookeeperDigest): string {
  const hash = createHash("sha1").update(`${digest.user}:${digest.password}`).digest("base64");
  return `${digest.user}:${hash}`;
}

/**
 * Without credentials every node is open (`world:anyone` has all permissions), as in a ZooKeeper
 * without ACLs. With them, only that digest user may create, change or delete the tree and the
 * provider nodes; everybody may read (consumers need no credentials) and may add or remove nodes
 * under `consumers/` (informational only).
 */
export function aclsFor(digest: ZookeeperDigest | undefined): ZookeeperAcls {
  if (digest === undefined) return { parents: open(), providers: open(), consumers: open(), consumerNode: open() };
  const owner = new zookeeper.ACL(Permission.ALL, new zookeeper.Id("digest", digestId(digest)));
  const read = new zookeeper.ACL(Permission.READ, anyone);
  return {
    parents: [owner, read],
    providers: [owner, read],
    consumers: [owner, new zookeeper.ACL(Permission.READ | Permission.CREATE | Permission.DELETE, anyone)],
    consumerNode: open(),
  };
}
