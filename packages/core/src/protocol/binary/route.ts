import { FarcallError } from "../../errors/farcall-error.js";
import { maxRouteBytes } from "./frame.js";

/** The four parts of a route: which method of which service (version and group) a request calls. */
export interface Route {
  readonly service: string;
  readonly version: string;
  readonly group: string;
  readonly method: string;
}

const separator = "\u0000";
const fatalUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * The route section of a request: UTF-8 `service\0version\0group\0method`. `service` and `method`
 * must be non-empty; `version` and `group` may be empty. Encode once per method (when a stub or the
 * server's route table is built), not per call.
 *
 * @throws FarcallError `invalid_argument` with reason `bad_route` when a part contains U+0000 or
 *   `service`/`method` is empty, or `route_too_large` when the result exceeds `maxRouteBytes`.
 */
export function encodeRoute(service: string, version: string, group: string, method: string): Uint8Array {
  for (const part of [service, version, group, method]) {
    if (part.includes(separator)) throw badRoute("invalid_argument", "a route part contains U+0000");
  }
  if (service === "" || method === "") throw badRoute("invalid_argument", "service and method must be non-empty");
  const bytes = Buffer.from(`${service}${separator}${version}${separator}${group}${separator}${method}`, "utf8");
  if (bytes.length > maxRouteBytes) {
    throw new FarcallError("invalid_argument", `route is ${bytes.length} bytes, more than ${maxRouteBytes}`, {
      reason: "route_too_large",
      sent: false,
    });
  }
  return bytes;
}

/**
 * Parses a route section received from a peer.
 *
 * @throws FarcallError `internal` with reason `bad_route` when the bytes are not valid UTF-8, do not
 *   hold exactly four parts, have an empty service or method, or exceed `maxRouteBytes`.
 */
export function decodeRoute(bytes: Uint8Array): Route {
  if (bytes.length > maxRouteBytes) throw badRoute("internal", "route longer than maxRouteBytes");
  let text: string;
  try {
    text = fatalUtf8.decode(bytes);
  } catch (cause) {
    throw new FarcallError("internal", "route is not valid UTF-8", { reason: "bad_route", cause });
  }
  const parts = text.split(separator);
  const [service, version, group, method] = parts;
  if (parts.length !== 4 || service === undefined || version === undefined || group === undefined) {
    throw badRoute("internal", "route does not have four parts");
  }
  if (method === undefined || service === "" || method === "") {
    throw badRoute("internal", "route has an empty service or method");
  }
  return { service, version, group, method };
}

/**
 * A cheap string key of route bytes for Map lookups on the hot path: one char per byte (latin1),
 * so it is injective and never fails, and needs no UTF-8 validation. Build the table's keys with
 * `routeKey(encodeRoute(...))`; an unknown key simply misses.
 */
export function routeKey(bytes: Uint8Array): string {
  const buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return buffer.toString("latin1");
}

function badRoute(code: "invalid_argument" | "internal", message: string): FarcallError {
  return new FarcallError(code, message, { reason: "bad_route", ...(code === "internal" ? {} : { sent: false }) });
}
