/**
 * `@farcall/registry-zookeeper`: a farcall `Registry` on Apache ZooKeeper (3.5 or later), built
 * on the pure-JavaScript node-zookeeper-client.
 */
export { zookeeperRegistry } from "./zookeeper-registry.js";
export type { ZookeeperRegistryOptions } from "./zookeeper-registry.js";
export type { ZookeeperDigest } from "./zookeeper-acl.js";
export { parseZookeeperAddress, registryFromAddress } from "./zookeeper-address.js";
