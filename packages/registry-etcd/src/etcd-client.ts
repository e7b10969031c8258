import { debuglog } from "node:util";
import { castGrpcError, Etcd3, type IOptions, isRecoverableError } from "etcd3";

const debug = debuglog("farcall:registry");

/** Username and password of etcd's own authentication (`etcdctl user add`). */
export interface EtcdAuth {
  readonly user: string;
  readonly password: string;
}

/** Options of {@link createEtcdClient}; durations in milliseconds. */
export interface EtcdClientOptions {
  /** `host:port` of each cluster member. */
  readonly hosts: readonly string[];
  /** Deadline of every unary request (streams have none). */
  readonly requestTimeoutMs: number;
  readonly auth: EtcdAuth | undefined;
}

type FaultHandling = NonNullable<IOptions["faultHandling"]>;
type Policy = NonNullable<FaultHandling["global"]>;
type Backoff = NonNullable<FaultHandling["watchBackoff"]>;

/**
 * The host policy: every call goes through. etcd3's default is a circuit breaker that, after
 * three failures in a row, fails every call to that host for 5 s: after an outage it would keep
 * a provider from renewing its lease or re-registering for up to 5 s after etcd is back. Retries
 * are this package's own (bounded backoff on one timer per owner).
 */
const passThrough = {
  execute: (fn: (context: { signal: AbortSignal }) => unknown) => Promise.resolve().then(() => fn({ signal: new AbortController().signal })),
} as unknown as Policy;

/**
 * The global policy: a call that fails with a transient error (unavailable, deadline, ...) is
 * tried again at once, up to once per host, so that with several members one that is down costs
 * one failed attempt, not a failed request.
 */
function failover(attempts: number): Policy {
  return {
    execute: async (fn: (context: { signal: AbortSignal }) => unknown) => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await fn({ signal: new AbortController().signal });
        } catch (error) {
          if (attempt >= attempts || !(error instanceof Error) || !isRecoverableError(error)) throw error;
        }
      }
    },
  } as unknown as Policy;
}

/**
 * Delay before etcd3 re-opens a broken watch stream: 100 ms doubling to 1 s (etcd3's default
 * goes up to 30 s, far too long for a registry whose leases last seconds). Reset by etcd3 when
 * a watch is created.
 */
class WatchBackoff {
  constructor(readonly duration: number) {}
  next(): WatchBackoff {
    return new WatchBackoff(Math.min(this.duration * 2, 1000));
  }
}

/** The parts of etcd3's private connection pool (`client.pool`) the repairs below use. */
interface PoolInternals {
  readonly authenticator?: { getCredentialsFromHost?: unknown };
  readonly hosts?: HostInternals[];
}

interface HostInternals {
  readonly host: string;
  closed: boolean;
  resetAllServices(): void;
  close(): void;
  getServiceClient(name: "Auth"): AuthServiceClient;
}

interface AuthServiceClient {
  authenticate(request: { name: string; password: string }, options: object, callback: (error: Error | null, response?: { token: string }) => void): void;
}

/**
 * Repairs etcd3 1.1.2 (pinned), whose `Host` closes all its gRPC channels after every failed
 * call or stream, so the next call opens new ones. With @grpc/grpc-js 1.14 that leaks: a channel
 * closed while its connection is in backoff (TRANSIENT_FAILURE, which is every failure while
 * etcd is down) leaves its subchannel reconnecting on its own, and once etcd is back that
 * connection is established and never closed (measured: 12 sockets left after a 1 s outage).
 * Here a host keeps its channels for the client's whole life: gRPC reconnects them itself, 100
 * ms doubling to 1 s (the channel options in {@link createEtcdClient}); they are closed once, by
 * `client.close()`.
 */
function keepChannels(client: Etcd3): void {
  for (const host of (client as unknown as { pool?: PoolInternals }).pool?.hosts ?? []) {
    if (typeof host.resetAllServices !== "function") continue;
    const resetAllServices = host.resetAllServices;
    host.resetAllServices = () => undefined;
    host.close = () => {
      resetAllServices.call(host);
      host.closed = true;
    };
  }
}

/**
 * Repairs etcd3 1.1.2 (pinned): each authentication creates a gRPC client of its own and never
 * closes it, so every (re-)authentication would leave a channel and its socket open for good.
 * This one authenticates through the pool's own `Auth` client of that host, which the pool
 * closes with the client.
 */
function repairAuthentication(client: Etcd3): void {
  const pool = (client as unknown as { pool?: PoolInternals }).pool;
  const authenticator = pool?.authenticator;
  const hosts = pool?.hosts;
  if (authenticator === undefined || hosts === undefined || typeof authenticator.getCredentialsFromHost !== "function") return;
  authenticator.getCredentialsFromHost = (address: string, name: string, password: string, callOptions: object | undefined): Promise<string> =>
    new Promise<string>((resolve, reject) => {
      const host = hosts.find((h) => h.host === address);
      if (host === undefined) return reject(new Error(`no etcd host ${address}`));
      host.getServiceClient("Auth").authenticate({ name, password }, callOptions ?? {}, (error, response) => {
        if (error !== null) reject(castGrpcError(error));
        else if (response === undefined) reject(new Error("etcd: empty authentication response"));
        else resolve(response.token);
      });
    });
}

/**
 * An etcd3 client for one registry. No socket is opened before the first request. Unary
 * requests carry a deadline of `requestTimeoutMs`; a lost connection is re-established by gRPC
 * (100 ms doubling to 1 s, so within about a second of etcd's return); gRPC keepalive pings
 * every 10 s on a connection with calls in flight (etcd allows one per 5 s) drop a connection to
 * a server that stopped answering within 15 s. `client.close()` closes every channel.
 */
export function createEtcdClient(options: EtcdClientOptions): Etcd3 {
  const { hosts, requestTimeoutMs, auth } = options;
  const client = new Etcd3({
    hosts: [...hosts],
    ...(auth === undefined ? {} : { auth: { username: auth.user, password: auth.password } }),
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + requestTimeoutMs }),
    grpcOptions: {
      "grpc.keepalive_time_ms": 10_000,
      "grpc.keepalive_timeout_ms": 5000,
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": 1000,
    },
    faultHandling: {
      host: () => passThrough,
      global: failover(hosts.length),
      watchBackoff: new WatchBackoff(50) as unknown as Backoff,
    },
  });
  keepChannels(client);
  if (auth !== undefined) repairAuthentication(client);
  debug("etcd: client for %s", hosts.join(","));
  return client;
}
