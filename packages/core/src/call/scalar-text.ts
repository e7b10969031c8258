/**
 * A call argument or metadata value as text, for matching and hashing: a string as is, a number,
 * bigint or boolean by `String`; undefined for anything else (objects, null, undefined), which
 * never matches a rule and never picks a hash key.
 */
export function scalarText(value: unknown): string | undefined {
  switch (typeof value) {
    case "string":
      return value;
    case "number":
    case "bigint":
    case "boolean":
      return String(value);
    default:
      return undefined;
  }
}
