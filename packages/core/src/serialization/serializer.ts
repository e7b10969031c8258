/**
 * Turns values into bytes and back. `id` is the byte on the wire (1..255), `name` the name used in
 * configuration and registry data. `decode` must treat its input as hostile: it never lets the data
 * choose a type, never runs user code and never touches prototypes; it throws a `FarcallError`
 * (`invalid_argument` or `internal`) on malformed input.
 */
export interface Serializer {
  readonly id: number;
  readonly name: string;
  encode(value: unknown): Uint8Array;
  /**
   * Decodes `bytes[start, end)` (default: all of `bytes`), so a receiver can decode a section of a
   * frame in place. Never keeps a reference to `bytes` in what it returns.
   */
  decode(bytes: Uint8Array, start?: number, end?: number): unknown;
}
