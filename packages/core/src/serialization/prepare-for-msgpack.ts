import { FarcallError } from "../errors/farcall-error.js";
import { MapEntries } from "./msgpack-map-extension.js";

const int64Min = -(2n ** 63n);
const uint64Limit = 2n ** 64n;
/** Bigints must satisfy `-2^4096 < n < 2^4096`; larger ones throw (they would not decode). */
const bigIntLimit = 2n ** 4096n;
const hasOwn = Object.hasOwn;

/**
 * Checks a value before msgpackr packs it and returns what msgpackr should pack: the value itself
 * (the common case, no copy), or a copy in which every `Map` is swapped for {@link MapEntries},
 * `toJSON()` results replace their objects and other Uint8Array subclasses become plain views.
 * It enforces what the decoder enforces, so anything that encodes also decodes.
 *
 * Rules: plain objects and class instances are written as their own enumerable string-keyed
 * properties (symbol keys are skipped); an object with a `toJSON` method (other than Date and
 * Buffer) is written as its `toJSON()` result; arrays are written element by element (holes
 * become `undefined`).
 * @throws FarcallError `invalid_argument` for functions, symbols, bigints of 4096 bits or more,
 * an own `__proto__` key, nesting deeper than `maxDepth` containers (also what a cycle becomes),
 * and built-ins with no faithful encoding: Error, RegExp, Promise, WeakMap, WeakSet, WeakRef,
 * ArrayBuffer, SharedArrayBuffer, DataView, typed arrays other than Uint8Array, boxed primitives.
 */
export function prepareForMsgpack(value: unknown, maxDepth: number): unknown {
  return prepare(value, 0, maxDepth);
}

function prepare(value: unknown, depth: number, maxDepth: number): unknown {
  switch (typeof value) {
    case "string":
    case "number":
    case "boolean":
    case "undefined":
      return value;
    case "bigint":
      if ((value < int64Min || value >= uint64Limit) && (value >= bigIntLimit || value <= -bigIntLimit)) {
        throw unsupported("a bigint of 4096 bits or more");
      }
      return value;
    case "object":
      return value === null ? value : prepareObject(value, depth, maxDepth);
    default:
      throw unsupported(`a ${typeof value}`);
  }
}

function prepareObject(value: object, depth: number, maxDepth: number): unknown {
  if (Array.isArray(value)) return prepareArray(value, enter(depth, maxDepth), maxDepth);
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === null) return prepareProperties(value, enter(depth, maxDepth), maxDepth, true);
  if (value instanceof Map) return prepareMap(value, enter(depth, maxDepth), maxDepth);
  if (value instanceof Set) return prepareSet(value, enter(depth, maxDepth), maxDepth);
  if (value instanceof Date) return value;
  if (value instanceof Uint8Array) {
    const constructor: unknown = value.constructor;
    return constructor === Buffer || constructor === Uint8Array
      ? value
      : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }
  const rejected = rejectedBuiltIn(value);
  if (rejected !== undefined) throw unsupported(rejected);
  const toJSON: unknown = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === "function") {
    let json: unknown;
    try {
      json = toJSON.call(value);
    } catch (error) {
      throw new FarcallError("invalid_argument", "cannot encode value: its toJSON() threw", { cause: error });
    }
    // counts as a level, so toJSON() chains stay bounded; a toJSON() returning itself is ignored
    return json === value
      ? prepareProperties(value, enter(depth, maxDepth), maxDepth, false)
      : prepare(json, enter(depth, maxDepth), maxDepth);
  }
  return prepareProperties(value, enter(depth, maxDepth), maxDepth, false);
}

/** The depth of a container's children; throws when the container itself is one level too deep. */
function enter(depth: number, maxDepth: number): number {
  if (depth >= maxDepth) {
    throw new FarcallError("invalid_argument", `cannot encode value: nested deeper than ${maxDepth} (or cyclic)`);
  }
  return depth + 1;
}

function prepareArray(array: readonly unknown[], depth: number, maxDepth: number): unknown {
  let copy: unknown[] | undefined;
  for (let i = 0; i < array.length; i++) {
    const item = array[i];
    if (typeof item === "object") {
      if (item === null) continue;
      const prepared = prepareObject(item, depth, maxDepth);
      if (prepared !== item) (copy ??= array.slice())[i] = prepared;
    } else if (typeof item === "function" || typeof item === "symbol" || typeof item === "bigint") {
      prepare(item, depth, maxDepth);
    }
  }
  return copy ?? array;
}

/**
 * `plain`: the prototype is Object.prototype or null, whose enumerable keys are all own (unless
 * Object.prototype is polluted, and then visiting more only checks more), so skip `hasOwn`.
 */
function prepareProperties(object: object, depth: number, maxDepth: number, plain: boolean): unknown {
  const record = object as Record<string, unknown>;
  let copy: Record<string, unknown> | undefined;
  for (const key in record) {
    if (!plain && !hasOwn(record, key)) continue;
    if (key === "__proto__") throw unsupported('an object with an own "__proto__" key');
    const item = record[key];
    if (typeof item === "object") {
      if (item === null) continue;
      const prepared = prepareObject(item, depth, maxDepth);
      if (prepared !== item) (copy ??= ownProperties(record))[key] = prepared;
    } else if (typeof item === "function" || typeof item === "symbol" || typeof item === "bigint") {
      prepare(item, depth, maxDepth);
    }
  }
  // class instances stay as they are unless something inside changed: msgpackr writes their own
  // enumerable properties just like a plain object's
  return copy ?? object;
}

function ownProperties(record: Record<string, unknown>): Record<string, unknown> {
  const copy: Record<string, unknown> = {};
  for (const key in record) if (hasOwn(record, key)) copy[key] = record[key];
  return copy;
}

function prepareMap(map: ReadonlyMap<unknown, unknown>, depth: number, maxDepth: number): MapEntries {
  const flat = new Array<unknown>(map.size * 2);
  let i = 0;
  for (const [key, item] of map) {
    flat[i++] = prepare(key, depth, maxDepth);
    flat[i++] = prepare(item, depth, maxDepth);
  }
  return new MapEntries(flat);
}

function prepareSet(set: ReadonlySet<unknown>, depth: number, maxDepth: number): unknown {
  let changed = false;
  const items: unknown[] = [];
  for (const item of set) {
    const prepared = prepare(item, depth, maxDepth);
    if (prepared !== item && typeof item === "object") changed = true;
    items.push(prepared);
  }
  return changed ? new Set(items) : set;
}

function rejectedBuiltIn(value: object): string | undefined {
  if (value instanceof Error) return "an Error (errors travel as FarcallError, not as values)";
  if (value instanceof RegExp) return "a RegExp";
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name} (only Uint8Array and Buffer are supported)`;
  if (value instanceof ArrayBuffer || value instanceof SharedArrayBuffer) return "an ArrayBuffer (wrap it in a Uint8Array)";
  if (value instanceof Promise) return "a Promise";
  if (value instanceof WeakMap || value instanceof WeakSet || value instanceof WeakRef) return "a weak collection";
  if (
    value instanceof Number ||
    value instanceof String ||
    value instanceof Boolean ||
    value instanceof BigInt ||
    value instanceof Symbol
  ) {
    return "a boxed primitive";
  }
  return undefined;
}

function unsupported(what: string): FarcallError {
  return new FarcallError("invalid_argument", `cannot encode ${what}`);
}
