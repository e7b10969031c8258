import { FarcallError } from "../errors/farcall-error.js";

/*
 * Governance rules: the operator's overrides of one service, published through the registry
 * (`Registry.publishRules`) and delivered to every consumer (`Registry.watchRules`) as text. The
 * text comes from whoever can write to the registry, so it is untrusted data: parsed with
 * JSON.parse, then checked field by field, never evaluated. Document (version 1):
 *
 *   {
 *     "version"?: 1,
 *     "providers"?: { "<host:port>": { "weight"?: 0..10000, "disabled"?: boolean } },   ≤ 1000 entries
 *     "routes"?: [ "<condition rule>" | { "rule": "<condition rule>", "force"?: boolean, "enabled"?: boolean } ],   ≤ 64
 *     "tagForce"?: boolean
 *   }
 */

/** Most bytes (UTF-8) of one rules text, in the registry and in {@link parseGovernanceRules}: 65536. */
export const maxGovernanceRulesBytes = 65_536;
/** Most entries of `providers`: 1000. */
export const maxProviderOverrides = 1000;
/** Most entries of `routes`: 64. */
export const maxRouteRules = 64;
/** Most characters (UTF-16 code units) of one route rule's text: 1024. */
export const maxRouteRuleLength = 1024;

/** The override of one provider address. An absent field overrides nothing. */
export interface ProviderOverride {
  /** Replaces the weight the provider registered with, 0..10000 (0: no calls while another has weight). */
  readonly weight?: number;
  /** `true`: consumers send this provider no calls. */
  readonly disabled?: boolean;
}

/** One routing rule. Its text is only length-checked here; the condition-rule parser reads it. */
export interface RouteRule {
  /** The condition rule text, 1..1024 characters. */
  readonly rule: string;
  /** Whether the rule applies when it matches no provider (an empty result). Default `false`. */
  readonly force: boolean;
  /** Whether the rule applies at all. Default `true`. */
  readonly enabled: boolean;
}

/** A validated, frozen rules document. Never mutate it: consumers share it as a snapshot. */
export interface GovernanceRules {
  /**
   * Overrides by provider address `host:port` (the endpoint's `host`, a colon, its `port`), in
   * document order. A frozen object without prototype: `providers[address]` is `undefined` for
   * any address not listed, `"constructor"` included.
   */
  readonly providers: Readonly<Record<string, ProviderOverride>>;
  /** Routing rules in document order; a bare string in the document is `{ rule, force: false, enabled: true }`. */
  readonly routes: readonly RouteRule[];
  /** Whether a call asking for a tag no provider has fails instead of falling back; absent: no override. */
  readonly tagForce?: boolean;
  /**
   * Paths of the fields this version does not know, in document order (`"comment"`,
   * `"providers.10.0.0.1:80.label"`): ignored, so a newer writer's additions do not break an
   * older reader. Never part of {@link formatGovernanceRules}'s output.
   */
  readonly ignored: readonly string[];
}

/** Keys that could reach an object's prototype in careless code: rejected wherever they appear. */
const forbiddenKeys = new Set(["__proto__", "constructor", "prototype"]);
const hostPattern = /^[A-Za-z0-9_.:\-[\]]{1,255}$/;
const portPattern = /^[1-9][0-9]{0,4}$/;

/** A path segment for messages and details, cut so a hostile key cannot make them large. */
function segment(key: string): string {
  return key.length <= 256 ? key : `${key.slice(0, 256)}…`;
}

function bad(path: string, problem: string): never {
  throw new FarcallError("invalid_argument", `governance rules: ${path === "" ? "document" : path}: ${problem}`, {
    reason: "bad_rules",
    details: { path },
    sent: false,
  });
}

/** An object without prototype: no inherited key (`constructor`, `toString`) can be looked up in it. */
function emptyRecord<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Own enumerable keys of `o`, each checked against {@link forbiddenKeys}. */
function keysOf(o: Record<string, unknown>, path: string): string[] {
  const keys = Object.keys(o);
  for (const key of keys) {
    if (forbiddenKeys.has(key)) bad(path === "" ? key : `${path}.${key}`, "a forbidden key");
  }
  return keys;
}

