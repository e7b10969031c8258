import Fastify from "fastify";
import { Pool } from "undici";
import { addressPort } from "./raw.js";
import type { ClientHandle, ClientOptions, EchoCall, ServerHandle, System } from "../system.js";

/** Most connections one client opens; beyond that, calls are pipelined on them. */
const maxConnections = 16;

/** HTTP/1.1 with JSON bodies: fastify server, undici Pool client. */
export const httpSystem: System = {
  name: "http",

  async startServer(): Promise<ServerHandle> {
    const app = Fastify({ logger: false });
    app.post("/echo", async (request) => request.body);
    await app.listen({ host: "127.0.0.1", port: 0 });
    return {
      port: addressPort(app.server.address()),
      close: () => app.close(),
    };
  },

  async createClient({ port, concurrency }: ClientOptions): Promise<ClientHandle> {
    const connections = Math.min(concurrency, maxConnections);
    const pool = new Pool(`http://127.0.0.1:${String(port)}`, {
      connections,
      pipelining: Math.ceil(concurrency / connections),
    });
    const call: EchoCall = async (value) => {
      const response = await pool.request({
        path: "/echo",
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(value),
        // The echo is idempotent; without these two undici would not pipeline a POST.
        idempotent: true,
        blocking: false,
      });
      if (response.statusCode !== 200) {
        await response.body.dump();
        throw new Error(`http: status ${String(response.statusCode)}`);
      }
      return response.body.json();
    };
    return {
      callFor: () => call,
      close: () => pool.close(),
    };
  },
};
