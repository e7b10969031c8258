import type { Call } from "../../call/call.js";
import { FarcallError } from "../../errors/farcall-error.js";
import type { Endpoint } from "../../registry/endpoint.js";
import type { RouteContext } from "./router.js";
import { scalarText } from "../../call/scalar-text.js";

/** `=`: the subject matches any of the values; `!=`: it matches none of them. */
export type ConditionOperator = "=" | "!=";

/**
 * One condition of a rule's `when` side, about the call and the consumer making it:
 * - `method`: the called method's name;
 * - `application`, `host`: the consumer's own (from the {@link RouteContext});
 * - `arguments` (written `arguments[N]`): the string form of argument `index` (0..255) when it is
 *   a string, number, boolean or bigint; any other argument, or none, never matches `=` and
 *   always matches `!=`;
 * - `metadata` (written `metadata.NAME`): the call's metadata value `name`; a missing or
 *   non-string value is treated like such an argument.
 *
 * `values` are globs: `*` matches any run of characters (also none); every other character matches
 * itself, case-sensitively.
 */
export type WhenCondition =
  | { readonly key: "method" | "application" | "host"; readonly operator: ConditionOperator; readonly values: readonly string[] }
  | { readonly key: "arguments"; readonly index: number; readonly operator: ConditionOperator; readonly values: readonly string[] }
  | { readonly key: "metadata"; readonly name: string; readonly operator: ConditionOperator; readonly values: readonly string[] };

/** A key of the `then` side, about the provider: `address` is `host:port`, `port` its decimal form. */
export type ThenKey = "host" | "port" | "address" | "application" | "version" | "group" | "tag" | "protocol";

/** One condition of a rule's `then` side, about a provider ({@link Endpoint}); `values` as in {@link WhenCondition}. */
export interface ThenCondition {
  readonly key: ThenKey;
  readonly operator: ConditionOperator;
  readonly values: readonly string[];
}

/**
 * A parsed condition rule `when => then`, frozen plain data. For a call that matches every `when`
 * condition (an empty `when` matches every call), the providers allowed are those matching every
 * `then` condition; an empty `then` allows none (a block rule).
 */
export interface ConditionRule {
  readonly when: readonly WhenCondition[];
  readonly then: readonly ThenCondition[];
}

const maxRuleChars = 1024;
const maxConditions = 16;
const maxValues = 64;
const maxArgumentIndex = 255;

const whenKeys = ["method", "application", "host", "arguments[N]", "metadata.NAME"];
const thenKeys: readonly ThenKey[] = ["host", "port", "address", "application", "version", "group", "tag", "protocol"];
const argumentKey = /^arguments\[([0-9]{1,3})\]$/;
const otherSpace = /\s/u;

/**
 * Parses a Dubbo-style condition rule, e.g.
 * `method = find*,list* & application != admin => host = 10.0.* & port != 20881`.
 *
 * Grammar: `[conditions] => [conditions]`, exactly one `=>`; conditions are joined by `&` (all
 * must hold), at most 16 per side; a condition is `key = v1,v2` (any of) or `key != v1,v2` (none
 * of), at most 64 values. Spaces around tokens are ignored. Values and metadata names are
 * non-empty and contain no whitespace, control characters, `=`, `!`, `&` or `,`; a value does not
 * start with `>`. In values `*` is a wildcard (see {@link WhenCondition}). Keys of the `when` side:
 * `method`, `application`, `host` (the consumer's), `arguments[N]` (N 0..255), `metadata.NAME`;
 * of the `then` side: `host`, `port`, `address`, `application`, `version`, `group`, `tag`,
 * `protocol` (the provider's). The text is at most 1024 characters. Nothing in it is evaluated.
 * @throws FarcallError `invalid_argument` with reason `bad_rule` and `details.rule` (the text's
 *   first 200 characters) for anything else; the message says what is wrong and at which character.
 */
