import { randomBytes } from "node:crypto";
import { defaults, type ApplicationOptions, type ClientOptions, type ProvideOptions } from "./application-options.js";
import { Directory } from "./cluster/directory.js";
import { failfast, failover } from "./cluster/fault-tolerance/failover.js";
import type { FaultTolerance } from "./cluster/fault-tolerance/fault-tolerance.js";
import { EndpointStatsTable } from "./cluster/endpoint-stats.js";
import { ConnectionPool } from "./client/connection-pool.js";
import { createStub } from "./client/service-client.js";
import type { Stub } from "./client/stub.js";
import { checkLoadBalancer, loadBalancerOf } from "./config/load-balancer-of.js";
import { loadSettings } from "./config/load-settings.js";
import { registryFromAddress } from "./config/registry-address.js";
import type { ServiceDefinition } from "./contract/define-service.js";
import type { Implementation } from "./contract/implementation.js";
import { definitionOf } from "./contract/rpc-service.js";
import { badOption, FarcallError } from "./errors/farcall-error.js";
import type { Endpoint } from "./registry/endpoint.js";
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
  /** A typed stub for `definition`, calling the providers the registry reports. Cheap to call again. */
  client<T>(definition: ServiceDefinition<T>, options?: ClientOptions): Stub<T>;
  /**
   * Starts serving: listens and registers every provided service. Without provided services it
   * does nothing.
   * @throws FarcallError `unavailable` when the port cannot be bound; a registration failure is
   *   passed on as the registry raised it (e.g. `permission_denied` from an unsafe local directory).
   */
  start(): Promise<void>;
  /**
   * Graceful shutdown: unregister, send `closing` to every consumer, finish running calls within
   * `graceMs`, then close connections, watches and the registry (when built from an address).
   * Idempotent; resolves when everything is released.
   */
  close(): Promise<void>;
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

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
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
  oneOf("faultTolerance", o.faultTolerance, ["failover", "failfast"], "function");
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

function oneOf(name: string, value: unknown, names: readonly string[], valueType: "object" | "function"): void {
  if (typeof value === "string" ? names.includes(value) : typeof value === valueType && value !== null) return;
  badOption(name, `must be one of ${names.join(", ")} or a ${name} value, got ${JSON.stringify(value)}`);
}

function serializerOf(value: ApplicationOptions["serializer"]): Serializer {
  if (typeof value === "object") return value;
  return value === "json" ? jsonSerializer() : msgpackSerializer();
}

function faultToleranceOf(value: ClientOptions["faultTolerance"], retries: number): FaultTolerance {
  if (typeof value === "function") return value;
  if (value === "failfast") return failfast();
  if (value === undefined || value === "failover") return failover({ retries });
  return badOption("faultTolerance", `unknown fault tolerance ${JSON.stringify(value)}`);
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
  readonly #directories = new Map<string, Directory>();
  /** Call statistics per service key, made for the first client whose balancer reads them. */
  readonly #stats = new Map<string, EndpointStatsTable>();
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
      for (const directory of this.#directories.values()) directory.invalidate();
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
    const effective = this.#withGroup(definition);
    this.#table.add(effective, implementation);
    this.#provided.push({ definition: effective as ServiceDefinition<unknown>, options });
  }

  client<T>(definition: ServiceDefinition<T>, options: ClientOptions = {}): Stub<T> {
    checkLoadBalancer(options.loadBalancer ?? this.#options.loadBalancer, options.hashKey);
    oneOf("faultTolerance", options.faultTolerance ?? "failover", ["failover", "failfast"], "function");
    if (this.#closing) throw new FarcallError("unavailable", "the application is closed", { sent: false });
    const effective = this.#withGroup(definition);
    const key = `${effective.group}/${effective.name}:${effective.version}`;
    let directory = this.#directories.get(key);
    if (directory === undefined) {
      directory = new Directory({
        registry: this.registry,
        service: effective.name,
        version: effective.version,
        group: effective.group,
        application: this.name,
        usable: (endpoint, now) => this.#pool.usable(endpoint, now),
        emptyProtection: this.#options.emptyProtection,
        connected: (endpoint) => this.#pool.connected(endpoint),
      });
      this.#directories.set(key, directory);
    }
    const loadBalancer = loadBalancerOf(options.loadBalancer ?? this.#options.loadBalancer, { hashKey: options.hashKey });
    let stats: EndpointStatsTable | undefined;
    if (loadBalancer.needsStats === true) {
      stats = this.#stats.get(key);
      if (stats === undefined) this.#stats.set(key, (stats = new EndpointStatsTable()));
    }
    return createStub(effective, {
      directory,
      pool: this.#pool,
      loadBalancer,
      stats,
      faultTolerance: faultToleranceOf(options.faultTolerance ?? this.#options.faultTolerance, options.retries ?? this.#options.retries),
      interceptors: [...(this.#options.interceptors ?? []), ...(options.interceptors ?? [])],
      attemptInterceptors: [...(this.#options.attemptInterceptors ?? []), ...(options.attemptInterceptors ?? [])],
      timeoutMs: options.timeoutMs ?? this.#options.timeoutMs,
      discoveryTimeoutMs: 3000,
    });
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
    for (const directory of this.#directories.values()) directory.close();
    this.#directories.clear();
    this.#stats.clear();
    this.#pool.close();
    this.#wheel.stop();
    if (this.#ownsRegistry) await this.registry.close();
  }

  #withGroup<T>(definition: ServiceDefinition<T>): ServiceDefinition<T> {
    if (definition.group !== "" || this.#options.group === "") return definition;
    return Object.freeze({ ...definition, group: this.#options.group });
  }
}
