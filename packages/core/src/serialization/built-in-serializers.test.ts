import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { builtInSerializers, serializerById, serializerByName } from "./built-in-serializers.js";

describe("built-in serializers", () => {
  it("finds msgpack and json by id and by name", () => {
    assert.deepStrictEqual(builtInSerializers().map((s) => [s.id, s.name]), [[1, "msgpack"], [2, "json"]]);
    assert.equal(serializerById(1), serializerByName("msgpack"));
    assert.equal(serializerById(2), serializerByName("json"));
    assert.equal(builtInSerializers(), builtInSerializers());
    assert.ok(Object.isFrozen(builtInSerializers()));
  });

  it("returns undefined for unknown ids and names", () => {
    assert.equal(serializerById(0), undefined);
    assert.equal(serializerById(3), undefined);
    assert.equal(serializerByName("protobuf"), undefined);
  });
});