/** Whether `key` is `host:port` as farcall writes provider addresses (the last `:` splits them). */
export function isProviderAddress(key: string): boolean {
  const colon = key.lastIndexOf(":");
  if (colon <= 0) return false;
  const port = key.slice(colon + 1);
  return hostPattern.test(key.slice(0, colon)) && portPattern.test(port) && Number(port) <= 65535;
}

function parseProviders(value: unknown, ignored: string[]): Record<string, ProviderOverride> {
  if (!isRecord(value)) bad("providers", "expected an object of host:port → override");
  const keys = keysOf(value, "providers");
  if (keys.length > maxProviderOverrides) bad("providers", `more than ${maxProviderOverrides} entries`);
  const providers = emptyRecord<ProviderOverride>();
  for (const key of keys) {
    const path = `providers.${segment(key)}`;
    if (!isProviderAddress(key)) bad(path, "expected a provider address host:port, port 1..65535");
    const entry = value[key];
    if (!isRecord(entry)) bad(path, "expected an object { weight?, disabled? }");
    const override: { weight?: number; disabled?: boolean } = {};
    for (const field of keysOf(entry, path)) {
      const v = entry[field];
      if (field === "weight") {
        if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 10_000) bad(`${path}.weight`, "expected an integer 0..10000");
        override.weight = v;
      } else if (field === "disabled") {
        if (typeof v !== "boolean") bad(`${path}.disabled`, "expected true or false");
        override.disabled = v;
      } else {
        ignored.push(`${path}.${segment(field)}`);
      }
    }
    providers[key] = Object.freeze(override);
  }
  return Object.freeze(providers);
}

function ruleText(value: unknown, path: string): string {
  if (typeof value !== "string" || value.length === 0 || value.length > maxRouteRuleLength) {
    bad(path, `expected a rule text of 1..${maxRouteRuleLength} characters`);
  }
  return value;
}

function parseRoutes(value: unknown, ignored: string[]): RouteRule[] {
  if (!Array.isArray(value)) bad("routes", "expected an array of rules");
  if (value.length > maxRouteRules) bad("routes", `more than ${maxRouteRules} rules`);
  return value.map((item: unknown, i): RouteRule => {
    const path = `routes.${i}`;
    if (typeof item === "string") return Object.freeze({ rule: ruleText(item, path), force: false, enabled: true });
    if (!isRecord(item)) bad(path, "expected a rule text or { rule, force?, enabled? }");
    let rule: string | undefined;
    let force = false;
    let enabled = true;
    for (const field of keysOf(item, path)) {
      const v = item[field];
      if (field === "rule") rule = ruleText(v, `${path}.rule`);
      else if (field === "force" || field === "enabled") {
        if (typeof v !== "boolean") bad(`${path}.${field}`, "expected true or false");
        if (field === "force") force = v;
        else enabled = v;
      } else {
        ignored.push(`${path}.${segment(field)}`);
      }
    }
    if (rule === undefined) bad(`${path}.rule`, "missing");
    return Object.freeze({ rule, force, enabled });
  });
}

/**
 * Parses and validates an untrusted rules text (see the document shape at the top of this file).
 * Data only: `JSON.parse`, then every known field checked; nothing is evaluated. Unknown fields
 * are ignored and listed in `ignored`; a `version` other than 1 is rejected, since a later version
 * may change what these fields mean.
 * @returns a frozen {@link GovernanceRules}.
 * @throws FarcallError `invalid_argument`, reason `bad_rules`, `details.path` naming the offending
 * field (`""` for the whole document, `"providers.10.0.0.1:1.weight"`, `"routes.3.rule"`): the
 * text is over {@link maxGovernanceRulesBytes} bytes, not JSON, not an object, holds a key
 * `__proto__`, `constructor` or `prototype`, or a field of the wrong type or out of range.
 */
