/**
 * Wire protocol v1 frame layout (all integers big-endian). Specified with golden vectors in
 * docs/wire-protocol.md.
 *
 * ```
 * offset size field
 *  0      2   magic 0xFA 0xCA
 *  2      1   version (1)
 *  3      1   flags (see FrameFlags)
 *  4      1   serializer id (0 when there is no metadata and no body)
 *  5      1   status: 0 = ok; otherwise 1 + index of the error code (responses only)
 *  6      2   route length R (requests; 0 otherwise), at most maxRouteBytes
 *  8      4   request id (u32; per connection, wraps)
 * 12      4   timeout in ms remaining when sent (requests; 0 = none)
 * 16      4   metadata length M
 * 20      4   body length B
 * 24      R   route: UTF-8 "service\u0000version\u0000group\u0000method"
 * 24+R    M   metadata: the serializer's encoding of a string-to-string record
 * 24+R+M  B   body: request = serializer-encoded argument array; response = value or error record
 * ```
 */
export const headerBytes = 24;
export const magic0 = 0xfa;
export const magic1 = 0xca;
export const protocolVersion = 1;
/** Upper bound of the route section, checked on the header. */
export const maxRouteBytes = 1024;
/** Default upper bound of a whole frame (header + route + metadata + body): 16 MiB. */
export const defaultMaxFrameBytes = 16 * 1024 * 1024;
/** Largest value of a u32 field (request id, timeout, metadata and body lengths). */
export const maxUint32 = 0xffff_ffff;

export const FrameFlags = {
  /** Set on responses, clear on requests. */
  response: 0x01,
  /** Request expects no response. */
  oneway: 0x02,
  /** Heartbeat ping (request) or pong (response); carries no route, metadata or body. */
  heartbeat: 0x04,
  /** Sent by a server that is shutting down: send no new requests on this connection. */
  closing: 0x08,
} as const;

/** Bits not defined in v1; a frame with any of them set is malformed. */
export const unknownFlagBits = 0xf0;

/**
 * One decoded frame. `route`, `metadata` and `body` are views into the received bytes (no copy),
 * valid only until the decoder's next call; copy what must outlive it.
 */
export interface Frame {
  readonly flags: number;
  readonly serializerId: number;
  readonly status: number;
  readonly requestId: number;
  readonly timeoutMs: number;
  readonly route: Uint8Array;
  readonly metadata: Uint8Array;
  readonly body: Uint8Array;
}

/**
 * A frame as the decoder hands it out: the header fields plus where its sections lie in `source`,
 * so receivers can decode sections in place without allocating views. `route`, `metadata` and
 * `body` are views made on first access. Valid only during the decoder's callback.
 */
export interface ReceivedFrame extends Frame {
  /** The bytes holding the frame (a received chunk or the decoder's reassembly buffer). */
  readonly source: Buffer;
  readonly routeStart: number;
  /** End of the route, start of the metadata. */
  readonly metadataStart: number;
  /** End of the metadata, start of the body. */
  readonly bodyStart: number;
  readonly bodyEnd: number;
}
