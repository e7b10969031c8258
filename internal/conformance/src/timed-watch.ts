import type { Endpoint, Registry, Unwatch } from "@farcall/core/extension";

/** One delivery of a watch and when it arrived. */
export interface Delivery {
  readonly at: number;
  readonly endpoints: readonly Endpoint[];
}

/** Records every delivery of one `Registry.watch` with its arrival time (`Date.now()`). */
export class TimedWatch {
  readonly deliveries: Delivery[] = [];
  readonly unwatch: Unwatch;

  constructor(registry: Registry, readonly service: string, application?: string) {
    const options = application === undefined ? {} : { application };
    this.unwatch = registry.watch(service, (endpoints) => this.deliveries.push({ at: Date.now(), endpoints }), options);
  }

  /** The last delivered list (empty before the first). */
  last(): readonly Endpoint[] {
    return this.deliveries.at(-1)?.endpoints ?? [];
  }

  /** Whether the last delivery lists a provider listening on `port`. */
  lists(port: number): boolean {
    return this.last().some((e) => e.port === port);
  }

  /** Whether the last delivery lists exactly the providers on `ports`. */
  listsExactly(ports: readonly number[]): boolean {
    const last = this.last();
    return last.length === ports.length && ports.every((p) => last.some((e) => e.port === p));
  }

  /** Ports of the last delivery, sorted, for messages. */
  ports(): number[] {
    return this.last().map((e) => e.port).sort((a, b) => a - b);
  }

  /** A one-line history for failure messages: `+1234 ms [ports]` per delivery since `t0`. */
  history(t0: number): string {
    return this.deliveries.map((d) => `+${d.at - t0} ms [${d.endpoints.map((e) => e.port).join(",")}]`).join("; ");
  }
}
