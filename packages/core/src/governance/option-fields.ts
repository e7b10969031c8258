import { badOption } from "../errors/farcall-error.js";

/**
 * Reading option objects that may come from outside code (environment JSON, the properties file,
 * registry data): plain objects only, known keys only, data properties only, numbers in range.
 * Every failure is `invalid_argument` (reason `bad_option`) naming the option's path.
 */

/** The own data properties of `value`, which must be a plain object with keys among `known`. */
export function optionFields(value: unknown, option: string, known: readonly string[]): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return badOption(option, `must be an object, got ${show(value)}`);
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) badOption(option, "must be a plain object");
  const fields: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) badOption(`${option}.${key}`, `unknown option (known: ${known.join(", ")})`);
    const descriptor = Object.getOwnPropertyDescriptor(value, key);
    if (descriptor === undefined || !("value" in descriptor)) badOption(`${option}.${key}`, "must be a data property");
    fields[key] = descriptor.value;
  }
  return fields;
}

/** `raw` as a number (an integer when `integer`) in [min, max]; `fallback` when undefined. */
export function numberField(raw: unknown, name: string, fallback: number, min: number, max: number, integer = false): number {
  if (raw === undefined) return fallback;
  if (typeof raw !== "number" || !Number.isFinite(raw) || raw < min || raw > max || (integer && !Number.isInteger(raw))) {
    badOption(name, `must be ${integer ? "an integer" : "a number"} in [${min}, ${max}], got ${show(raw)}`);
  }
  return raw;
}

/** A short description of an untrusted value for an error message. */
export function show(value: unknown): string {
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return value === null ? "null" : Array.isArray(value) ? "an array" : typeof value;
}
