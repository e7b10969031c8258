/**
 * `@farcall/core/testing`: in-memory transport and registry, for tests of applications built on
 * farcall without sockets or files.
 */
export { memoryTransport } from "./transport/memory-transport.js";
export { createMemoryRegistryStore, memoryRegistry } from "./registry/memory-registry.js";
export type { MemoryRegistryOptions, MemoryRegistryStore } from "./registry/memory-registry.js";
export { TimingWheel } from "./timing/timing-wheel.js";
export type { TimerEntry, TimingWheelOptions } from "./timing/timing-wheel.js";
export type { Clock } from "./timing/clock.js";
export { sampleEndpoint } from "./registry/sample-endpoint.js";
export { seededRandom } from "./timing/seeded-random.js";
