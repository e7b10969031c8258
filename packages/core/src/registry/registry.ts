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
 *
 * Governance rules are an optional capability (memory, local, ZooKeeper, etcd, Redis have it;
 * `direct` has not): one text per service, in the same `service` namespace as the endpoints,
 * written by an operator or a tool with {@link Registry.publishRules} and delivered to every
 * consumer by {@link Registry.watchRules}. The registry carries the text and never interprets it;
 * consumers parse it as untrusted data with `parseGovernanceRules`. Rules are configuration, not
 * a registration: they outlive the instance that published them (its `close()` keeps them) until
 * someone publishes `undefined`. A registry has both methods or neither.
 */
export interface Registry {
  /** Registry kind, e.g. `"local"`, `"zookeeper"`. */
  readonly kind: string;
  register(endpoint: Endpoint): Promise<Registration>;
  watch(service: string, onChange: (endpoints: readonly Endpoint[]) => void, options?: WatchOptions): Unwatch;
  close(): Promise<void>;
  /**
   * Stores `rules` as the governance rules text of `service`, replacing any earlier text;
   * `undefined` deletes it. Resolves once the text is stored, so a watch started afterwards
   * delivers it first; watches already running deliver it soon after. The registry does not parse
   * the text (it may be of a newer format than this process knows).
   * @throws FarcallError `invalid_argument`, reason `bad_rules` (`details.path` `"service"` or
   * `"rules"`): `service` is not a service name (1..256 of `A-Z a-z 0-9 _ . : - / $`), or `rules`
   * is neither `undefined` nor a text of 1..65536 bytes (UTF-8; an empty text is refused, delete
   * with `undefined`); `unavailable`, reason `registry_closed`, after `close()`; `unavailable` when
   * the registry's server cannot be reached in time or refuses the write; `internal` for a local
   * file-system failure.
   */
  publishRules?(service: string, rules: string | undefined): Promise<void>;
  /**
   * Watches the governance rules text of `service`: delivers the current text (`undefined` when
   * there is none, or when it cannot be read before the first delivery is due) once soon after
   * the call, then every change, one delivery at a time, never re-entering `onChange` and never
   * after the returned {@link Unwatch} or `close()`. A value equal to the one delivered last is
   * skipped. A stored empty value counts as none. A stored value over 65536 bytes is not held in
   * memory in full where the server allows: it is delivered cut after 65537 bytes (still over the
   * limit), for the parser to reject as too large. A callback that throws is logged
   * (`NODE_DEBUG=farcall:registry`) and does not stop later deliveries. On a registry already
   * closed it delivers nothing. Never throws.
   */
  watchRules?(service: string, onChange: (rules: string | undefined) => void): Unwatch;
}
