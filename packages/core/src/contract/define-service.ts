import { badOption } from "../errors/farcall-error.js";

/** Per-method options of a service definition. */
export interface MethodOptions {
  /** Safe to execute more than once; enables retrying timeouts and lost connections. Default false. */
  readonly idempotent?: boolean;
  /** Deadline for calls of this method in milliseconds; overrides the service's. */
  readonly timeoutMs?: number;
  /**
   * Fire and forget: the stub resolves `undefined` as soon as the request is queued for writing
   * (no reply is awaited; a request lost with its connection is not reported). Default false.
   */
  readonly oneway?: boolean;
}

/** The method names of `T`: keys whose values are functions. */
export type MethodNames<T> = {
  [K in keyof T]-?: T[K] extends (...args: never[]) => unknown ? K : never;
}[keyof T] &
  string;

/** Options of {@link defineService}: every method of `T`, no more, no less. */
export interface ServiceOptions<T> {
  /** Service version; consumers only call providers of the same version. */
  readonly version: string;
  /** Group; consumers only call providers of the same group. Default `""`. */
  readonly group?: string;
  /** Default deadline in milliseconds for every method of the service. */
  readonly timeoutMs?: number;
  readonly methods: { readonly [K in MethodNames<T>]: MethodOptions };
}

/** A resolved method of a definition. */
export interface MethodDefinition {
  readonly name: string;
  readonly idempotent: boolean;
  readonly oneway: boolean;
  readonly timeoutMs: number | undefined;
}

/**
 * A service contract shared by provider and consumer. Build it with {@link defineService}; the
 * phantom type `T` carries the method signatures to stubs and implementations.
 */
export interface ServiceDefinition<T> {
  readonly name: string;
  readonly version: string;
  readonly group: string;
  readonly timeoutMs: number | undefined;
  readonly methods: ReadonlyMap<string, MethodDefinition>;
  /** Never set at run time; carries `T` for type inference. */
  readonly __type?: T;
}

const serviceNamePattern = /^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$/;
const methodNamePattern = /^[A-Za-z_$][\w$]*$/;
const versionPattern = /^[\w.\-+]{0,64}$/;

/**
 * Defines a service contract. `methods` must list every method of `T`; a missing or extra method is
 * a compile error.
 *
 * ```ts
 * const Users = defineService<UserService>("demo.UserService", {
 *   version: "1.0.0",
 *   methods: { getById: { idempotent: true }, insert: {} },
 * });
 * ```
 * @throws FarcallError `invalid_argument` (reason `bad_option`) for a malformed name, version,
 *   group, method name or timeout.
 */
export function defineService<T>(name: string, options: ServiceOptions<T>): ServiceDefinition<T> {
  if (!serviceNamePattern.test(name) || name.length > 200) badOption("name", `not a valid service name: ${JSON.stringify(name)}`);
  if (!versionPattern.test(options.version)) badOption("version", `not a valid version: ${JSON.stringify(options.version)}`);
  const group = options.group ?? "";
  if (!versionPattern.test(group)) badOption("group", `not a valid group: ${JSON.stringify(group)}`);
  checkTimeout("timeoutMs", options.timeoutMs);
  const methods = new Map<string, MethodDefinition>();
  for (const [method, raw] of Object.entries(options.methods as Record<string, MethodOptions>)) {
    if (!methodNamePattern.test(method) || method === "then" || method === "constructor") {
      badOption(`methods.${method}`, "not a usable method name");
    }
    checkTimeout(`methods.${method}.timeoutMs`, raw.timeoutMs);
    methods.set(
      method,
      Object.freeze({
        name: method,
        idempotent: raw.idempotent ?? false,
        oneway: raw.oneway ?? false,
        timeoutMs: raw.timeoutMs ?? options.timeoutMs,
      }),
    );
  }
  if (methods.size === 0) badOption("methods", "a service needs at least one method");
  return Object.freeze({ name, version: options.version, group, timeoutMs: options.timeoutMs, methods });
}

function checkTimeout(name: string, value: number | undefined): void {
  if (value === undefined) return;
  if (!Number.isFinite(value) || value <= 0 || value > 2 ** 31 - 1) badOption(name, "must be a positive number of milliseconds");
}
