import { FarcallError } from "../errors/farcall-error.js";
import { type Endpoint, parseEndpoint } from "./endpoint.js";

/**
 * Validates an endpoint passed to `Registry.register` and returns the normalised, frozen record
 * watchers will see (the shape {@link parseEndpoint} produces: unknown fields dropped, bad
 * optional fields defaulted).
 * @throws FarcallError `invalid_argument`, reason `bad_endpoint`, when a required field is missing
 * or malformed.
 */
export function checkEndpoint(endpoint: Endpoint): Endpoint {
  const parsed = parseEndpoint(endpoint);
  if (parsed === undefined) {
    throw new FarcallError("invalid_argument", "endpoint: a required field is missing or malformed", {
      reason: "bad_endpoint",
      details: { id: typeof endpoint?.id === "string" ? endpoint.id.slice(0, 1024) : "" },
      sent: false,
    });
  }
  return parsed;
}

/** The error `register` rejects with once the registry is closed: `unavailable`, reason `registry_closed`. */
export function registryClosedError(kind: string): FarcallError {
  return new FarcallError("unavailable", `${kind} registry is closed`, { reason: "registry_closed", sent: false });
}
