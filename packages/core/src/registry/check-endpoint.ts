import { FarcallError } from "../errors/farcall-error.js";
import { type Endpoint, maxEndpointBytes, parseEndpoint } from "./endpoint.js";

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

/**
 * {@link checkEndpoint}, then the record as the JSON a network registry stores and watchers parse
 * back with `parseEndpoint`.
 * @throws FarcallError `invalid_argument`, reason `bad_endpoint`: a required field is missing or
 * malformed, or the JSON is over `maxEndpointBytes`.
 */
export function encodeEndpoint(endpoint: Endpoint): { readonly endpoint: Endpoint; readonly json: string } {
  const parsed = checkEndpoint(endpoint);
  const json = JSON.stringify(parsed);
  if (Buffer.byteLength(json) > maxEndpointBytes) {
    throw new FarcallError("invalid_argument", `endpoint: over ${maxEndpointBytes} bytes as JSON`, {
      reason: "bad_endpoint",
      details: { id: parsed.id.slice(0, 1024) },
      sent: false,
    });
  }
  return { endpoint: parsed, json };
}

/** `unavailable`: the `kind` registry's server did not complete `what`; a `FarcallError` cause is returned as it is. */
export function registryError(kind: string, what: string, cause: unknown): FarcallError {
  if (cause instanceof FarcallError) return cause;
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new FarcallError("unavailable", `${kind}: ${what}: ${detail}`, { cause, sent: false });
}
