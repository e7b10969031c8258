import type { Endpoint } from "./endpoint.js";

/** A live registration; `unregister()` is idempotent. */
export interface Registration {
  unregister(): Promise<void>;
}

/** Stops a watch; idempotent. */
export type Unwatch = () => void;

/** Who is watching, for registries that list consumers (ZooKeeper's `consumers/` nodes). */
export interface WatchOptions {
  /** The watching application's name, as operators should see it. */
  readonly application?: string;
}

/**
 * Where providers announce themselves and consumers find them. Implementations: `local`,
 * `direct`, `memory` in core; ZooKeeper, etcd and Redis in their own packages. The shared
 * conformance suite in `internal/conformance` holds every implementation to the same contract:
 * - `register` resolves once the endpoint is visible to watchers;
 * - `watch` delivers the full current list of endpoints of `service` (every version and group;
 *   consumers filter) once soon after the call, then again on every change, never concurrently;
 * - `close` unregisters everything this instance registered, stops every watch and releases
 *   every timer, socket and file handle; `register` after `close` rejects with `unavailable`
 *   (reason `registry_closed`);
 * - a malformed endpoint is rejected with `invalid_argument` (reason `bad_endpoint`).
 */
export interface Registry {
  /** Registry kind, e.g. `"local"`, `"zookeeper"`. */
  readonly kind: string;
  register(endpoint: Endpoint): Promise<Registration>;
  watch(service: string, onChange: (endpoints: readonly Endpoint[]) => void, options?: WatchOptions): Unwatch;
  close(): Promise<void>;
}
