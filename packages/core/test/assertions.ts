// Assertions on FarcallError shared by the unit tests beside the code.
import assert from "node:assert/strict";
import { FarcallError } from "../src/errors/farcall-error.js";

/** Asserts `fn` throws `invalid_argument` / `bad_option` with `details.option` equal to `option`; returns the error. */
export function assertBadOption(fn: () => unknown, option: string): FarcallError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof FarcallError, "throws a FarcallError");
  assert.equal(caught.code, "invalid_argument");
  assert.equal(caught.reason, "bad_option");
  assert.equal(caught.details["option"], option);
  return caught;
}

/** Asserts `fn` throws a `FarcallError` with code `invalid_argument` (and a message matching `message`). */
export function assertInvalidArgument(fn: () => unknown, message?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof FarcallError, `expected FarcallError, got ${String(error)}`);
    assert.equal(error.code, "invalid_argument");
    if (message) assert.match(error.message, message);
    return true;
  });
}
