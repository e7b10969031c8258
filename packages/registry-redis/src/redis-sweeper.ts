import { debuglog } from "node:util";
import type { RedisConnection } from "./redis-connection.js";
import type { GlobalKeys } from "./redis-keys.js";
import { runScript, sweepScript } from "./redis-scripts.js";

const debug = debuglog("farcall:registry");

/** Most stale providers one sweep removes per service (the next sweep takes the rest). */
const maxSweptPerService = 1000;

/** Options of {@link Sweeper}; durations in milliseconds. */
export interface SweeperOptions {
  readonly connection: RedisConnection;
  readonly prefix: string;
  readonly global: GlobalKeys;
  readonly sweepMs: number;
  readonly expireAfterMs: number;
  /** No sweeper contact for longer than this starts a grace period (see the sweep script). */
  readonly silenceMs: number;
}

/**
 * One registry's sweeper: every `sweepMs` (±10 % jitter, counted from the end of the previous
 * call, so calls never overlap) one call of the atomic sweep script, skipped while disconnected.
 * Every registry with a registration or a watch runs one; the script makes that safe and cheap
 * (at most one real sweep per `sweepMs` across all of them, the others return at once).
 */
export class Sweeper {
  readonly #options: SweeperOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #started = false;
  #stopped = false;

  constructor(options: SweeperOptions) {
    this.#options = options;
  }

  /** Starts the timer (once). */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    this.#schedule();
  }

  /** No call after this; resolves when the call in flight ends. Idempotent. */
  stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    return this.#running ?? Promise.resolve();
  }

  /** One sweep call now (tests and the timer); resolves with the script's answer, if connected. */
  async sweepOnce(): Promise<readonly [string, number] | undefined> {
    const { connection, prefix, global, expireAfterMs, silenceMs, sweepMs } = this.#options;
    const keys = [global.sweeper, global.services, global.version];
    // Calls closer together than 0.8 × sweepMs are skipped by the script: jitter can make two of
    // one registry's calls that close, but never four.
    const args = [prefix, global.channel, expireAfterMs, silenceMs, Math.floor(sweepMs * 0.8), maxSweptPerService];
    const answer = await connection.runIfReady("sweep", (client) => runScript(client, sweepScript, keys, args));
    if (!Array.isArray(answer)) return undefined;
    const [outcome, removed] = answer as [unknown, unknown];
    const result = [String(outcome), Number(removed)] as const;
    if (result[1] > 0) debug("redis: swept %d stale providers", result[1]);
    return result;
  }

  #schedule(): void {
    if (this.#stopped) return;
    const delay = Math.round(this.#options.sweepMs * (0.9 + Math.random() * 0.2));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#running = this.sweepOnce().then(
        () => undefined,
        (error: unknown) => debug("redis: sweep failed: %o", error),
      ).finally(() => {
        this.#running = undefined;
        this.#schedule();
      });
    }, delay);
    this.#timer.unref();
  }
}
