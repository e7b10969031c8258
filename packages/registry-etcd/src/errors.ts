import { checkEndpoint, type Endpoint, FarcallError, maxEndpointBytes, registryClosedError } from "@farcall/core/extension";

export { badOption } from "@farcall/core/extension";

/**
 * Validates an endpoint passed to `register` and returns the normalised record and its JSON, the
 * value watchers parse back with `parseEndpoint`.
 * @throws FarcallError `invalid_argument`, reason `bad_endpoint`: a required field is missing or
 * malformed, or the JSON is over `maxEndpointBytes`.
 */
export function encodeEndpoint(endpoint: Endpoint): { readonly endpoint: Endpoint; readonly data: Buffer } {
  const parsed = checkEndpoint(endpoint);
  const data = Buffer.from(JSON.stringify(parsed));
  if (data.length > maxEndpointBytes) {
    throw new FarcallError("invalid_argument", `endpoint: over ${maxEndpointBytes} bytes as JSON`, {
      reason: "bad_endpoint",
      details: { id: parsed.id.slice(0, 1024) },
      sent: false,
    });
  }
  return { endpoint: parsed, data };
}

/** `unavailable`, reason `registry_closed`: `register` on a closed registry. */
export function closedError(): FarcallError {
  return registryClosedError("etcd");
}

/** `unavailable`: etcd did not complete `what` (unreachable, lease lost, or refused). */
export function etcdError(what: string, cause: unknown): FarcallError {
  if (cause instanceof FarcallError) return cause;
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new FarcallError("unavailable", `etcd: ${what}: ${detail}`, { cause, sent: false });
}
