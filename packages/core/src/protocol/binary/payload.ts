import { type Code, FarcallError, type Metadata } from "../../errors/farcall-error.js";
import type { Serializer } from "../../serialization/serializer.js";

/** Most metadata entries accepted in one frame. */
export const maxMetadataEntries = 64;

/** Encodes call or reply metadata; `undefined` (nothing on the wire) when empty. */
export function encodeMetadata(serializer: Serializer, metadata: Metadata | undefined): Uint8Array | undefined {
  if (metadata === undefined) return undefined;
  for (const _ in metadata) return serializer.encode(metadata);
  return undefined;
}

/**
 * Decodes untrusted metadata: a record of at most {@link maxMetadataEntries} string values, copied
 * into a null-prototype object. Anything else is `invalid_argument`.
 */
export function decodeMetadata(serializer: Serializer, bytes: Uint8Array, start = 0, end = bytes.length): Metadata {
  const value = serializer.decode(bytes, start, end);
  if (typeof value !== "object" || value === null || Array.isArray(value) || value instanceof Map) {
    throw new FarcallError("invalid_argument", "metadata is not a record");
  }
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  let count = 0;
  for (const key of Object.keys(value)) {
    const v = (value as Record<string, unknown>)[key];
    if (typeof v !== "string") throw new FarcallError("invalid_argument", `metadata value of ${JSON.stringify(key)} is not a string`);
    if (++count > maxMetadataEntries) throw new FarcallError("invalid_argument", `more than ${maxMetadataEntries} metadata entries`);
    out[key] = v;
  }
  return out;
}

/** What an error response's body holds. */
interface ErrorRecord {
  name?: unknown;
  message?: unknown;
  details?: unknown;
  stack?: unknown;
}

/** Encodes the body of an error response: `{ name, message, details?, stack? }`. */
export function encodeErrorBody(serializer: Serializer, error: FarcallError, includeStack: boolean): Uint8Array {
  const record: Record<string, unknown> = { message: error.message };
  const name = error.details["name"];
  if (typeof name === "string") record["name"] = name;
  const details = Object.keys(error.details).length > 0 ? error.details : undefined;
  if (details !== undefined) record["details"] = details;
  if (includeStack) {
    const stack = error.cause instanceof Error ? error.cause.stack : error.stack;
    if (stack !== undefined) record["stack"] = stack;
  }
  try {
    return serializer.encode(record);
  } catch {
    return serializer.encode({ message: error.message });
  }
}

/**
 * Rebuilds a `FarcallError` from an untrusted error body; fields of the wrong type are dropped.
 * `details.address` is always the provider that answered (whatever the body says), so failover
 * excludes the right provider.
 */
export function decodeErrorBody(
  serializer: Serializer,
  code: Code,
  source: Uint8Array,
  start: number,
  end: number,
  metadata: Metadata | undefined,
  address: string,
): FarcallError {
  let record: ErrorRecord = {};
  try {
    const value = serializer.decode(source, start, end);
    if (typeof value === "object" && value !== null && !Array.isArray(value)) record = value as ErrorRecord;
  } catch {
    // A garbled error body still yields the error code.
  }
  const message = typeof record.message === "string" ? record.message : `remote error (${code})`;
  const details: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  if (typeof record.details === "object" && record.details !== null && !Array.isArray(record.details)) {
    for (const key of Object.keys(record.details)) details[key] = (record.details as Record<string, unknown>)[key];
  }
  if (typeof record.name === "string") details["name"] = record.name;
  if (typeof record.stack === "string") details["remoteStack"] = record.stack;
  details["address"] = address;
  return new FarcallError(code, message, { details, ...(metadata === undefined ? {} : { metadata }) });
}
