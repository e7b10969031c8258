import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { FarcallError } from "../errors/farcall-error.js";
import { msgpackSerializer } from "./msgpack-serializer.js";
import { assertInvalidArgument } from "../../test/assertions.js";

const serializer = msgpackSerializer();
const roundTrip = (value: unknown): unknown => serializer.decode(serializer.encode(value));

/** Decoding any input gives a value or a FarcallError invalid_argument, never another error. */
function decodeOrInvalid(bytes: Uint8Array): void {
  try {
    serializer.decode(bytes);
  } catch (error) {
    assert.ok(error instanceof FarcallError, `expected FarcallError, got ${String(error)}`);
    assert.equal(error.code, "invalid_argument");
  }
}

const bytes = (...parts: (number | string)[]): Buffer =>
  Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p) : Buffer.from([p]))));

const key = fc.string({ unit: "binary", maxLength: 8 }).filter((k) => k !== "__proto__");
const leaf = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.double().map((d) => (Object.is(d, -0) ? 0 : d)),
  fc.integer(),
  fc.bigInt({ min: -(2n ** 4095n), max: 2n ** 4095n }),
  fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.date({ noInvalidDate: true }),
  fc.uint8Array({ maxLength: 300 }),
  fc.uint8Array({ maxLength: 20 }).map((a) => Buffer.from(a)),
);
const { value: anyValue } = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: "small" }, leaf, tie("array"), tie("object"), tie("map"), tie("set")),
  array: fc.array(tie("value"), { maxLength: 5 }),
  object: fc.dictionary(key, tie("value"), { maxKeys: 5, noNullPrototype: true }),
  map: fc.array(fc.tuple(tie("value"), tie("value")), { maxLength: 4 }).map((entries) => new Map(entries)),
  set: fc.array(tie("value"), { maxLength: 4 }).map((items) => new Set(items)),
}));

