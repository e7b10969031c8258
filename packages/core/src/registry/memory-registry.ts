import type { Endpoint } from "./endpoint.js";
import type { Registration, Registry, Unwatch } from "./registry.js";
import { checkEndpoint, registryClosedError } from "./check-endpoint.js";
import { WatchDelivery } from "./watch-delivery.js";

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
}

interface StoreState {
  /** service → registration token → endpoint. */
  readonly entries: Map<string, Map<object, Endpoint>>;
  /** service → listeners told (synchronously) that the service changed. */
  readonly listeners: Map<string, Set<() => void>>;
}

const states = new WeakMap<MemoryRegistryStore, StoreState>();

/** Creates an empty {@link MemoryRegistryStore}. */
export function createMemoryRegistryStore(): MemoryRegistryStore {
  const state: StoreState = { entries: new Map(), listeners: new Map() };
  const store: MemoryRegistryStore = {
    endpoints(service) {
      const list = [...(state.entries.get(service)?.values() ?? [])];
      return Object.freeze(list.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)));
    },
    services() {
      return Object.freeze([...state.entries.keys()]);
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

function changed(state: StoreState, service: string): void {
  for (const listener of state.listeners.get(service) ?? []) listener();
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
    changed(state, service);
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
      changed(state, checked.service);
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
      let listeners = state.listeners.get(service);
      if (listeners === undefined) {
        listeners = new Set();
        state.listeners.set(service, listeners);
      }
      listeners.add(listener);
      const stop = (): void => {
        delivery.stop();
        stops.delete(stop);
        const current = state.listeners.get(service);
        current?.delete(listener);
        if (current?.size === 0) state.listeners.delete(service);
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
