import { FarcallError } from "../errors/farcall-error.js";
import { ClientConnection, type ClientConnectionOptions } from "../protocol/binary/client-connection.js";
import { ProviderLoad } from "../protocol/binary/provider-load.js";
import type { Endpoint } from "../registry/endpoint.js";
import type { Serializer } from "../serialization/serializer.js";
import { type Clock, systemClock } from "../timing/clock.js";
import type { Transport } from "../transport/transport.js";

/** Load records kept before silent ones are dropped. */
const maxLoadRecords = 4096;

/** Options of {@link ConnectionPool}. */
export interface ConnectionPoolOptions {
  readonly transport: Transport;
  /** Options of every connection; `serializer` is the default when an endpoint names none we know. */
  readonly connection: ClientConnectionOptions;
  /**
   * Serializers by name. A connection speaks the serializer its provider advertises in the
   * registry (`endpoint.serializer`), since a provider accepts only its own.
   */
  readonly serializersByName: ReadonlyMap<string, Serializer>;
  /** First reconnect delay after a failed connect, in ms; grows ×1.6 per failure with ±20 % jitter. Default 1000. */
  readonly backoffInitialMs: number;
  /** Largest reconnect delay in ms. Default 120000. */
  readonly backoffMaxMs: number;
  /** How long, in ms, an address that sent `closing` stays unusable after its connection closed. Default 5000. */
  readonly closedHoldMs: number;
  /** Default {@link systemClock}. */
  readonly clock?: Clock;
  /** Uniform random numbers in [0, 1) for jitter. Default `Math.random`. */
  readonly random?: () => number;
}

interface Slot {
  connection: ClientConnection | undefined;
  connecting: Promise<ClientConnection> | undefined;
  failures: number;
  /** Epoch ms before which no new connect is attempted. */
  retryAt: number;
  /** The provider sent `closing`: no new calls until the connection is replaced. */
  closing: boolean;
}

/**
 * One long-lived connection per provider address, shared by every service of the application.
 * Connects lazily, reconnects with exponential backoff and jitter, and tells listeners whenever an
 * address becomes usable or unusable so directories rebuild their snapshots.
 */
export class ConnectionPool {
  readonly #options: ConnectionPoolOptions;
  readonly #slots = new Map<string, Slot>();
  /** Hot-path cache: endpoint record to its slot, so a pick needs no address string. */
  #byEndpoint = new WeakMap<Endpoint, Slot>();
  readonly #listeners = new Set<() => void>();
  readonly #loads = new Map<string, ProviderLoad>();
  #closed = false;

  readonly #clock: Clock;
  readonly #random: () => number;

  constructor(options: ConnectionPoolOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
  }

  /** Calls `listener` whenever an address's usability changes; returns a function removing it. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** False while the address is closing or backing off after failed connects. */
  usable(endpoint: Endpoint, now: number): boolean {
    const slot = this.#slots.get(addressOf(endpoint));
    if (slot === undefined) return true;
    if (slot.closing) return false;
    return slot.connection !== undefined || now >= slot.retryAt;
  }

  /**
   * True while the pool holds an open connection to the endpoint's address that has not received
   * `closing`: the provider is alive as far as this consumer can tell. Directories ask it to decide
   * which providers an empty registry push may not remove (empty-push protection).
   */
  connected(endpoint: Endpoint): boolean {
    const connection = this.#slots.get(addressOf(endpoint))?.connection;
    return connection !== undefined && !connection.closing;
  }

  /** The open connection to `endpoint`, or undefined. */
  ready(endpoint: Endpoint): ClientConnection | undefined {
    const connection = this.#byEndpoint.get(endpoint)?.connection;
    return connection !== undefined && !connection.closing ? connection : undefined;
  }

