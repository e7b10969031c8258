import { randomBytes } from "node:crypto";
import { defaults, type ApplicationOptions, type ClientOptions, type ProvideOptions } from "./application-options.js";
import { checkOutlierDetectionOptions } from "./cluster/outlier-detector.js";
import { ServiceGovernance, type ServiceGovernanceSnapshot } from "./cluster/service-governance.js";
import { ConnectionPool } from "./client/connection-pool.js";
import { createStub } from "./client/service-client.js";
import type { Stub } from "./client/stub.js";
import { checkLoadBalancer } from "./config/load-balancer-of.js";
import { faultToleranceNames, policyResolver, SharedPolicyObjects } from "./config/client-policy.js";
import { checkRetryBudgetOptions } from "./governance/retry-budget.js";
import { checkCircuitBreakerOptions } from "./governance/circuit-breaker.js";
import { checkAdaptiveThrottleOptions } from "./governance/adaptive-throttle.js";
import { checkRateLimitOptions, createRateLimiter } from "./governance/rate-limiters.js";
import { createConcurrencyLimiter } from "./governance/concurrency-limiter.js";
import { conditionRouter } from "./governance/routing/condition-router.js";
import { tagMetadataKey } from "./governance/routing/tag-router.js";
import type { MethodGuard } from "./server/service-table.js";
import { checkLoadSheddingOptions } from "./server/load-shedder.js";
import { checkLoadReportOptions } from "./server/load-reporter.js";
import { checkClientSettings, checkProvideSettings, checkTag, mergeServiceOptions, withoutUndefined } from "./config/service-settings.js";
import { loadSettings } from "./config/load-settings.js";
import { registryFromAddress } from "./config/registry-address.js";
import type { ServiceDefinition } from "./contract/define-service.js";
import type { Implementation } from "./contract/implementation.js";
import { definitionOf } from "./contract/rpc-service.js";
import { badOption, FarcallError } from "./errors/farcall-error.js";
import type { Endpoint } from "./registry/endpoint.js";
import type { Interceptor } from "./call/call.js";
import type { Registration, Registry } from "./registry/registry.js";
import { jsonSerializer } from "./serialization/json-serializer.js";
import { msgpackSerializer } from "./serialization/msgpack-serializer.js";
import type { Serializer } from "./serialization/serializer.js";
import { Server } from "./server/server.js";
import { ServiceTable } from "./server/service-table.js";
import { closeOnSignals, releaseSignals } from "./shutdown-signals.js";
import { TimingWheel } from "./timing/timing-wheel.js";
import { tcpTransport } from "./transport/tcp-transport.js";
import type { Address } from "./transport/transport.js";


/** A farcall application: provides services, calls services, or both. */
export interface Application {
  readonly name: string;
  /** The registry in use. */
  readonly registry: Registry;
  /** The provider's bound address once started with services to provide. */
  readonly address: Address | undefined;
  /**
   * Adds a service implementation, served from `start()` on.
   * @throws FarcallError `invalid_argument` (`bad_option`) for a missing method, a duplicate service, or after `start()`.
   */
  provide<T>(definition: ServiceDefinition<T>, implementation: Implementation<T>, options?: ProvideOptions): void;
  /**
   * Adds an instance of a class decorated with `@rpcService(definition)`.
   * @throws FarcallError `invalid_argument` (`bad_option`) when the class is not decorated.
   */
  provide(implementation: object, options?: ProvideOptions): void;
  /**
   * A typed stub for `definition`, calling the providers the registry reports. Cheap to call again.
   * @throws FarcallError `invalid_argument` (`bad_option`) for a malformed option, named as written
   *   (`timeoutMs`, `methods.get.retries`), or a method name in `methods` the service lacks.
   */
  client<T>(definition: ServiceDefinition<T>, options?: ClientOptions): Stub<T>;
  /**
   * Starts serving: listens and registers every provided service. Without provided services it
   * does nothing.
   * @throws FarcallError `unavailable` when the port cannot be bound; a registration failure is
   *   passed on as the registry raised it (e.g. `permission_denied` from an unsafe local directory).
   */
  start(): Promise<void>;
  /**
   * How this application governs each service it calls, as of now: per provider its effective
   * weight, whether a rule disabled it, its health (`healthy`, `degraded`, `ejected`), its
   * connection, its breakers per method and call statistics; per service the governance rules in
   * force (and the last refused ones). Cheap enough to poll for a status page, not for every call.
   */
  governance(): GovernanceSnapshot;
  /**
   * Graceful shutdown: unregister, send `closing` to every consumer, finish running calls within
   * `graceMs`, then close connections, watches and the registry (when built from an address).
   * Idempotent; resolves when everything is released.
   */
  close(): Promise<void>;
}

