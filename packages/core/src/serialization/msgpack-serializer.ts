import { Packr, Unpackr } from "msgpackr";
import { badOption, FarcallError } from "../errors/farcall-error.js";
import { msgpackChecker } from "./msgpack-checker.js";
import { registerMapExtension } from "./msgpack-map-extension.js";
import { prepareForMsgpack } from "./prepare-for-msgpack.js";
import type { Serializer } from "./serializer.js";

/** Options of {@link msgpackSerializer}. */
export interface MsgpackSerializerOptions {
  /**
   * Most containers (arrays, objects, Maps, Sets) nested in one value, 1..1000. Default 128.
   * Deeper values throw on encode; deeper input throws on decode before anything is built.
   */
  readonly maxDepth?: number;
}

/** Default of {@link MsgpackSerializerOptions.maxDepth}. */
export const defaultMaxDepth = 128;

/**
 * The MessagePack serializer (wire id 1, name `"msgpack"`), built on msgpackr with records off,
 * so the bytes are standard MessagePack plus msgpackr's common extensions.
 *
 * What decodes to what (a value of each kind round-trips to an equal value of the same kind):
 * - string, boolean, null, undefined (also as property values and array elements, distinct from
 *   null); number, including NaN and ±Infinity, but `-0` decodes as `0`;
 * - bigint stays bigint (int64/uint64 on the wire, msgpackr's bigint extension beyond that); a
 *   bigint of 4096 bits or more throws on encode. A wire int64/uint64 sent by another
 *   implementation also decodes as bigint;
 * - Date (timestamp extension, millisecond precision; an invalid Date stays invalid);
 * - `Buffer` decodes as `Buffer`, a plain `Uint8Array` as `Uint8Array`; both are fresh copies,
 *   never views of the input. A MessagePack `bin` from another implementation decodes as `Buffer`;
 * - Map (any key types) as Map, Set as Set, arrays as arrays (holes become `undefined`);
 * - plain objects as plain objects (prototype `Object.prototype`, also for null-prototype
 *   input); class instances encode as their own enumerable properties (or their `toJSON()`
 *   result) and decode as plain objects.
 *
 * Strings must be well-formed UTF-16: a lone surrogate decodes as U+FFFD.
 *
 * Decoding treats input as hostile: a checker validates the whole input first (see
 * `msgpackChecker`), so the data never picks a class outside the list above, no code runs, an
 * object key `__proto__` is rejected (msgpackr would silently rename it to `__proto_`), nesting is
 * bounded and a header declaring more items than bytes follow fails before any allocation.
 *
 * `encode` returns a view into msgpackr's shared write buffer (no copy). msgpackr never writes
 * over bytes it has handed out, unless other code in the process calls msgpackr's `useBuffer()`
 * on its own buffers; the underlying `ArrayBuffer` holds other data, so use only the view.
 * `decode` caches a `DataView` on the input as a `dataView` property (msgpackr does this).
 *
 * The first call registers farcall's Map extension with msgpackr (process-wide, see
 * `registerMapExtension` for why that is safe).
 * @throws FarcallError `invalid_argument` (reason `bad_option`) for an invalid option.
 * Its `encode` throws `invalid_argument` for values it cannot represent; its `decode` throws
 * `invalid_argument` for anything malformed, saying what is wrong.
 */
export function msgpackSerializer(options: MsgpackSerializerOptions = {}): Serializer {
  const maxDepth = options.maxDepth ?? defaultMaxDepth;
  if (!Number.isInteger(maxDepth) || maxDepth < 1 || maxDepth > 1000) {
    badOption("maxDepth", "must be an integer in 1..1000");
  }
  registerMapExtension();
  const packr = new Packr({
    useRecords: false,
    moreTypes: true,
    structuredClone: false,
    writeFunction: () => {
      throw new FarcallError("invalid_argument", "cannot encode a function");
    },
  });
  const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, copyBuffers: true, structuredClone: false });
  const check = msgpackChecker(maxDepth);
  // Reused for every decode (msgpackr reads it synchronously): no allocation per call.
  const range = { start: 0, end: 0 };
  return Object.freeze({
    id: 1,
    name: "msgpack",
    encode(value: unknown): Uint8Array {
      const prepared = prepareForMsgpack(value, maxDepth);
      try {
        return packr.pack(prepared);
      } catch (error) {
        if (error instanceof FarcallError) throw error;
        const message = error instanceof Error ? error.message : String(error);
        throw new FarcallError("invalid_argument", `cannot encode value: ${message}`, { cause: error });
      }
    },
    decode(bytes: Uint8Array, start = 0, end = bytes.length): unknown {
      if (!(bytes instanceof Uint8Array)) throw new FarcallError("invalid_argument", "msgpack input must be a Uint8Array");
      if (start < 0 || end > bytes.length || start > end) throw new FarcallError("invalid_argument", "msgpack input range out of bounds");
      check(bytes, start, end);
      // a Buffer source makes msgpackr copy `bin` values as Buffers whatever the caller passed
      const source = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      range.start = start;
      range.end = end;
      try {
        return unpackr.unpack(source, range);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        throw new FarcallError("invalid_argument", `malformed msgpack: ${message}`, { cause: error });
      }
    },
  });
}