export function parseConditionRule(text: string): ConditionRule {
  if (typeof text !== "string") badRule("", 0, `the rule must be a string, got ${typeof text}`);
  if (text.length > maxRuleChars) badRule(text, maxRuleChars, `the rule is ${text.length} characters long, over the limit of ${maxRuleChars}`);
  const arrow = text.indexOf("=>");
  if (arrow < 0) badRule(text, 0, `no "=>" between the when and then sides (write "=> ${text.trim().slice(0, 40)}" for a then-only rule)`);
  const second = text.indexOf("=>", arrow + 2);
  if (second >= 0) badRule(text, second, `a second "=>"`);
  const when = parseSide(text, 0, arrow, "when") as WhenCondition[];
  const then = parseSide(text, arrow + 2, text.length, "then") as ThenCondition[];
  return Object.freeze({ when: Object.freeze(when), then: Object.freeze(then) });
}

/**
 * Prints a rule from {@link parseConditionRule} in canonical form:
 * `method = find*,list* & application != admin => host = 10.0.*` (a missing side prints as
 * nothing: `=> host != 10.0.0.3`, `host = 10.0.0.5 =>`). When that would be over the 1024-character
 * limit, the same without spaces. Parsing the output gives an equal rule.
 */
export function formatConditionRule(rule: ConditionRule): string {
  const when = rule.when.map(formatWhen);
  const then = rule.then.map((c) => `${c.key} ${c.operator} ${c.values.join(",")}`);
  const spaced = [when.join(" & "), "=>", then.join(" & ")].filter((part) => part !== "").join(" ");
  if (spaced.length <= maxRuleChars) return spaced;
  const compact = (conditions: string[]): string => conditions.map((c) => c.replaceAll(" ", "")).join("&");
  return `${compact(when)}=>${compact(then)}`;
}

function formatWhen(c: WhenCondition): string {
  const key = c.key === "arguments" ? `arguments[${c.index}]` : c.key === "metadata" ? `metadata.${c.name}` : c.key;
  return `${key} ${c.operator} ${c.values.join(",")}`;
}

/** Whether `call`, made by the consumer `context`, matches every `when` condition of `rule` (true for an empty `when`). */
export function matchesWhen(rule: ConditionRule, call: Call, context: RouteContext): boolean {
  const when = rule.when;
  for (let i = 0; i < when.length; i++) {
    const c = when[i] as WhenCondition;
    let subject: string | undefined;
    switch (c.key) {
      case "method":
        subject = call.ref.method;
        break;
      case "application":
        subject = context.application;
        break;
      case "host":
        subject = context.host;
        break;
      case "arguments":
        subject = scalarText(call.args[c.index]);
        break;
      case "metadata":
        subject = Object.hasOwn(call.metadata, c.name) ? scalarText(call.metadata[c.name]) : undefined;
        break;
    }
    if (!holds(c, subject)) return false;
  }
  return true;
}

/** Whether `endpoint` matches every `then` condition of `rule`; always false for an empty `then` (a block rule). */
export function matchesThen(rule: ConditionRule, endpoint: Endpoint): boolean {
  const then = rule.then;
  if (then.length === 0) return false;
  for (let i = 0; i < then.length; i++) {
    const c = then[i] as ThenCondition;
    let subject: string;
    switch (c.key) {
      case "port":
        subject = String(endpoint.port);
        break;
      case "address":
        subject = `${endpoint.host}:${endpoint.port}`;
        break;
      default:
        subject = endpoint[c.key];
    }
    if (!holds(c, subject)) return false;
  }
  return true;
}

/**
 * Whether `subject` matches the glob `pattern`, where `*` matches any run of characters (also
 * none) and every other character itself. Linear in practice: no regular expression, no
 * backtracking (each run between two `*` is placed at its leftmost occurrence).
 */
export function matchesGlob(pattern: string, subject: string): boolean {
  return globTest(compileGlob(pattern), subject);
}

