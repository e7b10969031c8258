import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { FarcallError } from "../errors/farcall-error.js";
import { jsonSerializer } from "./json-serializer.js";
import { assertInvalidArgument } from "../../test/assertions.js";

const serializer = jsonSerializer();
const roundTrip = (value: unknown): unknown => serializer.decode(serializer.encode(value));

const key = fc.string({ unit: "binary", maxLength: 8 }).filter((k) => k !== "__proto__");
const leaf = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => (Object.is(d, -0) ? 0 : d)),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
);
const { value: jsonValue } = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: "small" }, leaf, tie("array"), tie("object")),
  array: fc.array(tie("value"), { maxLength: 5 }),
  object: fc.dictionary(key, tie("value"), { maxKeys: 5, noNullPrototype: true }),
}));

describe("jsonSerializer", () => {
  it("has id 2 and name json", () => {
    assert.equal(serializer.id, 2);
    assert.equal(serializer.name, "json");
  });

  it("round-trips JSON values (property)", () => {
    fc.assert(fc.property(jsonValue, (value) => assert.deepStrictEqual(roundTrip(value), value)), { numRuns: 1000 });
  });

  it("round-trips lone surrogates, and a top-level undefined as zero bytes", () => {
    assert.equal(roundTrip("\ud800x"), "\ud800x");
    assert.equal(serializer.encode(undefined).length, 0);
    assert.equal(roundTrip(undefined), undefined);
  });

  it("loses what JSON.stringify loses (documented)", () => {
    const at = new Date(0);
    assert.deepStrictEqual(roundTrip({ at, map: new Map([[1, 2]]), set: new Set([1]), nan: NaN, u: undefined, a: [undefined, -0] }), {
      at: at.toISOString(),
      map: {},
      set: {},
      nan: null,
      a: [null, 0],
    });
  });

  it("rejects what it cannot encode", () => {
    assertInvalidArgument(() => serializer.encode(1n), /BigInt/);
    assertInvalidArgument(() => serializer.encode(() => 1), /function/);
    assertInvalidArgument(() => serializer.encode(Symbol("s")), /symbol/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assertInvalidArgument(() => serializer.encode(cyclic));
    assertInvalidArgument(() => serializer.encode([JSON.parse('{"__proto__": {"x": 1}}')]), /__proto__/);
    assert.deepStrictEqual(roundTrip({ a: "__proto__", '"__proto__"': 1 }), { a: "__proto__", '"__proto__"': 1 });
  });

  it("rejects a __proto__ key and keeps constructor and prototype as plain data", () => {
    for (const text of ['{"__proto__": {"polluted": true}}', '[{"a": {"__proto__": null}}]', '{"\\u005f_proto__": 1}']) {
      assertInvalidArgument(() => serializer.decode(Buffer.from(text)), /__proto__/);
    }
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    const decoded = serializer.decode(Buffer.from('{"constructor": {"prototype": 1}, "prototype": 2}')) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(decoded), Object.prototype);
    assert.deepStrictEqual(Object.keys(decoded), ["constructor", "prototype"]);
    assert.deepStrictEqual(decoded.constructor, { prototype: 1 });
  });

  it("bounds nesting: 100000 nested arrays give a FarcallError", () => {
    assertInvalidArgument(() => serializer.decode(Buffer.from("[".repeat(100_000) + "]".repeat(100_000))), /deeper than 128/);
    const shallow = jsonSerializer({ maxDepth: 2 });
    assert.deepStrictEqual(shallow.decode(Buffer.from('{"a": [1]}')), { a: [1] });
    assertInvalidArgument(() => shallow.decode(Buffer.from('{"a": [[1]]}')), /deeper than 2/);
    assert.throws(() => jsonSerializer({ maxDepth: 1001 }), { code: "invalid_argument", reason: "bad_option" });
  });

  it("rejects malformed input: bad JSON, invalid UTF-8", () => {
    assertInvalidArgument(() => serializer.decode(Buffer.from("{")), /malformed JSON/);
    assertInvalidArgument(() => serializer.decode(Buffer.from([0x22, 0xff, 0x22])), /UTF-8/);
    assertInvalidArgument(() => serializer.decode(Buffer.from("1 2")), /malformed JSON/);
  });

  it("gives a value or a FarcallError for random bytes (property)", () => {
    const text = fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.string({ unit: fc.constantFrom(..."{}[]\":,0-1.e truefalsn\\u_proto") }).map((s) => Buffer.from(s)));
    fc.assert(
      fc.property(text, (input) => {
        try {
          serializer.decode(input);
        } catch (error) {
          assert.ok(error instanceof FarcallError);
          assert.equal(error.code, "invalid_argument");
        }
      }),
      { numRuns: 2000 },
    );
  });
});
