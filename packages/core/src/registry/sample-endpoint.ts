import type { Endpoint } from "./endpoint.js";

/**
 * A well-formed endpoint for tests of registries, balancers and pools: `service` on
 * `127.0.0.1:port`, version "1", group "", weight 100, no warm-up; `overrides` replace any field.
 */
export function sampleEndpoint(service: string, port: number, overrides: Partial<Endpoint> = {}): Endpoint {
  return Object.freeze({
    id: `127.0.0.1:${port}//${service}:1#${overrides.pid ?? 1}`,
    service,
    version: "1",
    group: "",
    host: "127.0.0.1",
    port,
    protocol: "farcall",
    serializer: "msgpack",
    weight: 100,
    warmupMs: 0,
    startTime: 0,
    application: "",
    pid: 1,
    methods: Object.freeze([]),
    tag: "",
    ...overrides,
  });
}
