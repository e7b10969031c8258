import { createApplication, defineService, directRegistry } from "@farcall/core";
import type { Payload } from "../payloads.js";
import type { ClientHandle, ClientOptions, EchoCall, ServerHandle, System } from "../system.js";

/**
 * farcall through its full client path (stub, interceptors, load balancer, connection).
 * `systems/index.ts` imports this module dynamically: when `@farcall/core` fails to load,
 * the run goes on without farcall and notes why.
 */

interface EchoApi {
  echo(value: Payload): Payload;
}

const Echo = defineService<EchoApi>("bench.Echo", { version: "1.0.0", methods: { echo: { idempotent: true } } });

/**
 * Client options of the three farcall rows: `farcall` (the defaults: random balancer, failover
 * within the retry budget, outlier ejection, tag routing), `farcall-direct` (every governance
 * layer that can be turned off, off: failfast, no budget, no ejection; what is left is stub,
 * directory, one balancer pick and the connection) and `farcall-governed` (everything on at once:
 * the adaptive balancer with its statistics, a circuit breaker per provider and method, outlier
 * ejection, the retry budget, a condition route, a consumer-side rate limit and concurrency limit
 * that never refuse at these rates, the adaptive throttle).
 */
const profiles = {
  farcall: {},
  "farcall-direct": { app: { outlierDetection: false, retryBudget: false, faultTolerance: "failfast" }, client: {} },
  "farcall-governed": {
    app: {
      loadBalancer: "adaptive",
      circuitBreaker: { strategy: "errorRatio", threshold: 0.5 },
      routes: ["method = echo => host = 127.0.0.*"],
      adaptiveThrottle: true,
    },
    client: { rateLimit: { kind: "tokenBucket", ratePerSecond: 10_000_000 }, maxConcurrent: 100_000 },
  },
} as const;

type Profile = keyof typeof profiles;

function farcallVariant(name: Profile): System {
  return { ...farcallSystem, name, createClient: (options) => createClient(name, options) };
}

async function createClient(profile: Profile, { port }: ClientOptions): Promise<ClientHandle> {
  const chosen = profiles[profile] as { app?: Record<string, unknown>; client?: Record<string, unknown> };
  const app = createApplication({
    name: "bench-client",
    registry: directRegistry({ endpoints: [{ host: "127.0.0.1", port }] }),
    ...(chosen.app ?? {}),
  } as Parameters<typeof createApplication>[0]);
  const echo = app.client(Echo, (chosen.client ?? {}) as Parameters<typeof app.client>[1]);
  const call: EchoCall = (value) => echo.echo(value);
  return { callFor: () => call, close: () => app.close() };
}

export const farcallSystem: System = {
  name: "farcall",

  async startServer(): Promise<ServerHandle> {
    const app = createApplication({ name: "bench-server", registry: "memory", host: "127.0.0.1", port: 0 });
    app.provide(Echo, { echo: (_ctx, value) => value });
    await app.start();
    const address = app.address;
    if (address === undefined) throw new Error("farcall: the application has no address after start()");
    return { port: address.port, close: () => app.close() };
  },

  createClient: (options: ClientOptions) => createClient("farcall", options),
};

/** The direct connection path: governance off. */
export const farcallDirectSystem: System = farcallVariant("farcall-direct");
/** The full governed path: every consumer-side governance layer on. */
export const farcallGovernedSystem: System = farcallVariant("farcall-governed");