/** See {@link Application.governance}. */
export interface GovernanceSnapshot {
  /** When the snapshot was taken, epoch ms. */
  readonly at: number;
  readonly services: readonly ServiceGovernanceSnapshot[];
}

type Resolved = typeof defaults & Pick<ApplicationOptions, "interceptors" | "attemptInterceptors">;

/**
 * Creates an application. Options are merged once: code, then `FARCALL_*` environment variables,
 * then the properties file, then defaults; they are validated here.
 * @throws FarcallError `invalid_argument` (`bad_option`) naming the bad key.
 */
export function createApplication(options: ApplicationOptions = {}): Application {
  const loaded = loadSettings({
    ...(options.env === undefined ? {} : { env: options.env }),
    ...(options.configFile === undefined ? {} : { configFile: options.configFile }),
  });
  const merged = { ...defaults, ...loaded, ...withoutUndefined(options) } as Resolved & ApplicationOptions;
  validate(merged);
  return new FarcallApplication(merged);
}

/** Waits for `work`, or `ms` milliseconds, whichever comes first. */
async function boundedWait(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

function isDefinition(value: object): value is ServiceDefinition<unknown> {
  return (value as Partial<ServiceDefinition<unknown>>).methods instanceof Map && typeof (value as { name?: unknown }).name === "string";
}

function validate(o: ApplicationOptions): void {
  const int = (name: keyof ApplicationOptions, min: number, max: number): void => {
    const v = o[name];
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) badOption(name, `must be an integer in ${min}..${max}`);
  };
  if (typeof o.name !== "string" || !/^[\w.\-]{1,100}$/.test(o.name)) badOption("name", "1..100 letters, digits, _ . -");
  if (typeof o.group !== "string" || !/^[\w.\-+]{0,64}$/.test(o.group)) badOption("group", "0..64 letters, digits, _ . - +");
  if (typeof o.host !== "string" || !/^[A-Za-z0-9_.:\-]{1,255}$/.test(o.host)) badOption("host", "a host name or IP address");
  oneOf("serializer", o.serializer, ["msgpack", "json"], "object");
  checkLoadBalancer(o.loadBalancer);
  oneOf("faultTolerance", o.faultTolerance, faultToleranceNames, "function");
  int("forks", 1, 10);
  checkTag(o.tag, "tag");
  if (o.retryBudget !== false) checkRetryBudgetOptions(o.retryBudget, "retryBudget");
  if (o.outlierDetection !== false) checkOutlierDetectionOptions(o.outlierDetection, "outlierDetection");
  if (o.circuitBreaker !== false) checkCircuitBreakerOptions(o.circuitBreaker, "circuitBreaker");
  if (typeof o.adaptiveThrottle !== "boolean") checkAdaptiveThrottleOptions(o.adaptiveThrottle, "adaptiveThrottle");
  if (typeof o.loadShedding !== "boolean") checkLoadSheddingOptions(o.loadShedding, "loadShedding");
  if (typeof o.loadReport !== "boolean") checkLoadReportOptions(o.loadReport, "loadReport");
  checkClientSettings(o.clients, "clients");
  checkProvideSettings(o.services, "services");
  if (typeof o.tagForce !== "boolean") badOption("tagForce", "must be true or false");
  if (!Array.isArray(o.routes)) badOption("routes", "must be a list of condition rules");
  conditionRouter(o.routes as NonNullable<ApplicationOptions["routes"]>);
  int("port", 0, 65535);
  int("timeoutMs", 0, 2 ** 31 - 1);
  int("retries", 0, 10);
  int("graceMs", 0, 3_600_000);
  int("heartbeatIntervalMs", 0, 3_600_000);
  int("idleTimeoutMs", 0, 86_400_000);
  int("maxFrameBytes", 1024, 2 ** 30);
  int("maxBufferedBytes", 65536, 2 ** 31 - 1);
  int("maxPendingCalls", 1, 10_000_000);
  int("weight", 0, 10000);
  int("warmupMs", 0, 86_400_000);
  if (typeof o.emptyProtection !== "boolean") badOption("emptyProtection", "must be true or false");
}

