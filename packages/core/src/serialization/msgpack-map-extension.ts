import { addExtension } from "msgpackr";
import { mapExtensionType } from "./msgpack-checker.js";

/**
 * A `Map` on its way to msgpackr: its entries flattened to `[k1, v1, k2, v2, …]`. msgpackr writes
 * every `Map` as a MessagePack map, which decodes exactly like a plain object, so `Map`s are
 * swapped for this wrapper before packing and the wrapper is written as extension
 * {@link mapExtensionType} followed by the flat array.
 */
export class MapEntries {
  constructor(readonly flat: unknown[]) {}
}
// Off Object.prototype, so an extension someone registers for `Object` can never claim it.
Object.setPrototypeOf(MapEntries.prototype, null);

let registered = false;

/**
 * Teaches msgpackr the Map extension, once per process (msgpackr keeps extensions in
 * module-global tables; there is no per-instance alternative). Why this is safe for other msgpackr
 * users in the process:
 * - packing: the extension matches only `MapEntries`, a class no other code can reach, so no
 *   other `Packr`'s output changes;
 * - unpacking: it gives a meaning (a `Map`) to extension type 0x4d, which msgpackr otherwise
 *   rejects as unknown.
 * The one risk is another library registering type 0x4d too: the last registration wins, and
 * Maps would then decode wrongly. farcall's own decoder only reaches msgpackr after its checker
 * has verified the framing, so the failure could not be a crash or a prototype change.
 */
export function registerMapExtension(): void {
  if (registered) return;
  registered = true;
  addExtension({
    Class: MapEntries,
    type: mapExtensionType,
    write: (entries: MapEntries) => entries.flat,
    read: (flat: unknown) => {
      const map = new Map<unknown, unknown>();
      if (!Array.isArray(flat)) return map; // unreachable: the checker requires an array
      for (let i = 0; i + 1 < flat.length; i += 2) map.set(flat[i], flat[i + 1]);
      return map;
    },
  });
}
