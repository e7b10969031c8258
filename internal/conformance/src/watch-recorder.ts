import type { Endpoint, Registry, Unwatch } from "@farcall/core/extension";
import { setTimeout as delay } from "node:timers/promises";

/** Records every delivery of one `Registry.watch`, and whether the callback was ever re-entered. */
export class WatchRecorder {
  readonly lists: (readonly Endpoint[])[] = [];
  /** True if a delivery started while another was still running. */
  reentered = false;
  readonly unwatch: Unwatch;
  readonly #deadlineMs: number;
  #inside = false;

  /**
   * Watches `service` on `registry`. `onDelivery` runs inside the callback (after recording);
   * what it throws propagates into the registry, as a careless consumer's error would.
   */
  constructor(
    registry: Registry,
    readonly service: string,
    deadlineMs: number,
    onDelivery?: (endpoints: readonly Endpoint[]) => void,
  ) {
    this.#deadlineMs = deadlineMs;
    this.unwatch = registry.watch(service, (endpoints) => {
      if (this.#inside) this.reentered = true;
      this.#inside = true;
      try {
        this.lists.push(endpoints);
        onDelivery?.(endpoints);
      } finally {
        this.#inside = false;
      }
    });
  }

  /** The ids of the last delivery, sorted; `undefined` before the first. */
  lastIds(): string[] | undefined {
    const last = this.lists.at(-1);
    return last === undefined ? undefined : last.map((e) => e.id).sort();
  }

  /** Waits (bounded by the deadline) until the last delivery has exactly `ids`. */
  async untilIds(ids: readonly string[], what: string): Promise<readonly Endpoint[]> {
    const want = JSON.stringify([...ids].sort());
    await this.until(() => JSON.stringify(this.lastIds()) === want, what);
    return this.lists.at(-1) ?? [];
  }

  /** Waits (bounded by the deadline, polling every 5 ms) until `condition` holds. */
  async until(condition: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + this.#deadlineMs;
    for (let round = 0; round < 100_000; round++) {
      if (condition()) return;
      if (Date.now() > deadline) break;
      await delay(5);
    }
    throw new Error(
      `${this.service}: no ${what} within ${this.#deadlineMs} ms; last delivery: ${JSON.stringify(this.lastIds())}` +
        ` (${this.lists.length} deliveries)`,
    );
  }
}
