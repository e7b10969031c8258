import { FarcallError } from "../errors/farcall-error.js";

/**
 * What a throwing implementation sends: its `FarcallError` as is, anything else as `application`
 * with the thrown value's message (or string form) and `details.name`. Never throws: a value that
 * cannot be described (a null-prototype object, a throwing `toString` or `message` getter, a
 * revoked proxy) is sent as `application` with a fixed message.
 */
export function toWireError(error: unknown): FarcallError {
  try {
    if (error instanceof FarcallError) return error;
    if (error instanceof Error) {
      return new FarcallError("application", String(error.message), { details: { name: String(error.name) }, cause: error });
    }
    return new FarcallError("application", String(error), { details: { name: "Error" }, cause: error });
  } catch {
    return new FarcallError("application", "the implementation threw a value that cannot be converted to a string", { details: { name: "Error" }, cause: error });
  }
}