/** A compiled glob: the pattern itself when it has no `*`. */
type Glob = string | { readonly prefix: string; readonly middles: readonly string[]; readonly suffix: string; readonly minLength: number };

/** Compiled globs of each condition's values, built on first use (rules are frozen, so never stale). */
const compiled = new WeakMap<readonly string[], readonly Glob[]>();

function holds(c: { readonly operator: ConditionOperator; readonly values: readonly string[] }, subject: string | undefined): boolean {
  if (subject === undefined) return c.operator === "!=";
  let globs = compiled.get(c.values);
  if (globs === undefined) {
    globs = Object.freeze(c.values.map(compileGlob));
    compiled.set(c.values, globs);
  }
  let any = false;
  for (let i = 0; i < globs.length && !any; i++) any = globTest(globs[i] as Glob, subject);
  return c.operator === "=" ? any : !any;
}

function compileGlob(pattern: string): Glob {
  const first = pattern.indexOf("*");
  if (first < 0) return pattern;
  const last = pattern.lastIndexOf("*");
  const prefix = pattern.slice(0, first);
  const suffix = pattern.slice(last + 1);
  const middles = pattern
    .slice(first + 1, last)
    .split("*")
    .filter((part) => part !== "");
  const minLength = middles.reduce((sum, part) => sum + part.length, prefix.length + suffix.length);
  return { prefix, middles, suffix, minLength };
}

function globTest(glob: Glob, subject: string): boolean {
  if (typeof glob === "string") return glob === subject;
  if (subject.length < glob.minLength || !subject.startsWith(glob.prefix) || !subject.endsWith(glob.suffix)) return false;
  // Each middle run at its leftmost place after the previous one leaves the most room for the rest.
  const limit = subject.length - glob.suffix.length;
  let at = glob.prefix.length;
  for (let i = 0; i < glob.middles.length; i++) {
    const part = glob.middles[i] as string;
    const found = subject.indexOf(part, at);
    if (found < 0 || found + part.length > limit) return false;
    at = found + part.length;
  }
  return true;
}

type Side = "when" | "then";

function parseSide(text: string, start: number, end: number, side: Side): (WhenCondition | ThenCondition)[] {
  const conditions: (WhenCondition | ThenCondition)[] = [];
  if (skipSpaces(text, start, end) === end) return conditions;
  for (let from = start; ; ) {
    let amp = text.indexOf("&", from);
    if (amp < 0 || amp >= end) amp = end;
    if (conditions.length === maxConditions) badRule(text, from, `more than ${maxConditions} conditions on the ${side} side`);
    conditions.push(parseCondition(text, from, amp, side));
    if (amp === end) return conditions;
    from = amp + 1;
  }
}

function parseCondition(text: string, start: number, end: number, side: Side): WhenCondition | ThenCondition {
  const s = skipSpaces(text, start, end);
  const e = trimEnd(text, s, end);
  if (s === e) badRule(text, start, `an empty condition on the ${side} side (a stray "&"?)`);
  const eq = text.indexOf("=", s);
  if (eq < 0 || eq >= e) badRule(text, s, `no "=" or "!=" in the ${side} condition ${quote(text.slice(s, e))}`);
  const negated = eq > s && text[eq - 1] === "!";
  const operator: ConditionOperator = negated ? "!=" : "=";
  const keyEnd = trimEnd(text, s, negated ? eq - 1 : eq);
  if (keyEnd === s) badRule(text, s, `no key before "${operator}" on the ${side} side`);
  const key = text.slice(s, keyEnd);
  const values = parseValues(text, eq + 1, e, key);
  return side === "when" ? whenCondition(text, s, key, operator, values) : thenCondition(text, s, key, operator, values);
}

