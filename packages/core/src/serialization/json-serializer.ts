import { badOption, FarcallError } from "../errors/farcall-error.js";
import type { Serializer } from "./serializer.js";

/** Options of {@link jsonSerializer}. */
export interface JsonSerializerOptions {
  /** Most arrays and objects nested in a decoded value, 1..1000. Default 128. */
  readonly maxDepth?: number;
}

/** Default of {@link JsonSerializerOptions.maxDepth}. */
export const defaultJsonMaxDepth = 128;

const hasOwn = Object.hasOwn;

/**
 * The JSON serializer (wire id 2, name `"json"`): UTF-8 `JSON.stringify` output, for clients
 * that cannot speak MessagePack. Plain JSON, no type tags, so what does not round-trip is exactly
 * what `JSON.stringify` loses:
 * - Date becomes its ISO string; Map, Set and other class instances their own enumerable
 *   properties (`{}` for Map and Set); Buffer `{ type: "Buffer", data: [...] }`, Uint8Array
 *   `{ "0": …, "1": … }`; `toJSON()` is honoured;
 * - NaN, ±Infinity become `null` and `-0` becomes `0`; `undefined` and functions are dropped
 *   from objects and become `null` in arrays;
 * - a top-level `undefined` encodes as zero bytes, and zero bytes decode as `undefined`.
 *
 * Decoding: input must be valid UTF-8 (a BOM is skipped). `JSON.parse` itself would make a key
 * `__proto__` an own data property (it never sets the prototype), but code that later copies the
 * object with `Object.assign` or a deep merge would change a prototype, so such keys are rejected,
 * as the msgpack serializer rejects them. Keys `constructor` and `prototype` are ordinary data.
 * @throws FarcallError `invalid_argument` (reason `bad_option`) for an invalid option.
 * Its `encode` throws `invalid_argument` for a bigint, a cycle, a top-level function or symbol,
 * or an own `__proto__` key; its `decode` throws `invalid_argument` for invalid UTF-8, malformed
 * JSON, nesting deeper than `maxDepth`, or a `__proto__` key. Nesting is not checked on encode:
 * deeper values encode but the receiver rejects them.
 */
export function jsonSerializer(options: JsonSerializerOptions = {}): Serializer {
  const maxDepth = options.maxDepth ?? defaultJsonMaxDepth;
  if (!Number.isInteger(maxDepth) || maxDepth < 1 || maxDepth > 1000) {
    badOption("maxDepth", "must be an integer in 1..1000");
  }
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  return Object.freeze({
    id: 2,
    name: "json",
    encode(value: unknown): Uint8Array {
      if (value === undefined) return new Uint8Array(0);
      let text: string | undefined;
      try {
        text = JSON.stringify(value);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        throw new FarcallError("invalid_argument", `cannot encode value as JSON: ${message}`, { cause: error });
      }
      if (text === undefined) throw new FarcallError("invalid_argument", `cannot encode a ${typeof value} as JSON`);
      // cheap pre-filter; the exact check parses the text again (only when the word appears)
      if (text.includes('"__proto__"') && findProtoKey(JSON.parse(text) as unknown, 0, maxDepth)) {
        throw new FarcallError("invalid_argument", 'cannot encode an object with an own "__proto__" key');
      }
      return Buffer.from(text, "utf8");
    },
    decode(bytes: Uint8Array, start = 0, end = bytes.length): unknown {
      if (!(bytes instanceof Uint8Array)) throw new FarcallError("invalid_argument", "JSON input must be a Uint8Array");
      if (start < 0 || end > bytes.length || start > end) throw new FarcallError("invalid_argument", "JSON input range out of bounds");
      if (end === start) return undefined;
      let text: string;
      try {
        text = utf8.decode(start === 0 && end === bytes.length ? bytes : bytes.subarray(start, end));
      } catch (error) {
        throw new FarcallError("invalid_argument", "malformed JSON: input is not valid UTF-8", { cause: error });
      }
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        throw new FarcallError("invalid_argument", `malformed JSON: ${message}`, { cause: error });
      }
      if (findProtoKey(value, 0, maxDepth)) {
        throw new FarcallError("invalid_argument", 'malformed JSON: object key "__proto__" is not allowed');
      }
      return value;
    },
  });
}

/**
 * Walks a `JSON.parse` result: true when an object has an own `__proto__` key.
 * @throws FarcallError `invalid_argument` when containers nest deeper than `maxDepth`.
 */
function findProtoKey(value: unknown, depth: number, maxDepth: number): boolean {
  if (typeof value !== "object" || value === null) return false;
  if (depth >= maxDepth) throw new FarcallError("invalid_argument", `JSON value nested deeper than ${maxDepth}`);
  if (Array.isArray(value)) {
    for (const item of value) if (findProtoKey(item, depth + 1, maxDepth)) return true;
    return false;
  }
  const record = value as Record<string, unknown>;
  if (hasOwn(record, "__proto__")) return true;
  for (const key in record) if (findProtoKey(record[key], depth + 1, maxDepth)) return true;
  return false;
}