export function parseGovernanceRules(text: string): GovernanceRules {
  if (typeof text !== "string") bad("", "expected a text");
  // Each UTF-16 unit takes at least one UTF-8 byte: a longer string is certainly too large.
  if (text.length > maxGovernanceRulesBytes || Buffer.byteLength(text, "utf8") > maxGovernanceRulesBytes) {
    bad("", `over ${maxGovernanceRulesBytes} bytes`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    bad("", "not JSON");
  }
  if (!isRecord(value)) bad("", "expected a JSON object");
  const ignored: string[] = [];
  let providers: Record<string, ProviderOverride> = Object.freeze(emptyRecord<ProviderOverride>());
  let routes: RouteRule[] = [];
  let tagForce: boolean | undefined;
  for (const key of keysOf(value, "")) {
    const v = value[key];
    if (key === "version") {
      if (v !== 1) bad("version", "expected 1 (this reader knows version 1 only)");
    } else if (key === "providers") providers = parseProviders(v, ignored);
    else if (key === "routes") routes = parseRoutes(v, ignored);
    else if (key === "tagForce") {
      if (typeof v !== "boolean") bad("tagForce", "expected true or false");
      tagForce = v;
    } else {
      ignored.push(segment(key));
    }
  }
  return Object.freeze({
    providers,
    routes: Object.freeze(routes),
    ...(tagForce === undefined ? {} : { tagForce }),
    ignored: Object.freeze(ignored),
  });
}

/**
 * The canonical text of `rules`: compact JSON with `"version": 1`, providers sorted by address,
 * every route as `{ rule, force, enabled }`, empty sections and `ignored` left out. Equal rules
 * give equal texts, and {@link parseGovernanceRules} reads the text back to equal rules.
 * @throws FarcallError `invalid_argument`, reason `bad_rules`, when `rules` (built in code rather
 * than parsed) holds a value a reader would reject, or its text is over
 * {@link maxGovernanceRulesBytes} bytes; `details.path` as for {@link parseGovernanceRules}.
 */
export function formatGovernanceRules(rules: GovernanceRules): string {
  if (typeof rules !== "object" || rules === null) bad("", "expected a rules object");
  const document: Record<string, unknown> = { version: 1 };
  const providers = rules.providers;
  const addresses = typeof providers === "object" && providers !== null ? Object.keys(providers).sort() : [];
  if (addresses.length > 0) {
    const sorted = emptyRecord<unknown>();
    for (const key of addresses) {
      const override = providers[key];
      sorted[key] = { ...(override?.weight === undefined ? {} : { weight: override.weight }), ...(override?.disabled === undefined ? {} : { disabled: override.disabled }) };
    }
    document["providers"] = sorted;
  }
  if (rules.routes !== undefined && rules.routes.length > 0) {
    document["routes"] = rules.routes.map((r) => ({ rule: r.rule, force: r.force, enabled: r.enabled }));
  }
  if (rules.tagForce !== undefined) document["tagForce"] = rules.tagForce;
  const text = JSON.stringify(document);
  // Read back: the only output is one every reader accepts.
  parseGovernanceRules(text);
  return text;
}

const serviceNamePattern = /^[A-Za-z0-9_.:\-/$]{1,256}$/;

/**
 * Checks the arguments of `Registry.publishRules` (shared by the registries in core): `service` a
 * service name as endpoints have (1..256 of `A-Z a-z 0-9 _ . : - / $`), `rules` `undefined` or a
 * text of 1..{@link maxGovernanceRulesBytes} bytes. The text itself is not parsed: a registry
 * carries texts of formats newer than its own.
 * @throws FarcallError `invalid_argument`, reason `bad_rules`, `details.path` `"service"` or `"rules"`.
 */
export function checkRulesToPublish(service: string, rules: string | undefined): void {
  if (typeof service !== "string" || !serviceNamePattern.test(service)) {
    bad("service", "expected a service name of 1..256 letters, digits or _ . : - / $");
  }
  if (rules === undefined) return;
  if (typeof rules !== "string" || rules.length === 0) bad("rules", "expected a non-empty text, or undefined to delete the rules");
  if (rules.length > maxGovernanceRulesBytes || Buffer.byteLength(rules, "utf8") > maxGovernanceRulesBytes) {
    bad("rules", `over ${maxGovernanceRulesBytes} bytes`);
  }
}

/**
 * Untrusted stored bytes (a registry node's data, a key's value) as a rules text: undefined for
 * none or empty; cut after {@link maxGovernanceRulesBytes} + 1 bytes, so that
 * {@link parseGovernanceRules} refuses a longer one as too large instead of it being read whole.
 */
export function rulesTextOf(bytes: Buffer | undefined): string | undefined {
  if (bytes === undefined || bytes.length === 0) return undefined;
  return bytes.subarray(0, maxGovernanceRulesBytes + 1).toString("utf8");
}

/**
 * Runs the rules writes of one registry instance one service at a time, in call order, so that
 * the last `publishRules` called is the one that stays. Shared by every registry.
 */
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
