import { createConnection, createServer, type Server, type Socket } from "node:net";
import { once } from "node:events";
import type { ClientHandle, ClientOptions, EchoCall, ServerHandle, System } from "../system.js";
import { FrameReader, FrameWriter } from "./raw-framing.js";

/**
 * Raw length-prefixed TCP echo with a msgpackr body and per-tick write batching:
 * the practical ceiling for an RPC in Node on this machine.
 */
export const rawSystem: System = {
  name: "raw",

  async startServer(): Promise<ServerHandle> {
    const sockets = new Set<Socket>();
    const server = createServer({ noDelay: true }, (socket) => {
      sockets.add(socket);
      const writer = new FrameWriter(socket);
      // Decode and re-encode, as any real server would: the echo is not a byte mirror.
      const reader = new FrameReader((requestId, value) => writer.write(requestId, value));
      socket.on("data", (chunk: Buffer) => reader.push(chunk));
      socket.on("error", () => socket.destroy());
      socket.on("close", () => sockets.delete(socket));
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    return {
      port: addressPort(server.address()),
      close: async () => {
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
  },

  async createClient({ port }: ClientOptions): Promise<ClientHandle> {
    const socket = createConnection({ host: "127.0.0.1", port, noDelay: true });
    await once(socket, "connect");
    const pending = new Map<number, PendingCall>();
    let nextRequestId = 0;
    const writer = new FrameWriter(socket);
    const reader = new FrameReader((requestId, value) => {
      const call = pending.get(requestId);
      if (call === undefined) return;
      pending.delete(requestId);
      call.resolve(value);
    });
    socket.on("data", (chunk: Buffer) => reader.push(chunk));
    const failAll = (error: Error): void => {
      for (const call of pending.values()) call.reject(error);
      pending.clear();
    };
    socket.on("error", failAll);
    socket.on("close", () => failAll(new Error("raw: connection closed")));

    const call: EchoCall = (value) =>
      new Promise((resolve, reject) => {
        const requestId = nextRequestId;
        nextRequestId = (nextRequestId + 1) >>> 0;
        pending.set(requestId, { resolve, reject });
        writer.write(requestId, value);
      });
    return {
      callFor: () => call,
      close: async () => {
        socket.destroy();
        await Promise.resolve();
      },
    };
  },
};

interface PendingCall {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

export function addressPort(address: ReturnType<Server["address"]>): number {
  if (address === null || typeof address === "string") throw new Error("server is not listening on TCP");
  return address.port;
}
