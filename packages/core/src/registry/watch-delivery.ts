import { debuglog } from "node:util";
import type { Endpoint } from "./endpoint.js";

const debug = debuglog("farcall:registry");

function byId(a: Endpoint, b: Endpoint): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * The consumer side of one `Registry.watch`: hands full, frozen, id-sorted lists to the callback,
 * skips a list equal to the one delivered last, never re-enters the callback and never calls it
 * after {@link WatchDelivery.stop}. A callback that throws is logged (`NODE_DEBUG=farcall:registry`)
 * and does not stop later deliveries. Registries call {@link WatchDelivery.deliver} from their own
 * asynchronous, serialised loop; this class does no scheduling.
 */
export class WatchDelivery {
  readonly #onChange: (endpoints: readonly Endpoint[]) => void;
  #lastKey: string | undefined;
  #stopped = false;
  #delivering = false;

  constructor(onChange: (endpoints: readonly Endpoint[]) => void) {
    this.#onChange = onChange;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Delivers `endpoints` (any order) unless stopped or equal to the last delivered list. */
  deliver(endpoints: readonly Endpoint[]): void {
    if (this.#stopped || this.#delivering) return;
    const sorted = [...endpoints].sort(byId);
    const key = JSON.stringify(sorted);
    if (key === this.#lastKey) return;
    this.#lastKey = key;
    this.#delivering = true;
    try {
      this.#onChange(Object.freeze(sorted));
    } catch (error) {
      debug("watch callback threw: %o", error);
    } finally {
      this.#delivering = false;
    }
  }

  /** No delivery after this; idempotent. */
  stop(): void {
    this.#stopped = true;
  }
}