  /** Opens (or joins the opening of) the connection to `endpoint`. Rejects `unavailable`, `sent: false`. */
  acquire(endpoint: Endpoint): Promise<ClientConnection> {
    if (this.#closed) return Promise.reject(new FarcallError("unavailable", "the client is closed", { sent: false }));
    const key = addressOf(endpoint);
    let slot = this.#slots.get(key);
    if (slot === undefined) {
      slot = { connection: undefined, connecting: undefined, failures: 0, retryAt: 0, closing: false };
      this.#slots.set(key, slot);
    }
    this.#byEndpoint.set(endpoint, slot);
    if (slot.connection !== undefined && !slot.connection.closing) return Promise.resolve(slot.connection);
    slot.connecting ??= this.#connect(key, slot, endpoint);
    return slot.connecting;
  }

  /** Closes every connection; pending calls fail with `unavailable`. Idempotent. */
  close(): void {
    this.#closed = true;
    for (const slot of this.#slots.values()) slot.connection?.close("the client is closing");
    this.#slots.clear();
    this.#byEndpoint = new WeakMap();
    this.#listeners.clear();
  }

  /** Connections currently open. */
  get size(): number {
    let n = 0;
    for (const slot of this.#slots.values()) if (slot.connection !== undefined) n++;
    return n;
  }

  async #connect(key: string, slot: Slot, endpoint: Endpoint): Promise<ClientConnection> {
    try {
      const link = await this.#options.transport.connect({ host: endpoint.host, port: endpoint.port });
      if (this.#closed) {
        link.destroy();
        throw new FarcallError("unavailable", "the client is closed", { sent: false });
      }
      const serializer = this.#options.serializersByName.get(endpoint.serializer) ?? this.#options.connection.serializer;
      const options = { ...this.#options.connection, serializer, load: this.loadOf(key) };
      const connection = new ClientConnection(link, options, key);
      slot.connection = connection;
      slot.failures = 0;
      slot.closing = false;
      connection.onClosing(() => {
        slot.closing = true;
        this.#notify();
      });
      connection.onClose(() => {
        if (slot.connection === connection) {
          slot.connection = undefined;
          if (slot.closing) {
            // A provider that announced shutdown stays out of rotation until the registry drops it.
            slot.closing = false;
            slot.retryAt = this.#clock.now() + this.#options.closedHoldMs;
          } else if (this.#slots.get(key) === slot) {
            this.#slots.delete(key);
          }
          this.#notify();
        }
      });
      this.#notify();
      return connection;
    } catch (error) {
      slot.failures++;
      const delay = Math.min(this.#options.backoffInitialMs * 1.6 ** (slot.failures - 1), this.#options.backoffMaxMs);
      slot.retryAt = this.#clock.now() + delay * (0.8 + 0.4 * this.#random());
      this.#notify();
      const reason = FarcallError.from(error, "unavailable");
      throw new FarcallError(reason.code, reason.message, { cause: reason.cause, sent: false, details: { address: key } });
    } finally {
      slot.connecting = undefined;
    }
  }

  /**
   * The load record of a provider address: its connections' load reports land here and the call
   * statistics of every service read it. Records of addresses silent for 10 minutes are dropped
   * once there are more than 4096.
   */
  loadOf(address: string): ProviderLoad {
    let load = this.#loads.get(address);
    if (load === undefined) {
      if (this.#loads.size >= maxLoadRecords) this.#pruneLoads();
      load = new ProviderLoad();
      this.#loads.set(address, load);
    }
    return load;
  }

  #pruneLoads(): void {
    const cutoff = Date.now() - 600_000;
    for (const [address, load] of this.#loads) if ((load.last?.at ?? 0) < cutoff && !this.#slots.has(address)) this.#loads.delete(address);
  }

  #notify(): void {
    for (const listener of this.#listeners) listener();
  }
}

/** `host:port` of an endpoint: the pool's key. */
export function addressOf(endpoint: Endpoint): string {
  return `${endpoint.host}:${endpoint.port}`;
}
