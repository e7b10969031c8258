import { FarcallError } from "../errors/farcall-error.js";
import type { Endpoint } from "./endpoint.js";
import type { Registration, Registry, Unwatch, WatchOptions } from "./registry.js";

/**
 * A registry whose implementation is loaded on first use (a plugin package named by an address
 * scheme, imported asynchronously). `watch` returns at once and starts the real watch when the
 * implementation is there; `register` and `close` wait for it. When loading fails, `register`
 * rejects with the loading error and watches deliver nothing.
 */
export function lazyRegistry(kind: string, load: () => Promise<Registry>): Registry {
  let loading: Promise<Registry> | undefined;
  let closed = false;
  const get = (): Promise<Registry> => {
    loading ??= load();
    return loading;
  };
  return {
    kind,
    async register(endpoint: Endpoint): Promise<Registration> {
      if (closed) throw new FarcallError("unavailable", `${kind} registry is closed`, { reason: "registry_closed", sent: false });
      return (await get()).register(endpoint);
    },
    watch(service: string, onChange: (endpoints: readonly Endpoint[]) => void, options?: WatchOptions): Unwatch {
      let stopped = false;
      let unwatch: Unwatch | undefined;
      get().then(
        (registry) => {
          if (!stopped && !closed) unwatch = registry.watch(service, onChange, options);
        },
        () => undefined, // register() reports the loading error; a watch just stays empty
      );
      return () => {
        stopped = true;
        unwatch?.();
      };
    },
    async publishRules(service: string, rules: string | undefined): Promise<void> {
      if (closed) throw new FarcallError("unavailable", `${kind} registry is closed`, { reason: "registry_closed", sent: false });
      const registry = await get();
      if (registry.publishRules === undefined) throw new FarcallError("unimplemented", `the ${kind} registry does not store governance rules`, { sent: false });
      return registry.publishRules(service, rules);
    },
    watchRules(service: string, onChange: (rules: string | undefined) => void): Unwatch {
      let stopped = false;
      let unwatch: Unwatch | undefined;
      get().then(
        (registry) => {
          if (stopped || closed) return;
          // A registry without rules has none to deliver: say so once, as a registry with none would.
          if (registry.watchRules === undefined) onChange(undefined);
          else unwatch = registry.watchRules(service, onChange);
        },
        () => undefined,
      );
      return () => {
        stopped = true;
        unwatch?.();
      };
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      if (loading === undefined) return;
      const registry = await loading.catch(() => undefined);
      await registry?.close();
    },
  };
}
