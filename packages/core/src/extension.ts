/**
 * `@farcall/core/extension`: the surface for plugin authors (registries, serializers,
 * transports). Minimal for now: the registry contract and the built-in registries.
 */
export { FarcallError } from "./errors/farcall-error.js";
export type { Code, FarcallErrorOptions, Metadata } from "./errors/farcall-error.js";
export type { Registration, Registry, Unwatch, WatchOptions } from "./registry/registry.js";
export type { Endpoint } from "./registry/endpoint.js";
export { maxEndpointBytes, parseEndpoint, serviceKey } from "./registry/endpoint.js";
export { endpointMatches, wildcard } from "./registry/endpoint-matches.js";
export { createMemoryRegistryStore, memoryRegistry } from "./registry/memory-registry.js";
export type { MemoryRegistryOptions, MemoryRegistryStore } from "./registry/memory-registry.js";
export { directRegistry, parseDirectAddress } from "./registry/direct-registry.js";
export type { DirectAddress, DirectRegistryOptions } from "./registry/direct-registry.js";
export { defaultLocalRegistryDirectory, localRegistry } from "./registry/local-registry.js";
export type { LocalRegistryOptions } from "./registry/local-registry.js";
export { defaultRegistryCacheDir, RegistryCache } from "./registry/registry-cache.js";
export type { RegistryCacheOptions } from "./registry/registry-cache.js";
export type { Serializer } from "./serialization/serializer.js";
export type { Address, Link, Listener, Transport } from "./transport/transport.js";
export { tcpTransport } from "./transport/tcp-transport.js";
export type { TcpTransportOptions } from "./transport/tcp-transport.js";
export type { Call, Interceptor, Invoke, MethodRef, Reply } from "./call/call.js";
export type { ClusterView, FaultTolerance } from "./cluster/fault-tolerance/fault-tolerance.js";
export type { LoadBalancer } from "./cluster/load-balancers/load-balancer.js";
export { effectiveWeight } from "./cluster/load-balancers/load-balancer.js";
export { EndpointStats, EndpointStatsTable } from "./cluster/endpoint-stats.js";
export type { EndpointStatsTableOptions } from "./cluster/endpoint-stats.js";
export { HashRing, hashString } from "./cluster/load-balancers/hash-ring.js";
export type { AttemptObserver } from "./call/attempt-observer.js";
export { FrameDecoder } from "./protocol/binary/frame-decoder.js";
export type { FrameDecoderOptions } from "./protocol/binary/frame-decoder.js";
export { encodeFrame, FrameWriter } from "./protocol/binary/frame-encoder.js";
export { decodeRoute, encodeRoute } from "./protocol/binary/route.js";
export { FrameFlags } from "./protocol/binary/frame.js";
export type { Frame, ReceivedFrame } from "./protocol/binary/frame.js";
export { WatchDelivery } from "./registry/watch-delivery.js";
export { checkEndpoint, encodeEndpoint, registryClosedError, registryError } from "./registry/check-endpoint.js";
export { badOption } from "./errors/farcall-error.js";
export { checkRulesToPublish, formatGovernanceRules, maxGovernanceRulesBytes, parseGovernanceRules, RulesWrites, rulesTextOf } from "./registry/governance-rules.js";
export type { GovernanceRules } from "./registry/governance-rules.js";
