import { badOption } from "../errors/farcall-error.js";
import { checkCircuitBreakerOptions } from "../governance/circuit-breaker.js";
import { checkAdaptiveThrottleOptions } from "../governance/adaptive-throttle.js";
import { checkRateLimitOptions } from "../governance/rate-limiters.js";
import { faultToleranceNames } from "./client-policy.js";
import { loadBalancerNames } from "./load-balancer-of.js";

/**
 * Per-service client and provider options as data, for the environment and the properties file
 * (`FARCALL_CLIENTS` / `cluster.clients`, `FARCALL_SERVICES` / `provider.services`): JSON objects
 * keyed by service name, each holding the data subset of `ClientOptions` or `ProvideOptions`
 * (names, numbers, objects; no functions). Code options for the same service win, key by key and
 * method by method. Validated here as untrusted data: unknown keys are refused (a typo must not
 * pass silently), so is anything over the limits below.
 */

/** Most services one such setting may name. */
const maxServices = 1000;
/** Most methods one service's `methods` may name. */
const maxMethods = 1000;
const servicePattern = /^[A-Za-z0-9_.:\-/$]{1,256}$/;
const methodPattern = /^[A-Za-z_$][\w$]{0,255}$/;
const tagPattern = /^[\w.\-]{0,64}$/;

type Check = (value: unknown, where: string) => void;

const integer =
  (min: number, max: number): Check =>
  (value, where) => {
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) badOption(where, `must be an integer in ${min}..${max}`);
  };
const orFalse =
  (check: Check): Check =>
  (value, where) => {
    if (value !== false) check(value, where);
  };
const oneOfNames =
  (names: readonly string[]): Check =>
  (value, where) => {
    if (typeof value !== "string" || !names.includes(value)) badOption(where, `must be one of ${names.join(", ")}`);
  };
const rateLimit: Check = (value, where) => void checkRateLimitOptions(value, where);
const breaker: Check = orFalse((value, where) => void checkCircuitBreakerOptions(value, where));

const methodChecks: Readonly<Record<string, Check>> = {
  loadBalancer: oneOfNames(loadBalancerNames),
  faultTolerance: oneOfNames(faultToleranceNames),
  retries: integer(0, 10),
  forks: integer(1, 10),
  timeoutMs: integer(0, 2 ** 31 - 1),
  circuitBreaker: breaker,
  rateLimit: orFalse(rateLimit),
  maxConcurrent: orFalse(integer(1, 1_000_000)),
};

const clientChecks: Readonly<Record<string, Check>> = {
  ...methodChecks,
  rateLimit,
  maxConcurrent: integer(1, 1_000_000),
  adaptiveThrottle: (value, where) => {
    if (typeof value !== "boolean") checkAdaptiveThrottleOptions(value, where);
  },
  tag: (value, where) => checkTag(value, where),
};

const providedMethodChecks: Readonly<Record<string, Check>> = {
  rateLimit: orFalse(rateLimit),
  maxConcurrent: orFalse(integer(1, 1_000_000)),
};

const provideChecks: Readonly<Record<string, Check>> = {
  rateLimit,
  maxConcurrent: integer(1, 1_000_000),
  weight: integer(0, 10_000),
  warmupMs: integer(0, 86_400_000),
  tag: clientChecks["tag"] as Check,
};

function plainObject(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return badOption(where, "must be a JSON object");
  return value as Record<string, unknown>;
}

function checkFields(value: unknown, where: string, checks: Readonly<Record<string, Check>>, methods: Readonly<Record<string, Check>> | undefined): void {
  const o = plainObject(value, where);
  for (const [key, field] of Object.entries(o)) {
    if (key === "methods" && methods !== undefined) {
      const byMethod = plainObject(field, `${where}.methods`);
      const names = Object.keys(byMethod);
      if (names.length > maxMethods) badOption(`${where}.methods`, `names more than ${maxMethods} methods`);
      for (const name of names) {
        if (!methodPattern.test(name)) badOption(`${where}.methods`, `${JSON.stringify(name.slice(0, 100))} is not a method name`);
        checkFields(byMethod[name], `${where}.methods.${name}`, methods, undefined);
      }
      continue;
    }
    const check = Object.hasOwn(checks, key) ? checks[key] : undefined;
    if (check === undefined) badOption(`${where}.${key}`, "unknown option");
    check(field, `${where}.${key}`);
  }
}

function checkByService(value: unknown, where: string, checks: Readonly<Record<string, Check>>, methods: Readonly<Record<string, Check>>): Readonly<Record<string, unknown>> {
  const o = plainObject(value, where);
  const services = Object.keys(o);
  if (services.length > maxServices) badOption(where, `names more than ${maxServices} services`);
  for (const service of services) {
    if (!servicePattern.test(service)) badOption(where, `${JSON.stringify(service.slice(0, 100))} is not a service name`);
    checkFields(o[service], `${where}.${service}`, checks, methods);
  }
  return o;
}

/**
 * Checks a `clients` setting: `{ "<service>": { loadBalancer?, faultTolerance?, retries?, forks?,
 * timeoutMs?, circuitBreaker?, rateLimit?, maxConcurrent?, adaptiveThrottle?, tag?, methods?: {
 * "<method>": { loadBalancer?, faultTolerance?, retries?, forks?, timeoutMs?, circuitBreaker?,
 * rateLimit?, maxConcurrent? } } } }`.
 * @throws FarcallError `invalid_argument` (`bad_option`) naming the path, e.g. `clients.demo.Users.methods.get.retries`.
 */
export function checkClientSettings(value: unknown, where = "clients"): Readonly<Record<string, unknown>> {
  return checkByService(value, where, clientChecks, methodChecks);
}

/**
 * Checks a `services` setting: `{ "<service>": { rateLimit?, maxConcurrent?, weight?, warmupMs?,
 * tag?, methods?: { "<method>": { rateLimit?, maxConcurrent? } } } }`.
 * @throws FarcallError `invalid_argument` (`bad_option`) naming the path.
 */
export function checkProvideSettings(value: unknown, where = "services"): Readonly<Record<string, unknown>> {
  return checkByService(value, where, provideChecks, providedMethodChecks);
}

/**
 * Checks a routing tag: 0..64 letters, digits, `_ . -`.
 * @throws FarcallError `invalid_argument` (`bad_option`) naming `where`.
 */
export function checkTag(value: unknown, where: string): void {
  if (typeof value !== "string" || !tagPattern.test(value)) badOption(where, "0..64 letters, digits, _ . -");
}

/**
 * `code` over `configured`: key by key, and `methods` method by method (a method's options
 * merged key by key too).
 */
export function mergeServiceOptions<T extends { readonly methods?: Readonly<Record<string, object>> }>(configured: T | undefined, code: T): T {
  if (configured === undefined) return code;
  const methods: Record<string, object> = { ...configured.methods };
  for (const [name, options] of Object.entries(code.methods ?? {})) methods[name] = { ...methods[name], ...options };
  const merged = { ...configured, ...withoutUndefined(code) };
  return Object.keys(methods).length === 0 ? merged : { ...merged, methods };
}

/** `value` without its keys whose value is `undefined` (so that spreading it overrides nothing with them). */
export function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
