import { debuglog } from "node:util";
import type { Endpoint } from "./endpoint.js";
import type { Registration, Registry, Unwatch } from "./registry.js";
import { checkEndpoint, registryClosedError } from "./check-endpoint.js";
import { checkRulesToPublish } from "./governance-rules.js";
import { WatchDelivery } from "./watch-delivery.js";

const debug = debuglog("farcall:registry");

/**
 * The backing store of in-process registries. Every {@link memoryRegistry} given the same store
 * sees the others' registrations, as a provider app and a consumer app would through a real
 * registry. Holds plain data only: no timers, nothing to close.
 */
export interface MemoryRegistryStore {
  /** The endpoints registered now for `service`, sorted by id. */
  endpoints(service: string): readonly Endpoint[];
  /** The services with at least one registered endpoint. */
  services(): readonly string[];
  /** The governance rules text published for `service`, or `undefined`. */
  rules(service: string): string | undefined;
}

interface StoreState {
  /** service → registration token → endpoint. */
  readonly entries: Map<string, Map<object, Endpoint>>;
  /** service → listeners told (synchronously) that the service changed. */
  readonly listeners: Map<string, Set<() => void>>;
  /** service → its governance rules text. */
  readonly rules: Map<string, string>;
  /** service → listeners told (synchronously) that the service's rules changed. */
  readonly rulesListeners: Map<string, Set<() => void>>;
}

const states = new WeakMap<MemoryRegistryStore, StoreState>();

/** Creates an empty {@link MemoryRegistryStore}. */
export function createMemoryRegistryStore(): MemoryRegistryStore {
  const state: StoreState = { entries: new Map(), listeners: new Map(), rules: new Map(), rulesListeners: new Map() };
  const store: MemoryRegistryStore = {
    endpoints(service) {
      const list = [...(state.entries.get(service)?.values() ?? [])];
      return Object.freeze(list.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)));
    },
    services() {
      return Object.freeze([...state.entries.keys()]);
    },
    rules(service) {
      return state.rules.get(service);
    },
  };
  states.set(store, state);
  return store;
}

function stateOf(store: MemoryRegistryStore): StoreState {
  const state = states.get(store);
  if (state === undefined) throw new TypeError("store: not created by createMemoryRegistryStore()");
  return state;
}

function changed(listeners: Map<string, Set<() => void>>, service: string): void {
  for (const listener of listeners.get(service) ?? []) listener();
}

/** Adds `listener` to the set of `service`; returns what removes it again. */
function listen(listeners: Map<string, Set<() => void>>, service: string, listener: () => void): () => void {
  let set = listeners.get(service);
  if (set === undefined) {
    set = new Set();
    listeners.set(service, set);
  }
  set.add(listener);
  return () => {
    const current = listeners.get(service);
    current?.delete(listener);
    if (current?.size === 0) listeners.delete(service);
  };
}

/** Options of {@link memoryRegistry}. */
export interface MemoryRegistryOptions {
  /** The shared backing store. Default: a new store private to this registry. */
  readonly store?: MemoryRegistryStore;
}

/**
 * An in-process {@link Registry} for tests and single-process apps: no I/O, no timers. Watch
 * callbacks run in a microtask after the change (never synchronously inside `register`, never
 * concurrently) with the full list; changes made in one tick are coalesced into one delivery.
 * `close()` unregisters what this instance registered and stops its watches; the store lives on.
 * Governance rules (`publishRules`, `watchRules`) live in the store, delivered the same way; they
 * outlive the instance that published them.
 * @throws TypeError when `store` was not made by {@link createMemoryRegistryStore}.
 */
export function memoryRegistry(options: MemoryRegistryOptions = {}): Registry {
  const store = options.store ?? createMemoryRegistryStore();
  const state = stateOf(store);
  const ownTokens = new Map<object, string>();
  const stops = new Set<() => void>();
  let closed = false;

  function remove(token: object): void {
    const service = ownTokens.get(token);
    if (service === undefined) return;
    ownTokens.delete(token);
    const entries = state.entries.get(service);
    entries?.delete(token);
    if (entries?.size === 0) state.entries.delete(service);
    changed(state.listeners, service);
  }

  return {
    kind: "memory",

    async register(endpoint: Endpoint): Promise<Registration> {
      if (closed) throw registryClosedError("memory");
      const checked = checkEndpoint(endpoint);
      const token = {};
      let entries = state.entries.get(checked.service);
      if (entries === undefined) {
        entries = new Map();
        state.entries.set(checked.service, entries);
      }
      entries.set(token, checked);
      ownTokens.set(token, checked.service);
      changed(state.listeners, checked.service);
      return {
        async unregister() {
          remove(token);
        },
      };
    },

    watch(service: string, onChange: (endpoints: readonly Endpoint[]) => void): Unwatch {
      if (closed) return () => {};
      const delivery = new WatchDelivery(onChange);
      let scheduled = false;
      const listener = (): void => {
        if (scheduled || delivery.stopped) return;
        scheduled = true;
        queueMicrotask(() => {
          scheduled = false;
          delivery.deliver(store.endpoints(service));
        });
      };
      const unlisten = listen(state.listeners, service, listener);
      const stop = (): void => {
        delivery.stop();
        stops.delete(stop);
        unlisten();
      };
      stops.add(stop);
      listener();
      return stop;
    },

    async publishRules(service: string, rules: string | undefined): Promise<void> {
      checkRulesToPublish(service, rules);
      if (closed) throw registryClosedError("memory");
      if (rules === state.rules.get(service)) return;
      if (rules === undefined) state.rules.delete(service);
      else state.rules.set(service, rules);
      changed(state.rulesListeners, service);
    },

    watchRules(service: string, onChange: (rules: string | undefined) => void): Unwatch {
      if (closed) return () => {};
      let stopped = false;
      let scheduled = false;
      let delivered = false;
      let last: string | undefined;
      const listener = (): void => {
        if (scheduled || stopped) return;
        scheduled = true;
        queueMicrotask(() => {
          scheduled = false;
          const rules = store.rules(service);
          if (stopped || (delivered && rules === last)) return;
          delivered = true;
          last = rules;
          try {
            onChange(rules);
          } catch (error) {
            debug("rules watch callback threw: %o", error);
          }
        });
      };
      const unlisten = listen(state.rulesListeners, service, listener);
      const stop = (): void => {
        stopped = true;
        stops.delete(stop);
        unlisten();
      };
      stops.add(stop);
      listener();
      return stop;
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      for (const stop of [...stops]) stop();
      for (const token of [...ownTokens.keys()]) remove(token);
    },
  };
}
