import { badOption } from "../errors/farcall-error.js";
import { loadBalancerNames } from "./load-balancer-of.js";
import { faultToleranceNames } from "./client-policy.js";
import { checkClientSettings, checkProvideSettings } from "./service-settings.js";
import { checkOutlierDetectionOptions } from "../cluster/outlier-detector.js";
import { checkAdaptiveThrottleOptions } from "../governance/adaptive-throttle.js";
import { checkCircuitBreakerOptions } from "../governance/circuit-breaker.js";
import { checkRetryBudgetOptions } from "../governance/retry-budget.js";
import { conditionRouter, type ConditionRuleOptions } from "../governance/routing/condition-router.js";
import { checkLoadSheddingOptions } from "../server/load-shedder.js";
import { checkLoadReportOptions } from "../server/load-reporter.js";

type Kind = "string" | "integer" | "boolean" | "json";

interface Setting {
  readonly kind: Kind;
  /** Environment variable. */
  readonly env: string;
  /** Key in the properties file. */
  readonly file: string;
  readonly min?: number;
  readonly max?: number;
  readonly oneOf?: readonly string[];
  /** For `json`: validates the parsed value (`true`/`false` included), naming `where` in its error. */
  readonly check?: (value: unknown, where: string) => unknown;
}

/** A JSON setting that may also be `false` (off) or, when `allowTrue`, `true` (on with defaults). */
function jsonOrOff(check: (value: unknown, where: string) => unknown, allowTrue = false): (value: unknown, where: string) => unknown {
  return (value, where) => {
    if (value === false || (allowTrue && value === true)) return value;
    return check(value, where);
  };
}

function routesCheck(value: unknown, where: string): unknown {
  if (!Array.isArray(value)) return badOption(where, "must be a JSON list of condition rules");
  try {
    conditionRouter(value as Array<string | ConditionRuleOptions>);
  } catch (error) {
    badOption(where, (error as Error).message);
  }
  return value;
}

/**
 * Every setting that can come from the environment or the config file, with its sources. The
 * defaults live in `application-options.ts`; docs/configuration.md lists them all (a test keeps the
 * two in sync).
 */
export const settings = {
  name: { kind: "string", env: "FARCALL_NAME", file: "application.name" },
  group: { kind: "string", env: "FARCALL_GROUP", file: "application.group" },
  registry: { kind: "string", env: "FARCALL_REGISTRY", file: "registry.address" },
  host: { kind: "string", env: "FARCALL_HOST", file: "server.host" },
  port: { kind: "integer", env: "FARCALL_PORT", file: "server.port", min: 0, max: 65535 },
  timeoutMs: { kind: "integer", env: "FARCALL_TIMEOUT_MS", file: "call.timeoutMs", min: 0, max: 2 ** 31 - 1 },
  retries: { kind: "integer", env: "FARCALL_RETRIES", file: "cluster.retries", min: 0, max: 10 },
  loadBalancer: { kind: "string", env: "FARCALL_LOAD_BALANCER", file: "cluster.loadBalancer", oneOf: loadBalancerNames },
  faultTolerance: { kind: "string", env: "FARCALL_FAULT_TOLERANCE", file: "cluster.faultTolerance", oneOf: faultToleranceNames },
  forks: { kind: "integer", env: "FARCALL_FORKS", file: "cluster.forks", min: 1, max: 10 },
  retryBudget: { kind: "json", env: "FARCALL_RETRY_BUDGET", file: "cluster.retryBudget", check: jsonOrOff(checkRetryBudgetOptions) },
  // `{ "enabled": false }` checks to undefined (no detector): kept as `false`, not dropped as unset.
  outlierDetection: { kind: "json", env: "FARCALL_OUTLIER_DETECTION", file: "cluster.outlierDetection", check: jsonOrOff((v, where) => checkOutlierDetectionOptions(v, where) ?? false) },
  circuitBreaker: { kind: "json", env: "FARCALL_CIRCUIT_BREAKER", file: "cluster.circuitBreaker", check: jsonOrOff(checkCircuitBreakerOptions) },
  adaptiveThrottle: { kind: "json", env: "FARCALL_ADAPTIVE_THROTTLE", file: "cluster.adaptiveThrottle", check: jsonOrOff(checkAdaptiveThrottleOptions, true) },
  routes: { kind: "json", env: "FARCALL_ROUTES", file: "cluster.routes", check: routesCheck },
  tagForce: { kind: "boolean", env: "FARCALL_TAG_FORCE", file: "cluster.tagForce" },
  loadShedding: { kind: "json", env: "FARCALL_LOAD_SHEDDING", file: "server.loadShedding", check: jsonOrOff(checkLoadSheddingOptions, true) },
  tag: { kind: "string", env: "FARCALL_TAG", file: "provider.tag" },
  clients: { kind: "json", env: "FARCALL_CLIENTS", file: "cluster.clients", check: checkClientSettings },
  services: { kind: "json", env: "FARCALL_SERVICES", file: "provider.services", check: checkProvideSettings },
  loadReport: { kind: "json", env: "FARCALL_LOAD_REPORT", file: "server.loadReport", check: jsonOrOff(checkLoadReportOptions, true) },
  serializer: { kind: "string", env: "FARCALL_SERIALIZER", file: "serializer", oneOf: ["msgpack", "json"] },
  graceMs: { kind: "integer", env: "FARCALL_GRACE_MS", file: "shutdown.graceMs", min: 0, max: 3_600_000 },
  heartbeatIntervalMs: { kind: "integer", env: "FARCALL_HEARTBEAT_INTERVAL_MS", file: "connection.heartbeatIntervalMs", min: 0, max: 3_600_000 },
  idleTimeoutMs: { kind: "integer", env: "FARCALL_IDLE_TIMEOUT_MS", file: "server.idleTimeoutMs", min: 0, max: 86_400_000 },
  maxFrameBytes: { kind: "integer", env: "FARCALL_MAX_FRAME_BYTES", file: "connection.maxFrameBytes", min: 1024, max: 2 ** 30 },
  maxBufferedBytes: { kind: "integer", env: "FARCALL_MAX_BUFFERED_BYTES", file: "connection.maxBufferedBytes", min: 65536, max: 2 ** 31 - 1 },
  weight: { kind: "integer", env: "FARCALL_WEIGHT", file: "provider.weight", min: 0, max: 10000 },
  warmupMs: { kind: "integer", env: "FARCALL_WARMUP_MS", file: "provider.warmupMs", min: 0, max: 86_400_000 },
  includeStack: { kind: "boolean", env: "FARCALL_INCLUDE_STACK", file: "server.includeStack" },
  handleSignals: { kind: "boolean", env: "FARCALL_HANDLE_SIGNALS", file: "shutdown.handleSignals" },
  emptyProtection: { kind: "boolean", env: "FARCALL_EMPTY_PROTECTION", file: "cluster.emptyProtection" },
} as const satisfies Record<string, Setting>;

