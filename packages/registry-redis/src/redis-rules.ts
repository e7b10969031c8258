import { debuglog } from "node:util";
import { FarcallError } from "@farcall/core/extension";

const debug = debuglog("farcall:registry");

/** Most bytes of a rules text: core's `maxGovernanceRulesBytes` (not exported to registry packages). */
export const maxRulesBytes = 65_536;
const serviceName = /^[A-Za-z0-9_.:\-/$]{1,256}$/;

function badRules(path: "service" | "rules", problem: string): never {
  throw new FarcallError("invalid_argument", `governance rules: ${path}: ${problem}`, { reason: "bad_rules", details: { path }, sent: false });
}

/**
 * Checks the arguments of `publishRules` as core's registries do and returns the bytes to store.
 * @throws FarcallError `invalid_argument`, reason `bad_rules`, `details.path` `"service"` or `"rules"`.
 */
export function rulesBytes(service: string, rules: string | undefined): Buffer | undefined {
  if (typeof service !== "string" || !serviceName.test(service)) badRules("service", "expected a service name of 1..256 letters, digits or _ . : - / $");
  if (rules === undefined) return undefined;
  if (typeof rules !== "string" || rules.length === 0) badRules("rules", "expected a non-empty text, or undefined to delete the rules");
  if (rules.length > maxRulesBytes) badRules("rules", `over ${maxRulesBytes} bytes`);
  const bytes = Buffer.from(rules, "utf8");
  if (bytes.length > maxRulesBytes) badRules("rules", `over ${maxRulesBytes} bytes`);
  return bytes;
}

/** Runs the rules writes of one registry instance one service at a time, in call order. */
export class RulesWrites {
  readonly #last = new Map<string, Promise<void>>();

  /** Runs `write` after the writes of `service` called before it (whatever their outcome). */
  run(service: string, write: () => Promise<void>): Promise<void> {
    const next = (this.#last.get(service) ?? Promise.resolve()).catch(() => undefined).then(write);
    this.#last.set(service, next);
    const forget = (): void => {
      if (this.#last.get(service) === next) this.#last.delete(service);
    };
    next.then(forget, forget);
    return next;
  }
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
