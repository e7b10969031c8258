/**
 * `@farcall/registry-redis`: a farcall `Registry` on Redis (5.0 or later, tested on 7.0; standalone or
 * Sentinel-managed, not Redis Cluster), built on ioredis: heartbeat sorted sets swept by atomic
 * Lua scripts, a version per provider list, and one pub/sub channel broadcasting the global version.
 */
export { redisRegistry } from "./redis-registry.js";
export type { RedisRegistryOptions } from "./redis-options.js";
export { parseRedisAddress, registryFromAddress } from "./redis-address.js";