function parseValues(text: string, start: number, end: number, key: string): readonly string[] {
  const values: string[] = [];
  for (let from = start; ; ) {
    let comma = text.indexOf(",", from);
    if (comma < 0 || comma >= end) comma = end;
    const s = skipSpaces(text, from, comma);
    const e = trimEnd(text, s, comma);
    if (s === e) badRule(text, from, `an empty value for ${quote(key)}`);
    if (values.length === maxValues) badRule(text, from, `more than ${maxValues} values for ${quote(key)}`);
    if (text[s] === ">") badRule(text, s, `a value of ${quote(key)} starts with ">"`);
    checkPlain(text, s, e, `a value of ${quote(key)}`);
    values.push(text.slice(s, e));
    if (comma === end) return Object.freeze(values);
    from = comma + 1;
  }
}

function whenCondition(text: string, at: number, key: string, operator: ConditionOperator, values: readonly string[]): WhenCondition {
  if (key === "method" || key === "application" || key === "host") return Object.freeze({ key, operator, values });
  if (key.startsWith("arguments[")) {
    const digits = argumentKey.exec(key)?.[1];
    if (digits === undefined) badRule(text, at, `${quote(key)} is not arguments[N] with N a number 0..${maxArgumentIndex}`);
    const index = Number(digits);
    if (index > maxArgumentIndex) badRule(text, at, `argument index ${index} is over ${maxArgumentIndex}`);
    return Object.freeze({ key: "arguments", index, operator, values });
  }
  if (key.startsWith("metadata.")) {
    if (key.length === "metadata.".length) badRule(text, at, `"metadata." without a name`);
    checkPlain(text, at + "metadata.".length, at + key.length, "a metadata name");
    return Object.freeze({ key: "metadata", name: key.slice("metadata.".length), operator, values });
  }
  if ((thenKeys as readonly string[]).includes(key)) {
    badRule(text, at, `${quote(key)} is a key of the then side (the provider's), not of the when side; the when side takes ${whenKeys.join(", ")}`);
  }
  badRule(text, at, `unknown key ${quote(key)} on the when side; it takes ${whenKeys.join(", ")}`);
}

function thenCondition(text: string, at: number, key: string, operator: ConditionOperator, values: readonly string[]): ThenCondition {
  if ((thenKeys as readonly string[]).includes(key)) return Object.freeze({ key: key as ThenKey, operator, values });
  if (key === "method" || key.startsWith("arguments[") || key.startsWith("metadata.")) {
    badRule(text, at, `${quote(key)} is a key of the when side (the call's), not of the then side; the then side takes ${thenKeys.join(", ")}`);
  }
  badRule(text, at, `unknown key ${quote(key)} on the then side; it takes ${thenKeys.join(", ")}`);
}

/** Fails unless text[start, end) holds no whitespace, control character, `=`, `!`, `&` or `,`. */
function checkPlain(text: string, start: number, end: number, what: string): void {
  for (let i = start; i < end; i++) {
    const code = text.charCodeAt(i);
    const bad =
      code <= 0x20 ||
      (code >= 0x7f && code <= 0x9f) ||
      code === 0x3d /* = */ ||
      code === 0x21 /* ! */ ||
      code === 0x26 /* & */ ||
      code === 0x2c /* , */ ||
      (code > 0x9f && otherSpace.test(text[i] as string));
    if (bad) badRule(text, i, `${what} contains ${JSON.stringify(text[i])}`);
  }
}

function isSpace(code: number): boolean {
  return code === 0x20 || (code >= 0x09 && code <= 0x0d);
}

function skipSpaces(text: string, start: number, end: number): number {
  let i = start;
  while (i < end && isSpace(text.charCodeAt(i))) i++;
  return i;
}

function trimEnd(text: string, start: number, end: number): number {
  let i = end;
  while (i > start && isSpace(text.charCodeAt(i - 1))) i--;
  return i;
}

function quote(s: string): string {
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}…` : s);
}

function badRule(text: string, at: number, problem: string): never {
  const rule = text.slice(0, 200);
  throw new FarcallError("invalid_argument", `condition rule ${quote(text)}: ${problem} (at character ${at + 1})`, {
    reason: "bad_rule",
    details: { rule },
    sent: false,
  });
}
