import { debuglog } from "node:util";
import type { Etcd3, Lease } from "etcd3";

const debug = debuglog("farcall:registry");

/** The part of a gRPC duplex stream the keepalive repair uses. */
interface KeepaliveStream {
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  removeAllListeners(event: string): unknown;
  cancel(): void;
}

/**
 * Repairs etcd3 1.1.2 (pinned): closing a `Lease` ends its keepalive stream gently, and a
 * keepalive answer still in flight then re-arms etcd3's TTL-long "no answer" timer, a ref'd
 * timer that keeps the process alive for up to a TTL after `close()`. This wraps the lease's own
 * gRPC client (its private `client`) to keep the streams it opens; the returned function cuts
 * them, so no late answer reaches etcd3.
 */
function keepaliveStreams(lease: Lease): () => void {
  const rpc = (lease as unknown as { client?: { leaseKeepAlive?: (...args: unknown[]) => Promise<KeepaliveStream> } }).client;
  const streams = new Set<KeepaliveStream>();
  const open = rpc?.leaseKeepAlive;
  if (rpc !== undefined && typeof open === "function") {
    rpc.leaseKeepAlive = async (...args: unknown[]) => {
      const stream = await open.apply(rpc, args);
      streams.add(stream);
      stream.on("close", () => streams.delete(stream));
      return stream;
    };
  }
  return () => {
    for (const stream of streams) {
      stream.removeAllListeners("data");
      stream.on("error", () => undefined);
      stream.cancel();
    }
    streams.clear();
  };
}

/** Options of {@link EtcdLease}. */
export interface EtcdLeaseOptions {
  readonly client: Etcd3;
  readonly ttlSeconds: number;
  /** Deadline of the revoke in {@link EtcdLease.revoke}, in milliseconds. */
  readonly revokeTimeoutMs: number;
  /**
   * Called when a granted lease is lost (etcd3's `lost`: etcd said it expired, or no keepalive
   * got through for 2 × TTL): every key put under it is gone or about to go.
   */
  readonly onLost: () => void;
}

/**
 * The one lease of a registry instance, granted on first use and kept alive by etcd3's
 * keepalive stream (a keepalive every TTL/3). When it is lost, it is forgotten and the next
 * {@link EtcdLease.current} grants a new one; the owner then puts its keys again. At most one
 * grant is in flight; a failed grant is not retried here (the owner retries on its own timer).
 */
export class EtcdLease {
  readonly #options: EtcdLeaseOptions;
  #lease: Lease | undefined;
  /** Cuts the current lease's keepalive streams. */
  #cutStreams: () => void = () => undefined;
  /** The granted lease's id (etcd's int64 as a decimal string); undefined until granted. */
  #id: string | undefined;
  #granting: Promise<string> | undefined;
  #closed = false;

  constructor(options: EtcdLeaseOptions) {
    this.#options = options;
  }

  /** The current lease's id, if one is granted and not known to be lost. */
  get id(): string | undefined {
    return this.#id;
  }

  /**
   * The current lease's id, granting a new lease when there is none.
   * @throws etcd3's error when the grant fails (etcd unreachable, refused, or closed meanwhile).
   */
  current(): Promise<string> {
    if (this.#id !== undefined) return Promise.resolve(this.#id);
    if (this.#closed) return Promise.reject(new Error("lease closed"));
    return (this.#granting ??= this.#grant());
  }

  /** etcd reported the lease `id` unknown (a put refused with "requested lease not found"). */
  invalidate(id: string): void {
    if (this.#id !== id) return;
    debug("etcd: lease %s not found; a new one will be granted", id);
    this.#drop();
  }

  /**
   * Stops the keepalives and revokes the lease, so etcd deletes its keys at once (best effort:
   * when etcd cannot be reached within `revokeTimeoutMs`, the keys go when the TTL runs out).
   * No lease is granted after this. Idempotent.
   */
  async revoke(): Promise<void> {
    this.#closed = true;
    const granting = this.#granting;
    if (granting !== undefined) await granting.catch(() => undefined);
    const lease = this.#lease;
    const granted = this.#id !== undefined;
    const cutStreams = this.#cutStreams;
    this.#lease = undefined;
    this.#id = undefined;
    if (lease === undefined) return;
    // Cut first: revoke() stops the keepalives, then waits for etcd, and an answer arriving then
    // would re-arm etcd3's timer.
    cutStreams();
    if (!granted) {
      lease.release();
      return;
    }
    try {
      await lease.revoke({ deadline: Date.now() + this.#options.revokeTimeoutMs });
    } catch (error) {
      debug("etcd: revoking the lease failed (its keys go when its TTL runs out): %o", error);
    }
  }

  async #grant(): Promise<string> {
    const lease = this.#options.client.lease(this.#options.ttlSeconds);
    this.#lease = lease;
    this.#cutStreams = keepaliveStreams(lease);
    lease.on("lost", (error) => this.#onLost(lease, error));
    // Typed as a keepalive answer, but etcd3 passes the error (every ~100 ms while etcd is down).
    lease.on("keepaliveFailed", (error: unknown) => debug("etcd: lease keepalive failed: %s", error instanceof Error ? error.message : String(error)));
    try {
      const id = await lease.grant();
      if (this.#lease !== lease) throw new Error("lease closed while being granted");
      this.#id = id;
      debug("etcd: lease %s granted, TTL %d s", id, this.#options.ttlSeconds);
      return id;
    } catch (error) {
      if (this.#lease === lease) this.#lease = undefined;
      lease.release();
      this.#cutStreams();
      throw error;
    } finally {
      this.#granting = undefined;
    }
  }

  #onLost(lease: Lease, error: Error): void {
    // A failed grant also emits `lost`: that one is the grant's caller's business.
    if (lease !== this.#lease || this.#id === undefined) return;
    debug("etcd: lease %s lost: %s", this.#id, error.message);
    this.#drop();
    this.#options.onLost();
  }

  #drop(): void {
    const lease = this.#lease;
    this.#lease = undefined;
    this.#id = undefined;
    lease?.release();
    this.#cutStreams();
  }
}
