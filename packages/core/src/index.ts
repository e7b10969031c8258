/**
 * `@farcall/core`: what applications use. Plugin authors import `@farcall/core/extension`; tests
 * import `@farcall/core/testing`.
 */
export { createApplication } from "./application.js";
export type { Application } from "./application.js";
export type { ApplicationOptions, ClientOptions, ProvideOptions } from "./application-options.js";
export { defineService } from "./contract/define-service.js";
export type { MethodDefinition, MethodNames, MethodOptions, ServiceDefinition, ServiceOptions } from "./contract/define-service.js";
export type { Implementation } from "./contract/implementation.js";
export { rpcService } from "./contract/rpc-service.js";
export type { CallContext } from "./call/call-context.js";
export type { Call, Interceptor, Invoke, MethodRef, Reply } from "./call/call.js";
export { withOptions } from "./client/stub.js";
export type { CallOptions, Stub } from "./client/stub.js";
export { FarcallError, codes } from "./errors/farcall-error.js";
export type { Code, FarcallErrorOptions, Metadata } from "./errors/farcall-error.js";
export { failfast, failover } from "./cluster/fault-tolerance/failover.js";
export type { FailoverOptions } from "./cluster/fault-tolerance/failover.js";
export type { FaultTolerance } from "./cluster/fault-tolerance/fault-tolerance.js";
export { weightedRandom } from "./cluster/load-balancers/weighted-random.js";
export type { WeightedRandomOptions } from "./cluster/load-balancers/weighted-random.js";
export { roundRobin } from "./cluster/load-balancers/round-robin.js";
export { leastActive } from "./cluster/load-balancers/least-active.js";
export type { LeastActiveOptions } from "./cluster/load-balancers/least-active.js";
export { consistentHash } from "./cluster/load-balancers/consistent-hash.js";
export type { ConsistentHashOptions, HashKey } from "./cluster/load-balancers/consistent-hash.js";
export { shortestResponse } from "./cluster/load-balancers/shortest-response.js";
export type { ShortestResponseOptions } from "./cluster/load-balancers/shortest-response.js";
export { adaptive } from "./cluster/load-balancers/adaptive.js";
export type { AdaptiveOptions } from "./cluster/load-balancers/adaptive.js";
export type { LoadBalancer } from "./cluster/load-balancers/load-balancer.js";
export type { LoadBalancerName } from "./config/load-balancer-of.js";
export { directRegistry } from "./registry/direct-registry.js";
export { localRegistry } from "./registry/local-registry.js";
export { memoryRegistry } from "./registry/memory-registry.js";
export type { Registry } from "./registry/registry.js";
export type { Endpoint } from "./registry/endpoint.js";
export { msgpackSerializer } from "./serialization/msgpack-serializer.js";
export { jsonSerializer } from "./serialization/json-serializer.js";
export type { Serializer } from "./serialization/serializer.js";
