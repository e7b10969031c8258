import { FarcallError } from "../errors/farcall-error.js";

/** Extension type farcall uses for `Map` (fixext1 header, then an array `[k1, v1, k2, v2, …]`). */
export const mapExtensionType = 0x4d;
// msgpackr's extension types this serializer accepts; every other type is rejected
const undefinedType = 0x00;
const timestampType = 0xff;
const setType = 0x73;
const typedArrayType = 0x74;
const uint8ArrayCode = 1;
const bigIntType = 0x42;
/** Largest bigint extension payload accepted (bytes); farcall encodes at most 4096-bit bigints. */
export const maxBigIntExtensionBytes = 1024;

/** Bytes of the key `__proto__`, which is rejected (msgpackr would silently rename it). */
const protoKey = [0x5f, 0x5f, 0x70, 0x72, 0x6f, 0x74, 0x6f, 0x5f, 0x5f] as const;

/**
 * Validates MessagePack bytes before msgpackr sees them, without allocating, so msgpackr only
 * ever decodes well-formed input of the subset farcall writes. It rejects: nesting deeper than
 * `maxDepth` containers (checked before descending, so recursion stays shallow), lengths or counts
 * that run past the input (so a small header can never force a large allocation), trailing bytes,
 * the reserved byte 0xc1, non-string or `__proto__` object keys, and every extension type except
 * undefined, timestamp, Set, Uint8Array, bigint and farcall's Map (msgpackr would otherwise build
 * Errors and RegExps, any typed array, records through generated code and structured-clone
 * references, all chosen by the data).
 *
 * One checker per serializer; `check` is synchronous and calls no user code, so it is never
 * re-entered.
 * @throws FarcallError `invalid_argument` naming the problem and its byte offset.
 */
