import { debuglog } from "node:util";
import { checkRulesToPublish } from "@farcall/core/extension";

const debug = debuglog("farcall:registry");

/**
 * Checks the arguments of `publishRules` as core's registries do (`checkRulesToPublish`) and
 * returns the bytes to store.
 * @throws FarcallError `invalid_argument`, reason `bad_rules`, `details.path` `"service"` or `"rules"`.
 */
export function rulesBytes(service: string, rules: string | undefined): Buffer | undefined {
  checkRulesToPublish(service, rules);
  return rules === undefined ? undefined : Buffer.from(rules, "utf8");
}

/**
 * One `watchRules` of a Redis registry: the consumer side of the rules texts its registry's
 * watch loop reads (`redis-watches.ts`). Delivers a text when it differs from the last one
 * delivered; the loop reads one service at a time, so the callback is never re-entered. When the
 * first read fails, `undefined` is delivered; after it, the last text stays.
 */
export class RulesWatch {
  #stopped = false;
  #delivered = false;
  #last: string | undefined;

  constructor(
    readonly service: string,
    readonly onChange: (rules: string | undefined) => void,
  ) {}

  /** A text read from Redis (`undefined`: no rules). */
  deliver(rules: string | undefined): void {
    if (this.#stopped || (this.#delivered && rules === this.#last)) return;
    this.#delivered = true;
    this.#last = rules;
    try {
      this.onChange(rules);
    } catch (error) {
      debug("redis: rules watch callback threw: %o", error);
    }
  }

  /** A read failed: the first delivery is owed regardless. */
  failed(): void {
    if (!this.#delivered) this.deliver(undefined);
  }

  /** No delivery after this. Idempotent. */
  stop(): void {
    this.#stopped = true;
  }
}
