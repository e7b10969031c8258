import net from "node:net";
import { FarcallError } from "../errors/farcall-error.js";
import type { Address, Link, Listener, Transport } from "./transport.js";

/** Options of {@link tcpTransport}. */
export interface TcpTransportOptions {
  /** Connect timeout in milliseconds. Default 3000. */
  readonly connectTimeoutMs?: number;
  /** TCP keep-alive initial delay in milliseconds (0 disables). Default 30000. */
  readonly keepAliveMs?: number;
  /** Listen backlog. Default 511. */
  readonly backlog?: number;
}

class SocketLink implements Link {
  readonly remote: string;
  constructor(private readonly socket: net.Socket) {
    this.remote = `${socket.remoteAddress ?? "?"}:${socket.remotePort ?? 0}`;
  }
  write(chunk: Uint8Array): boolean {
    return this.socket.write(chunk);
  }
  end(): void {
    this.socket.end();
  }
  destroy(): void {
    this.socket.destroy();
  }
  onData(listener: (chunk: Buffer) => void): void {
    this.socket.on("data", listener);
  }
  onClose(listener: (error: Error | undefined) => void): void {
    let error: Error | undefined;
    this.socket.on("error", (e) => {
      error = e;
    });
    this.socket.once("close", () => listener(error));
  }
  onDrain(listener: () => void): void {
    this.socket.on("drain", listener);
  }
  get bufferedBytes(): number {
    return this.socket.writableLength;
  }
  pause(): void {
    this.socket.pause();
  }
  resume(): void {
    this.socket.resume();
  }
}

function tune(socket: net.Socket, keepAliveMs: number): void {
  socket.setNoDelay(true);
  if (keepAliveMs > 0) socket.setKeepAlive(true, keepAliveMs);
}

/**
 * Plain TCP: `TCP_NODELAY` on (frames are batched per tick by the connection), keep-alive on.
 * Connect failures reject with `unavailable` and `sent: false`.
 */
export function tcpTransport(options: TcpTransportOptions = {}): Transport {
  const connectTimeoutMs = options.connectTimeoutMs ?? 3000;
  const keepAliveMs = options.keepAliveMs ?? 30_000;
  const backlog = options.backlog ?? 511;
  return {
    connect(address: Address, signal?: AbortSignal): Promise<Link> {
      return new Promise<Link>((resolve, reject) => {
        const socket = net.connect({ host: address.host, port: address.port });
        const fail = (error: Error, code: "unavailable" | "canceled" = "unavailable"): void => {
          cleanup();
          socket.destroy();
          reject(new FarcallError(code, `connect to ${address.host}:${address.port}: ${error.message}`, { cause: error, sent: false }));
        };
        const onError = (error: Error): void => fail(error);
        const onAbort = (): void => fail(new Error("aborted"), "canceled");
        const timer = setTimeout(() => fail(new Error(`timed out after ${connectTimeoutMs} ms`)), connectTimeoutMs);
        const cleanup = (): void => {
          clearTimeout(timer);
          socket.off("error", onError);
          signal?.removeEventListener("abort", onAbort);
        };
        socket.once("error", onError);
        signal?.addEventListener("abort", onAbort, { once: true });
        socket.once("connect", () => {
          cleanup();
          tune(socket, keepAliveMs);
          resolve(new SocketLink(socket));
        });
      });
    },
    listen(address: Address, onLink: (link: Link) => void): Promise<Listener> {
      return new Promise<Listener>((resolve, reject) => {
        const server = net.createServer((socket) => {
          tune(socket, keepAliveMs);
          onLink(new SocketLink(socket));
        });
        server.once("error", (error) =>
          reject(new FarcallError("unavailable", `listen on ${address.host}:${address.port}: ${error.message}`, { cause: error })),
        );
        server.listen({ host: address.host, port: address.port, backlog }, () => {
          const bound = server.address() as net.AddressInfo;
          let closed: Promise<void> | undefined;
          resolve({
            address: { host: address.host, port: bound.port },
            close: () => {
              // Stops accepting at once; resolves when the last accepted socket has closed too.
              // Accepted sockets belong to their connections, which the server drains and closes.
              closed ??= new Promise<void>((done) => server.close(() => done()));
              return closed;
            },
          });
        });
      });
    },
  };
}
