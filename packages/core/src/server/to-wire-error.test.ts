import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FarcallError } from "../errors/farcall-error.js";
import { toWireError } from "./to-wire-error.js";

describe("toWireError", () => {
  it("keeps a FarcallError and turns an Error into application with its name", () => {
    const own = new FarcallError("unavailable", "x");
    assert.equal(toWireError(own), own);
    const error = toWireError(new TypeError("bad"));
    assert.equal(error.code, "application");
    assert.equal(error.message, "bad");
    assert.equal(error.details["name"], "TypeError");
  });

  it("never throws, whatever was thrown", () => {
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    const badMessage = new Error("x");
    Object.defineProperty(badMessage, "message", {
      get(): never {
        throw new Error("getter");
      },
    });
    const values: unknown[] = [Object.create(null), { toString: () => ({}) }, Symbol("s"), 10n, undefined, null, proxy, badMessage];
    for (const value of values) {
      const error = toWireError(value);
      assert.equal(error.code, "application");
      assert.equal(typeof error.message, "string");
    }
    assert.equal(toWireError(Symbol("s")).message, "Symbol(s)");
  });
});