export type SettingName = keyof typeof settings;

/** Settings read from the environment or a file: strings parsed into values. */
export type SettingValues = { -readonly [K in SettingName]?: unknown };

/**
 * Parses raw strings from one source into typed values, naming the bad key in the error.
 * @param source e.g. `"environment"` or the file's path, for messages.
 * @param lookup the raw string of a setting, by its env name or file key.
 * @throws FarcallError `invalid_argument` (`bad_option`, `details.option` = the env var or file key).
 */
export function readSettings(lookup: (setting: Setting) => string | undefined, source: string, useEnvNames: boolean): SettingValues {
  const out: SettingValues = {};
  for (const [name, setting] of Object.entries(settings) as Array<[SettingName, Setting]>) {
    const raw = lookup(setting);
    if (raw === undefined || raw === "") continue;
    const key = useEnvNames ? setting.env : setting.file;
    out[name] = parseValue(setting, raw.trim(), `${key} (${source})`);
  }
  return out;
}

function parseValue(setting: Setting, raw: string, where: string): unknown {
  switch (setting.kind) {
    case "json": {
      if (raw.length > 65536) badOption(where, "longer than 64 KiB");
      let value: unknown;
      try {
        value = JSON.parse(raw);
      } catch {
        return badOption(where, `not JSON (or true/false): ${JSON.stringify(raw.slice(0, 100))}`);
      }
      return setting.check === undefined ? value : setting.check(value, where);
    }
    case "integer": {
      if (!/^-?\d+$/.test(raw)) badOption(where, `not an integer: ${JSON.stringify(raw)}`);
      const n = Number(raw);
      if ((setting.min !== undefined && n < setting.min) || (setting.max !== undefined && n > setting.max)) {
        badOption(where, `must be in ${setting.min ?? "-∞"}..${setting.max ?? "∞"}, got ${n}`);
      }
      return n;
    }
    case "boolean":
      if (raw === "true" || raw === "1") return true;
      if (raw === "false" || raw === "0") return false;
      return badOption(where, `not a boolean (true/false): ${JSON.stringify(raw)}`);
    case "string":
      if (setting.oneOf !== undefined && !setting.oneOf.includes(raw)) {
        badOption(where, `must be one of ${setting.oneOf.join(", ")}, got ${JSON.stringify(raw)}`);
      }
      return raw;
  }
}

/** Parses a Java-style properties file: `key=value`, `key: value` or `key value`; `#`/`!` comments. */
export function parseProperties(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === "" || line.startsWith("#") || line.startsWith("!")) continue;
    const at = line.search(/[=:\s]/);
    if (at === 0) continue;
    if (at < 0) {
      out.set(line, "");
      continue;
    }
    out.set(line.slice(0, at).trim(), line.slice(at + 1).replace(/^\s*[=:]?/, "").trim());
  }
  return out;
}
