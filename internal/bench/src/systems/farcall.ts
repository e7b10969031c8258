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

  async createClient({ port }: ClientOptions): Promise<ClientHandle> {
    const app = createApplication({
      name: "bench-client",
      registry: directRegistry({ endpoints: [{ host: "127.0.0.1", port }] }),
    });
    const echo = app.client(Echo);
    const call: EchoCall = (value) => echo.echo(value);
    return { callFor: () => call, close: () => app.close() };
  },
};
