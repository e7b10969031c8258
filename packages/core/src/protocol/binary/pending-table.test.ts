import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { PendingTable } from "./pending-table.js";

describe("PendingTable", () => {
  it("behaves like a Map for any sequence of adds and deletes, colliding ids included", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 64 })), { maxLength: 300 }), (ops) => {
        const table = new PendingTable<{ id: number }>(8); // tiny ring: ids 1 and 9 collide
        const model = new Map<number, { id: number }>();
        for (const [add, id] of ops) {
          if (add && !model.has(id)) {
            const entry = { id };
            table.set(entry);
            model.set(id, entry);
          } else {
            assert.equal(table.delete(id), model.delete(id));
          }
          assert.equal(table.size, model.size);
        }
        for (let id = 1; id <= 64; id++) assert.equal(table.get(id), model.get(id));
        const drained = table.drain().map((e) => e.id).sort((a, b) => a - b);
        assert.deepEqual(drained, [...model.keys()].sort((a, b) => a - b));
        assert.equal(table.size, 0);
      }),
      { numRuns: 500 },
    );
  });
});
