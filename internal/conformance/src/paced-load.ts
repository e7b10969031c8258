import { FarcallError } from "@farcall/core";
import type { Served } from "./faults-echo.js";

/** A failed call: when (ms since the load started), which method, the error's code and message. */
export interface LoadFailure {
  readonly atMs: number;
  readonly method: string;
  readonly code: string;
  readonly message: string;
}

/** Options of {@link PacedLoad}. */
export interface PacedLoadOptions {
  /** Calls issued per second, spread over ticks. */
  readonly ratePerS: number;
  /** Tick period in ms; each tick issues what is due (at most 4 ticks' worth, so a stall is not followed by a burst). */
  readonly tickMs: number;
  /** The load stops issuing by itself after this long, whatever the test does. */
  readonly maxDurationMs: number;
  /** Calls not issued while this many are awaiting replies (counted as skipped). */
  readonly maxInFlight: number;
}

/** One kind of call: its name for reports and the call itself (n is the call's sequence number). */
export interface LoadCall {
  readonly method: string;
  readonly call: (n: number) => Promise<Served>;
}

/**
 * An open-loop load: every `tickMs`, issues the calls due at `ratePerS`, cycling through `calls`.
 * Records every outcome: successes, failures (code and message), and per provider pid the times
 * of its first and last reply. Bounded in duration and in calls in flight.
 */
export class PacedLoad {
  ok = 0;
  issued = 0;
  skipped = 0;
  inFlight = 0;
  readonly failures: LoadFailure[] = [];
  /** pid → first and last reply time (`Date.now()`) and count. */
  readonly served = new Map<number, { first: number; last: number; count: number }>();
  readonly startedAt = Date.now();
  readonly #calls: readonly LoadCall[];
  readonly #options: PacedLoadOptions;
  readonly #pending = new Set<Promise<void>>();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(calls: readonly LoadCall[], options: PacedLoadOptions) {
    if (calls.length === 0) throw new Error("PacedLoad needs at least one call");
    this.#calls = calls;
    this.#options = options;
    this.#timer = setTimeout(() => this.#tick(), options.tickMs);
  }

  /** Time of the first reply from `pid`, if any. */
  firstReplyFrom(pid: number): number | undefined {
    return this.served.get(pid)?.first;
  }

  /** Stops issuing and waits for the calls in flight (each bounded by its deadline). */
  async stop(): Promise<this> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await Promise.all([...this.#pending]);
    return this;
  }

  /** Failures grouped as `count × method code: message`, for assertion messages. */
  summary(limit = 10): string {
    const groups = new Map<string, number>();
    for (const f of this.failures) {
      const key = `${f.method} ${f.code}: ${f.message}`;
      groups.set(key, (groups.get(key) ?? 0) + 1);
    }
    const lines = [...groups].sort((a, b) => b[1] - a[1]).slice(0, limit).map(([k, n]) => `${n} × ${k}`);
    const first = this.failures[0];
    const last = this.failures.at(-1);
    const when = first && last ? ` (between +${first.atMs} and +${last.atMs} ms)` : "";
    return `${this.failures.length} failed of ${this.issued} issued${when}${lines.length ? `:\n  ${lines.join("\n  ")}` : ""}`;
  }

  /** Achieved rate and outcome counts, for diagnostics. */
  describe(): string {
    const seconds = (Date.now() - this.startedAt) / 1000;
    return `${this.issued} calls in ${seconds.toFixed(1)} s (${Math.round(this.issued / seconds)}/s), ${this.ok} ok, ${this.failures.length} failed, ${this.skipped} skipped`;
  }

  #tick(): void {
    if (this.#stopped) return;
    const { ratePerS, tickMs, maxDurationMs, maxInFlight } = this.#options;
    const elapsed = Date.now() - this.startedAt;
    if (elapsed >= maxDurationMs) {
      this.#stopped = true;
      return;
    }
    const due = Math.min(Math.floor((elapsed * ratePerS) / 1000) - this.issued - this.skipped, Math.ceil((ratePerS * tickMs * 4) / 1000));
    for (let i = 0; i < due; i++) {
      if (this.inFlight >= maxInFlight) {
        this.skipped++;
        continue;
      }
      this.#issue();
    }
    this.#timer = setTimeout(() => this.#tick(), tickMs);
  }

  #issue(): void {
    const n = this.issued++;
    const { method, call } = this.#calls[n % this.#calls.length] as LoadCall;
    this.inFlight++;
    const done = call(n).then(
      (served) => {
        this.ok++;
        const now = Date.now();
        const seen = this.served.get(served.pid);
        if (seen === undefined) this.served.set(served.pid, { first: now, last: now, count: 1 });
        else {
          seen.last = now;
          seen.count++;
        }
      },
      (error: unknown) => {
        const e = FarcallError.from(error);
        this.failures.push({ atMs: Date.now() - this.startedAt, method, code: e.code, message: e.message });
      },
    );
    const tracked = done.finally(() => {
      this.inFlight--;
      this.#pending.delete(tracked);
    });
    this.#pending.add(tracked);
  }
}
