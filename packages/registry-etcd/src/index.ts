/**
 * `@farcall/registry-etcd`: a farcall `Registry` on etcd v3 (3.4 or later), built on the etcd3
 * client (gRPC).
 */
export { etcdRegistry } from "./etcd-registry.js";
export type { EtcdRegistryOptions } from "./etcd-registry.js";
export type { EtcdAuth } from "./etcd-client.js";
export { parseEtcdAddress, registryFromAddress } from "./etcd-address.js";