/** Puts the client's routing tag on every call that does not name its own. */
function withTag(tag: string): Interceptor {
  return (next) => (call) => (call.metadata[tagMetadataKey] !== undefined ? next(call) : next({ ...call, metadata: { ...call.metadata, [tagMetadataKey]: tag } }));
}

/**
 * The provider-side limits of each method of a provided service, from its options.
 * @throws FarcallError `invalid_argument` (`bad_option`) for an unknown method or a malformed limit.
 */
function providerGuards(definition: ServiceDefinition<unknown>, options: ProvideOptions): (method: string) => MethodGuard | undefined {
  for (const name of Object.keys(options.methods ?? {})) {
    if (!definition.methods.has(name)) badOption(`methods.${name}`, `${definition.name} has no method ${JSON.stringify(name)}`);
  }
  // Every method's guard is built here, before the table sees any: a refused option leaves no
  // half-added service behind, so a corrected provide() of the same service succeeds.
  const guards = new Map<string, MethodGuard>();
  for (const method of definition.methods.keys()) {
    const m = options.methods?.[method] ?? {};
    const rate = m.rateLimit === false ? undefined : (m.rateLimit ?? options.rateLimit);
    const max = m.maxConcurrent === false ? undefined : (m.maxConcurrent ?? options.maxConcurrent);
    if (rate === undefined && max === undefined) continue;
    const where = (option: "rateLimit" | "maxConcurrent"): string => (m[option] !== undefined ? `methods.${method}.${option}` : option);
    if (max !== undefined && (typeof max !== "number" || !Number.isInteger(max) || max < 1 || max > 1_000_000)) badOption(where("maxConcurrent"), "must be an integer in 1..1000000");
    guards.set(method, {
      ...(rate === undefined ? {} : { rateLimiter: createRateLimiter(checkRateLimitOptions(rate, where("rateLimit"))) }),
      ...(max === undefined ? {} : { concurrency: createConcurrencyLimiter(max) }),
    });
  }
  return (method) => guards.get(method);
}

function oneOf(name: string, value: unknown, names: readonly string[], valueType: "object" | "function"): void {
  if (typeof value === "string" ? names.includes(value) : typeof value === valueType && value !== null) return;
  badOption(name, `must be one of ${names.join(", ")} or a ${name} value, got ${JSON.stringify(value)}`);
}

function serializerOf(value: ApplicationOptions["serializer"]): Serializer {
  if (typeof value === "object") return value;
  return value === "json" ? jsonSerializer() : msgpackSerializer();
}

class FarcallApplication implements Application {
  readonly name: string;
  readonly registry: Registry;
  readonly #options: Resolved & ApplicationOptions;
  readonly #ownsRegistry: boolean;
  readonly #serializer: Serializer;
  readonly #serializers: ReadonlyMap<number, Serializer>;
  readonly #table = new ServiceTable();
  readonly #provided: Array<{ definition: ServiceDefinition<unknown>; options: ProvideOptions }> = [];
  /** Per service key: directory, routing, health, statistics, retry budget and rules. */
  readonly #services = new Map<string, ServiceGovernance>();
  readonly #shared = new SharedPolicyObjects();
  /** Runs the outlier sweep of every service. */
  #sweepTimer: NodeJS.Timeout | undefined;
  readonly #wheel = new TimingWheel();
  readonly #pool: ConnectionPool;
  readonly #startTime = Date.now();
  #server: Server | undefined;
  #registrations: Registration[] = [];
  #started = false;
  #closing: Promise<void> | undefined;

