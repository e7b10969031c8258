import { jsonSerializer } from "./json-serializer.js";
import { msgpackSerializer } from "./msgpack-serializer.js";
import type { Serializer } from "./serializer.js";

let builtIns: readonly Serializer[] | undefined;

/**
 * The built-in serializers with default options: msgpack (id 1) and JSON (id 2). Built on the
 * first call, then the same frozen array every time (nothing happens at import).
 */
export function builtInSerializers(): readonly Serializer[] {
  builtIns ??= Object.freeze([msgpackSerializer(), jsonSerializer()]);
  return builtIns;
}

/** The built-in serializer with wire id `id`, or `undefined` when there is none. */
export function serializerById(id: number): Serializer | undefined {
  return builtInSerializers().find((serializer) => serializer.id === id);
}

/** The built-in serializer named `name` (`"msgpack"` or `"json"`), or `undefined` when there is none. */
export function serializerByName(name: string): Serializer | undefined {
  return builtInSerializers().find((serializer) => serializer.name === name);
}
