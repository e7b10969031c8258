/**
 * One provider of one service as the registry reports it. Registry data is untrusted:
 * {@link parseEndpoint} validates it field by field and ignores unknown fields.
 */
export interface Endpoint {
  /** Unique per process incarnation and service: `host:port/group/service:version#instance`. */
  readonly id: string;
  readonly service: string;
  readonly version: string;
  readonly group: string;
  readonly host: string;
  readonly port: number;
  /** Wire protocol name; `"farcall"` for the binary protocol v1. */
  readonly protocol: string;
  /** Serializer name the provider prefers (`"msgpack"` or `"json"`). */
  readonly serializer: string;
  /** Relative weight for balancing, 0..10000. Default 100. */
  readonly weight: number;
  /** Warm-up period in milliseconds during which the effective weight ramps up. */
  readonly warmupMs: number;
  /** Epoch milliseconds when the provider started. */
  readonly startTime: number;
  readonly application: string;
  readonly pid: number;
  readonly methods: readonly string[];
  /**
   * Routing tag (e.g. `"gray"`, `"canary"`), matched by tag routing against the call's requested
   * tag; `""` for none. 0..64 letters, digits, `_ . -`.
   */
  readonly tag: string;
}

/** Maximum bytes of one serialized endpoint record accepted from a registry. */
export const maxEndpointBytes = 8192;

const namePattern = /^[A-Za-z0-9_.:\-/$]{1,256}$/;
const tagPattern = /^[A-Za-z0-9_.\-]{1,64}$/;
const hostPattern = /^[A-Za-z0-9_.:\-[\]]{1,255}$/;

function str(v: unknown, pattern: RegExp): string | undefined {
  return typeof v === "string" && pattern.test(v) ? v : undefined;
}

function int(v: unknown, min: number, max: number): number | undefined {
  return typeof v === "number" && Number.isInteger(v) && v >= min && v <= max ? v : undefined;
}

/**
 * Validates an untrusted value (parsed JSON from a registry) as an {@link Endpoint}. Returns
 * `undefined` for anything malformed; unknown fields are dropped; nothing is evaluated.
 */
export function parseEndpoint(value: unknown): Endpoint | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const o = value as Record<string, unknown>;
  const service = str(o["service"], namePattern);
  const version = typeof o["version"] === "string" && o["version"].length <= 64 ? o["version"] : undefined;
  const group = typeof o["group"] === "string" && o["group"].length <= 64 ? o["group"] : undefined;
  const host = str(o["host"], hostPattern);
  const port = int(o["port"], 1, 65535);
  const id = typeof o["id"] === "string" && o["id"].length <= 1024 ? o["id"] : undefined;
  if (!service || version === undefined || group === undefined || !host || !port || !id) return undefined;
  const rawMethods = Array.isArray(o["methods"]) ? o["methods"] : [];
  const methods = rawMethods.filter((m): m is string => typeof m === "string" && namePattern.test(m)).slice(0, 1024);
  return Object.freeze({
    id,
    service,
    version,
    group,
    host,
    port,
    protocol: str(o["protocol"], namePattern) ?? "farcall",
    serializer: str(o["serializer"], namePattern) ?? "msgpack",
    weight: int(o["weight"], 0, 10000) ?? 100,
    warmupMs: int(o["warmupMs"], 0, 86_400_000) ?? 0,
    startTime: int(o["startTime"], 0, Number.MAX_SAFE_INTEGER) ?? 0,
    application: str(o["application"], namePattern) ?? "",
    pid: int(o["pid"], 0, 2 ** 31) ?? 0,
    methods: Object.freeze(methods),
    tag: str(o["tag"], tagPattern) ?? "",
  });
}

/** The service key consumers subscribe to: `group/service:version`. */
export function serviceKey(service: string, version: string, group: string): string {
  return `${group}/${service}:${version}`;
}