  constructor(options: Resolved & ApplicationOptions) {
    this.#options = options;
    this.name = options.name;
    this.#ownsRegistry = typeof options.registry === "string";
    this.registry = typeof options.registry === "string" ? registryFromAddress(options.registry) : options.registry;
    this.#serializer = serializerOf(options.serializer);
    const all = [msgpackSerializer(), jsonSerializer(), this.#serializer];
    this.#serializers = new Map(all.map((s) => [s.id, s]));
    this.#pool = new ConnectionPool({
      transport: options.transport ?? tcpTransport(),
      connection: {
        serializer: this.#serializer,
        serializers: this.#serializers,
        maxFrameBytes: options.maxFrameBytes,
        heartbeatIntervalMs: options.heartbeatIntervalMs,
        maxPendingCalls: options.maxPendingCalls,
        maxBufferedBytes: options.maxBufferedBytes,
        wheel: this.#wheel,
      },
      serializersByName: new Map(all.map((s) => [s.name, s])),
      backoffInitialMs: 1000,
      backoffMaxMs: 120_000,
      closedHoldMs: 5000,
    });
    this.#pool.onChange(() => {
      for (const service of this.#services.values()) service.directory.invalidate();
    });
  }

  get address(): Address | undefined {
    return this.#server?.address;
  }

  provide<T>(first: ServiceDefinition<T> | object, second?: Implementation<T> | ProvideOptions, third?: ProvideOptions): void {
    if (this.#started) badOption("provide", "services must be provided before start()");
    let definition: ServiceDefinition<T>;
    let implementation: Implementation<T>;
    let options: ProvideOptions;
    if (isDefinition(first)) {
      definition = first as ServiceDefinition<T>;
      implementation = second as Implementation<T>;
      options = third ?? {};
    } else {
      const found = definitionOf(first);
      if (found === undefined) badOption("implementation", "pass a service definition, or an instance of a class decorated with @rpcService");
      definition = found as ServiceDefinition<T>;
      implementation = first as Implementation<T>;
      options = (second as ProvideOptions | undefined) ?? {};
    }
    options = mergeServiceOptions(this.#options.services?.[definition.name], options);
    if (options.tag !== undefined) checkTag(options.tag, "tag");
    const effective = this.#withGroup(definition);
    this.#table.add(effective, implementation, providerGuards(effective, options));
    this.#provided.push({ definition: effective as ServiceDefinition<unknown>, options });
  }

  client<T>(definition: ServiceDefinition<T>, codeOptions: ClientOptions = {}): Stub<T> {
    const options = mergeServiceOptions(this.#options.clients?.[definition.name], codeOptions);
    checkLoadBalancer(options.loadBalancer ?? this.#options.loadBalancer, options.hashKey);
    oneOf("faultTolerance", options.faultTolerance ?? "failover", faultToleranceNames, "function");
    if (options.tag !== undefined) checkTag(options.tag, "tag");
    if (this.#closing) throw new FarcallError("unavailable", "the application is closed", { sent: false });
    const effective = this.#withGroup(definition);
    const key = `${effective.group}/${effective.name}:${effective.version}`;
    const service = this.#service(key, effective);
    const o = this.#options;
    const policyOf = policyResolver(key, new Set(effective.methods.keys()), o, options, service, this.#shared);
    const tagInterceptor = options.tag === undefined || options.tag === "" ? [] : [withTag(options.tag)];
    return createStub(effective, {
      directory: service.directory,
      pool: this.#pool,
      policyOf,
      routing: service.routing,
      interceptors: [...tagInterceptor, ...(o.interceptors ?? []), ...(options.interceptors ?? [])],
      attemptInterceptors: [...(o.attemptInterceptors ?? []), ...(options.attemptInterceptors ?? [])],
      discoveryTimeoutMs: 3000,
    });
  }

  governance(): GovernanceSnapshot {
    const now = Date.now();
    return Object.freeze({ at: now, services: Object.freeze([...this.#services.values()].map((s) => s.snapshot(now))) });
  }

  #service(key: string, effective: ServiceDefinition<unknown>): ServiceGovernance {
    let service = this.#services.get(key);
    if (service !== undefined) return service;
    const o = this.#options;
    const outlierDetection = o.outlierDetection === false ? undefined : checkOutlierDetectionOptions(o.outlierDetection, "outlierDetection");
    service = new ServiceGovernance(this.registry, {
      registry: this.registry,
      service: effective.name,
      version: effective.version,
      group: effective.group,
      application: this.name,
      usable: (endpoint, now) => this.#pool.usable(endpoint, now),
      emptyProtection: o.emptyProtection,
      connected: (endpoint) => this.#pool.connected(endpoint),
      outlierDetection,
      retryBudget: o.retryBudget === false ? undefined : checkRetryBudgetOptions(o.retryBudget, "retryBudget"),
      routes: o.routes,
      tagForce: o.tagForce,
      context: { application: this.name, host: o.host },
      connectionState: (endpoint, now) => (this.#pool.usable(endpoint, now) ? "ready" : "unusable"),
      loadOf: (address) => this.#pool.loadOf(address),
    });
    this.#services.set(key, service);
    if (outlierDetection !== undefined && this.#sweepTimer === undefined) {
      this.#sweepTimer = setInterval(() => {
        const now = Date.now();
        for (const s of this.#services.values()) s.sweep(now);
      }, outlierDetection.intervalMs);
      this.#sweepTimer.unref();
    }
    return service;
  }

  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    if (this.#provided.length === 0) return;
    const o = this.#options;
    const server = new Server({
      transport: o.transport ?? tcpTransport(),
      table: this.#table,
      // A provider decodes only its own serializer (CVE-2021-25641: the consumer never picks the codec).
      serializers: new Map([[this.#serializer.id, this.#serializer]]),
      fallbackSerializer: this.#serializer,
      maxFrameBytes: o.maxFrameBytes,
      maxBufferedBytes: o.maxBufferedBytes,
      idleTimeoutMs: o.idleTimeoutMs,
      includeStack: o.includeStack,
      loadShedding: o.loadShedding === true ? {} : (o.loadShedding ?? false),
      loadReport: o.loadReport === true ? {} : (o.loadReport ?? false),
    });
    this.#server = server;
    const address = await server.listen({ host: o.host, port: o.port });
    if (this.#closing !== undefined) {
      await server.close(0);
      return;
    }
    const instance = `${process.pid}-${randomBytes(4).toString("hex")}`;
    for (const { definition, options } of this.#provided) {
      const endpoint: Endpoint = {
        id: `${address.host}:${address.port}/${definition.group}/${definition.name}:${definition.version}#${instance}`,
        service: definition.name,
        version: definition.version,
        group: definition.group,
        host: address.host,
        port: address.port,
        protocol: "farcall",
        serializer: this.#serializer.name,
        weight: options.weight ?? o.weight,
        warmupMs: options.warmupMs ?? o.warmupMs,
        startTime: this.#startTime,
        application: this.name,
        pid: process.pid,
        methods: [...definition.methods.keys()],
        tag: options.tag ?? o.tag,
      };
      const registration = await this.registry.register(endpoint);
      if (this.#closing !== undefined) {
        // close() ran while we were registering: take this one back too, and stop.
        await registration.unregister();
        return;
      }
      this.#registrations.push(registration);
    }
    if (o.handleSignals) closeOnSignals(this);
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    releaseSignals(this);
    // Backwards through the call path: unregister, announce, drain, then release everything.
    // A registry that hangs must not hold shutdown forever: unregistering gets graceMs at most.
    await boundedWait(Promise.allSettled(this.#registrations.map((r) => r.unregister())), this.#options.graceMs);
    this.#registrations = [];
    await this.#server?.close(this.#options.graceMs);
    clearInterval(this.#sweepTimer);
    this.#sweepTimer = undefined;
    for (const service of this.#services.values()) service.close();
    this.#services.clear();
    this.#shared.close();
    this.#pool.close();
    this.#wheel.stop();
    if (this.#ownsRegistry) await this.registry.close();
  }

  #withGroup<T>(definition: ServiceDefinition<T>): ServiceDefinition<T> {
    if (definition.group !== "" || this.#options.group === "") return definition;
    return Object.freeze({ ...definition, group: this.#options.group });
  }
}
