import { checkEndpoint, type Endpoint, FarcallError, maxEndpointBytes, registryClosedError } from "@farcall/core/extension";

export { badOption } from "@farcall/core/extension";

/**
 * Validates an endpoint passed to `register` and returns the normalised record and its JSON, the
 * hash value watchers parse back with `parseEndpoint`.
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

/** `unavailable`, reason `registry_closed`: `register` on a closed registry. */
export function closedError(): FarcallError {
  return registryClosedError("redis");
}

/** `unavailable`: Redis did not complete `what` (unreachable, timed out, or refused). */
export function redisError(what: string, cause: unknown): FarcallError {
  if (cause instanceof FarcallError) return cause;
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new FarcallError("unavailable", `redis: ${what}: ${detail}`, { cause, sent: false });
}