describe("msgpackSerializer", () => {
  it("has id 1 and name msgpack", () => {
    assert.equal(serializer.id, 1);
    assert.equal(serializer.name, "msgpack");
  });

  it("round-trips every supported kind (property)", () => {
    fc.assert(
      fc.property(anyValue, (value) => {
        assert.deepStrictEqual(roundTrip(value), value);
      }),
      { numRuns: 1500 },
    );
  });

  it("round-trips numbers, bigints and their edges", () => {
    for (const n of [0, 1, -1, 127, 128, -32, -33, 2 ** 31, 2 ** 32, 2 ** 53 - 1, -(2 ** 53), 0.1, 1e308, NaN, Infinity, -Infinity]) {
      assert.ok(Object.is(roundTrip(n), n), String(n));
    }
    assert.equal(roundTrip(-0), 0, "-0 decodes as 0 (documented)");
    for (const b of [0n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 64n - 1n, 2n ** 64n, -(2n ** 63n) - 1n, 2n ** 4096n - 1n, -(2n ** 4096n) + 1n]) {
      assert.equal(roundTrip(b), b);
    }
    assertInvalidArgument(() => serializer.encode(2n ** 4096n), /bigint/);
    assertInvalidArgument(() => serializer.encode({ n: -(2n ** 5000n) }), /bigint/);
  });

  it("keeps null and undefined distinct at top level, in objects and in arrays", () => {
    assert.equal(roundTrip(undefined), undefined);
    assert.equal(roundTrip(null), null);
    const decoded = roundTrip({ a: undefined, b: null, c: [undefined, null] }) as Record<string, unknown>;
    assert.ok(Object.hasOwn(decoded, "a"));
    assert.deepStrictEqual(decoded, { a: undefined, b: null, c: [undefined, null] });
    assert.deepStrictEqual(roundTrip([1, , 3]), [1, undefined, 3], "holes become undefined");
  });

  it("decodes Buffer as Buffer and Uint8Array as Uint8Array, as copies", () => {
    const input = serializer.encode({ buf: Buffer.from([1, 2]), u8: new Uint8Array([3, 4]) });
    const decoded = serializer.decode(input) as { buf: Buffer; u8: Uint8Array };
    assert.ok(Buffer.isBuffer(decoded.buf));
    assert.equal(Object.getPrototypeOf(decoded.u8), Uint8Array.prototype);
    input.fill(0);
    assert.deepStrictEqual([...decoded.buf, ...decoded.u8], [1, 2, 3, 4]);
    // bin decodes as Buffer also when the caller passes a plain Uint8Array
    const plain = new Uint8Array(serializer.encode(Buffer.from([9])));
    assert.ok(Buffer.isBuffer(serializer.decode(plain)));
  });

  it("keeps Maps, Sets, Dates and plain objects apart", () => {
    const value = { map: new Map<unknown, unknown>([[{ k: 1 }, "object key"], [1, "one"], ["1", "string one"]]), obj: { 1: "x" }, set: new Set([1, "1"]), date: new Date(-1e12) };
    const decoded = roundTrip(value) as typeof value;
    assert.deepStrictEqual(decoded, value);
    assert.ok(decoded.map instanceof Map);
    assert.equal(Object.getPrototypeOf(decoded.obj), Object.prototype);
    assert.ok(Number.isNaN((roundTrip(new Date(NaN)) as Date).getTime()), "an invalid Date stays invalid");
  });

  it("encodes class instances as plain objects of own enumerable properties, honouring toJSON", () => {
    class Point {
      constructor(
        readonly x: number,
        readonly y: number,
      ) {}
      get sum(): number {
        return this.x + this.y;
      }
    }
    class Money {
      toJSON(): string {
        return "12.50 EUR";
      }
    }
    assert.deepStrictEqual(roundTrip(new Point(1, 2)), { x: 1, y: 2 });
    assert.deepStrictEqual(roundTrip({ price: new Money(), at: new Map([["p", new Money()]]) }), { price: "12.50 EUR", at: new Map([["p", "12.50 EUR"]]) });
    const nullProto = Object.assign(Object.create(null) as object, { a: 1 });
    assert.equal(Object.getPrototypeOf(roundTrip(nullProto)), Object.prototype);
  });

  it("rejects values it cannot represent with invalid_argument", () => {
    for (const value of [() => 1, Symbol("s"), { f() {} }, [Symbol.iterator], new Error("e"), /re/, new Int16Array(1), new ArrayBuffer(1), new DataView(new ArrayBuffer(1)), Promise.resolve(), new WeakMap(), Object(1), JSON.parse('{"__proto__": 1}')]) {
      assertInvalidArgument(() => serializer.encode(value));
    }
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assertInvalidArgument(() => serializer.encode(cyclic), /deeper than 128/);
  });

  it("bounds nesting the same way on both sides", () => {
    const shallow = msgpackSerializer({ maxDepth: 4 });
    const nest = (depth: number): unknown => (depth === 0 ? 1 : [nest(depth - 1)]);
    assert.deepStrictEqual(shallow.decode(shallow.encode(nest(4))), nest(4));
    assert.deepStrictEqual(shallow.decode(shallow.encode(new Map([[1, { a: new Set([[1]]) }]]))), new Map([[1, { a: new Set([[1]]) }]]));
    assertInvalidArgument(() => shallow.encode(nest(5)), /deeper than 4/);
    assertInvalidArgument(() => shallow.decode(serializer.encode(nest(5))), /deeper than 4/);
    assertInvalidArgument(() => shallow.encode(new Map([[1, { a: new Set([[[]]]) }]])), /deeper than 4/);
    assert.throws(() => msgpackSerializer({ maxDepth: 0 }), { code: "invalid_argument", reason: "bad_option" });
  });

  it("rejects 100000 nested arrays or maps with a FarcallError, not a stack overflow", () => {
    assertInvalidArgument(() => serializer.decode(Buffer.concat([Buffer.alloc(100_000, 0x91), bytes(0xc0)])), /deeper than 128/);
    assertInvalidArgument(() => serializer.decode(Buffer.concat([Buffer.from("81a161".repeat(100_000), "hex"), bytes(0xc0)])), /deeper/);
    assertInvalidArgument(() => serializer.decode(Buffer.concat([Buffer.from("d47300".repeat(50_000), "hex")])));
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    assertInvalidArgument(() => serializer.encode(deep), /deeper than 128/);
  });

  it("fails fast on headers that declare more than the input holds", () => {
    const started = performance.now();
    assertInvalidArgument(() => serializer.decode(bytes(0xdd, 0x00, 0x0f, 0x42, 0x40, 1, 2, 3)), /declares 1000000 items/);
    assertInvalidArgument(() => serializer.decode(bytes(0xdd, 0xff, 0xff, 0xff, 0xff)), /declares/);
    assertInvalidArgument(() => serializer.decode(bytes(0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x61, 1)), /declares/);
    assertInvalidArgument(() => serializer.decode(bytes(0xdb, 0xff, 0xff, 0xff, 0xff, 0x61)), /runs past/);
    assertInvalidArgument(() => serializer.decode(bytes(0xc6, 0xff, 0xff, 0xff, 0xff, 0x61)), /runs past/);
    assertInvalidArgument(() => serializer.decode(bytes(0xc9, 0xff, 0xff, 0xff, 0xff, 0x42, 1)), /runs past/);
    assertInvalidArgument(() => serializer.decode(Buffer.concat([bytes(0x9f), Buffer.alloc(14, 0xdc)])));
    assert.ok(performance.now() - started < 100);
  });

  it("rejects malformed framing: empty, truncated, trailing bytes, 0xc1", () => {
    assertInvalidArgument(() => serializer.decode(new Uint8Array(0)), /empty/);
    assertInvalidArgument(() => serializer.decode(serializer.encode({ a: "hello" }).subarray(0, 5)), /end of input|runs past/);
    assertInvalidArgument(() => serializer.decode(bytes(0xc0, 0xc0)), /trailing/);
    assertInvalidArgument(() => serializer.decode(bytes(0x91, 0xc1)), /0xc1/);
    assertInvalidArgument(() => serializer.decode("not bytes" as unknown as Uint8Array));
  });

  it("never lets the data choose a class or run code: only the documented extensions decode", () => {
    const rejected = [
      bytes(0xd4, 0x65, 0x00, 0x92, 0xa7, "valueOf", 0xa0), // Error ext: msgpackr would return its internal error table
      bytes(0xd4, 0x65, 0x00, 0x93, 0xa5, "Error", 0xa1, "m", 0xc0), // any Error
      bytes(0xd4, 0x78, 0x00, 0x92, 0xa3, "a+$", 0xa0), // RegExp
      bytes(0xc7, 0x09, 0x74, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0), // Float64Array
      bytes(0xc7, 0x01, 0x74, 0x10), // ArrayBuffer
      bytes(0xd4, 0x72, 0x40, 0x91, 0xa9, "__proto__", 0x80), // record definition (generated code)
      bytes(0xd6, 0x69, 0, 0, 0, 1, 0x80), // structured-clone id
      bytes(0xd6, 0x70, 0, 0, 0, 1), // structured-clone pointer
      bytes(0xd6, 0x62, 0, 0, 0, 0), // bundled strings
      bytes(0xd4, 0x05, 0x00), // unknown extension
      bytes(0xd4, 0x73, 0x00, 0xa1, "x"), // Set wrapping a string
      bytes(0xd4, 0x4d, 0x00, 0x91, 0x01), // Map with an odd entry list
      bytes(0x81, 0x01, 0x02), // non-string object key
    ];
    for (const input of rejected) assertInvalidArgument(() => serializer.decode(input), /not allowed|must wrap|pairs|not a string/);
  });

  it("rejects a __proto__ key and keeps constructor and prototype as plain data", () => {
    const hostile = [
      bytes(0x81, 0xa9, "__proto__", 0x81, 0xa8, "polluted", 0xc3),
      bytes(0x81, 0xd9, 0x09, "__proto__", 0x81, 0xa8, "polluted", 0xc3),
      bytes(0x91, 0xde, 0x00, 0x01, 0xda, 0x00, 0x09, "__proto__", 0xc3),
    ];
    for (const input of hostile) assertInvalidArgument(() => serializer.decode(input), /__proto__/);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    const decoded = serializer.decode(
      bytes(0x83, 0xab, "constructor", 0x81, 0xa9, "prototype", 0xc3, 0xa9, "prototype", 0x01, 0xa8, "toString", 0x02),
    ) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(decoded), Object.prototype);
    assert.deepStrictEqual(Object.keys(decoded), ["constructor", "prototype", "toString"]);
    assert.deepStrictEqual(decoded.constructor, { prototype: true });
    assert.equal(decoded.toString, 2);
  });

  it("gives a value or a FarcallError for random bytes (property)", () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), decodeOrInvalid), { numRuns: 2000 });
  });

  it("gives a value or a FarcallError for corrupted encodings (property)", () => {
    fc.assert(
      fc.property(anyValue, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.boolean(), (value, at, byte, truncate) => {
        const encoded = Buffer.from(serializer.encode(value));
        const i = at % encoded.length;
        decodeOrInvalid(truncate ? encoded.subarray(0, i) : (encoded.fill(byte, i, i + 1), encoded));
      }),
      { numRuns: 1500 },
    );
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});