export function msgpackChecker(maxDepth: number): (bytes: Uint8Array, start?: number, stop?: number) => void {
  let input: Uint8Array = emptyBytes;
  let end = 0;

  return function check(bytes: Uint8Array, start = 0, stop = bytes.length): void {
    if (stop <= start) throw malformed("empty input", start);
    input = bytes;
    end = stop;
    try {
      const pos = value(start, 0);
      if (pos !== end) throw malformed(`${end - pos} trailing bytes`, pos);
    } finally {
      input = emptyBytes; // do not keep the input alive
    }
  };

  /** Checks the value starting at `pos`, inside `depth` containers; returns the offset after it. */
  function value(pos: number, depth: number): number {
    const bytes = input;
    if (pos >= end) throw malformed("unexpected end of input", pos);
    const token = bytes[pos] as number;
    if (token < 0x80 || token >= 0xe0) return pos + 1; // fixint
    if (token < 0x90) return object(pos + 1, token & 0x0f, depth, pos);
    if (token < 0xa0) return array(pos + 1, token & 0x0f, depth, pos);
    if (token < 0xc0) return skip(pos + 1, token & 0x1f, pos); // fixstr
    switch (token) {
      case 0xc0:
      case 0xc2:
      case 0xc3:
        return pos + 1;
      case 0xcc:
      case 0xd0:
        return skip(pos + 1, 1, pos);
      case 0xcd:
      case 0xd1:
        return skip(pos + 1, 2, pos);
      case 0xca:
      case 0xce:
      case 0xd2:
        return skip(pos + 1, 4, pos);
      case 0xcb:
      case 0xcf:
      case 0xd3:
        return skip(pos + 1, 8, pos);
      case 0xc4:
      case 0xd9:
        return skip(pos + 2, readLength(pos + 1, 1), pos);
      case 0xc5:
      case 0xda:
        return skip(pos + 3, readLength(pos + 1, 2), pos);
      case 0xc6:
      case 0xdb:
        return skip(pos + 5, readLength(pos + 1, 4), pos);
      case 0xdc:
        return array(pos + 3, readLength(pos + 1, 2), depth, pos);
      case 0xdd:
        return array(pos + 5, readLength(pos + 1, 4), depth, pos);
      case 0xde:
        return object(pos + 3, readLength(pos + 1, 2), depth, pos);
      case 0xdf:
        return object(pos + 5, readLength(pos + 1, 4), depth, pos);
      case 0xc7:
        return extension(pos + 2, readLength(pos + 1, 1), false, depth, pos);
      case 0xc8:
        return extension(pos + 3, readLength(pos + 1, 2), false, depth, pos);
      case 0xc9:
        return extension(pos + 5, readLength(pos + 1, 4), false, depth, pos);
      case 0xd4:
        return extension(pos + 1, 1, true, depth, pos);
      case 0xd5:
      case 0xd6:
      case 0xd7:
      case 0xd8:
        return extension(pos + 1, 1 << (token - 0xd4), false, depth, pos);
      default: // 0xc1
        throw malformed("reserved byte 0xc1", pos);
    }
  }

  function array(pos: number, count: number, depth: number, start: number): number {
    if (depth >= maxDepth) throw malformed(`nesting deeper than ${maxDepth}`, start);
    // every item takes at least one byte: fail before msgpackr pre-allocates anything
    if (count > end - pos) throw malformed(`declares ${count} items but ${end - pos} bytes follow`, start);
    for (let i = 0; i < count; i++) pos = value(pos, depth + 1);
    return pos;
  }

  function object(pos: number, count: number, depth: number, start: number): number {
    if (depth >= maxDepth) throw malformed(`nesting deeper than ${maxDepth}`, start);
    if (2 * count > end - pos) throw malformed(`declares ${count} entries but ${end - pos} bytes follow`, start);
    const bytes = input;
    for (let i = 0; i < count; i++) {
      const token = bytes[pos] as number;
      if (token > 0xa0 && token < 0xc0 && token !== 0xa9) {
        pos += 1 + (token & 0x1f); // fixstr key that cannot be "__proto__"; value() checks the end
      } else {
        pos = key(pos);
      }
      pos = value(pos, depth + 1);
    }
    return pos;
  }

  function key(pos: number): number {
    const token = input[pos];
    if (token === undefined) throw malformed("unexpected end of input", pos);
    let first: number;
    let length: number;
    if (token >= 0xa0 && token < 0xc0) {
      first = pos + 1;
      length = token & 0x1f;
    } else if (token === 0xd9) {
      first = pos + 2;
      length = readLength(pos + 1, 1);
    } else if (token === 0xda) {
      first = pos + 3;
      length = readLength(pos + 1, 2);
    } else if (token === 0xdb) {
      first = pos + 5;
      length = readLength(pos + 1, 4);
    } else {
      throw malformed("object key is not a string", pos);
    }
    const next = skip(first, length, pos);
    if (length === 9 && isProtoKey(input, first)) throw malformed('object key "__proto__" is not allowed', pos);
    return next;
  }

  /** `pos` is the extension's type byte; `length` the length of its data. */
  function extension(pos: number, length: number, fixext1: boolean, depth: number, start: number): number {
    const next = skip(pos + 1, length, start);
    const type = input[pos] as number;
    switch (type) {
      case undefinedType:
        if (fixext1) return next;
        break;
      case timestampType:
        if (length === 1 || length === 4 || length === 8 || length === 12) return next;
        break;
      case setType:
        if (fixext1) return wrappedArray(next, false, depth, start);
        break;
      case mapExtensionType:
        if (fixext1) return wrappedArray(next, true, depth, start);
        break;
      case typedArrayType:
        if (length >= 1 && input[pos + 1] === uint8ArrayCode) return next;
        break;
      case bigIntType:
        if (length >= 1 && length <= maxBigIntExtensionBytes) return next;
        break;
    }
    throw malformed(`extension type ${type} with ${length} data bytes is not allowed`, start);
  }

  /** Set and Map: the extension header is followed by the array it wraps. */
  function wrappedArray(pos: number, pairs: boolean, depth: number, start: number): number {
    const token = input[pos];
    let count: number;
    let first: number;
    if (token !== undefined && token >= 0x90 && token < 0xa0) {
      count = token & 0x0f;
      first = pos + 1;
    } else if (token === 0xdc) {
      count = readLength(pos + 1, 2);
      first = pos + 3;
    } else if (token === 0xdd) {
      count = readLength(pos + 1, 4);
      first = pos + 5;
    } else {
      throw malformed("a Set or Map extension must wrap an array", pos);
    }
    if (pairs && count % 2 !== 0) throw malformed("a Map extension needs key/value pairs", start);
    return array(first, count, depth, start);
  }

  /** Reads a `size`-byte big-endian length at `pos`. */
  function readLength(pos: number, size: number): number {
    const bytes = input;
    if (pos + size > end) throw malformed("unexpected end of input", pos);
    if (size === 1) return bytes[pos] as number;
    if (size === 2) return ((bytes[pos] as number) << 8) | (bytes[pos + 1] as number);
    return (
      (bytes[pos] as number) * 0x1000000 +
      (((bytes[pos + 1] as number) << 16) | ((bytes[pos + 2] as number) << 8) | (bytes[pos + 3] as number))
    );
  }

  function skip(pos: number, length: number, start: number): number {
    if (length > end - pos) throw malformed(`length ${length} runs past the end of input`, start);
    return pos + length;
  }
}

const emptyBytes = new Uint8Array(0);

function isProtoKey(bytes: Uint8Array, pos: number): boolean {
  for (let i = 0; i < 9; i++) if (bytes[pos + i] !== protoKey[i]) return false;
  return true;
}

function malformed(problem: string, offset: number): FarcallError {
  return new FarcallError("invalid_argument", `malformed msgpack: ${problem} at byte ${offset}`, {
    details: { offset },
  });
}
