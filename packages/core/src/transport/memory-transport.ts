import { FarcallError } from "../errors/farcall-error.js";
import type { Address, Link, Listener, Transport } from "./transport.js";

class MemoryLink implements Link {
  peer: MemoryLink | undefined;
  #data: ((chunk: Buffer) => void) | undefined;
  #close: ((error: Error | undefined) => void) | undefined;
  #closed = false;
  constructor(readonly remote: string) {}
  write(chunk: Uint8Array): boolean {
    if (this.#closed) return false;
    const copy = Buffer.from(chunk);
    const peer = this.peer;
    setImmediate(() => peer?.deliver(copy));
    return true;
  }
  end(): void {
    setImmediate(() => this.destroy());
  }
  destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    const peer = this.peer;
    setImmediate(() => {
      this.#close?.(undefined);
      peer?.destroy();
    });
  }
  onData(listener: (chunk: Buffer) => void): void {
    this.#data = listener;
  }
  onClose(listener: (error: Error | undefined) => void): void {
    this.#close = listener;
  }
  onDrain(): void {}
  /** Memory links deliver every write on the next turn; nothing stays queued. */
  readonly bufferedBytes = 0;
  #paused: Buffer[] | undefined;
  pause(): void {
    this.#paused ??= [];
  }
  resume(): void {
    const held = this.#paused;
    this.#paused = undefined;
    for (const chunk of held ?? []) this.deliver(chunk);
  }
  /** Called by the peer's `write`. */
  deliver(chunk: Buffer): void {
    if (this.#paused !== undefined) {
      this.#paused.push(chunk);
      return;
    }
    if (!this.#closed) this.#data?.(chunk);
  }
}

/**
 * An in-process network for tests: links are pairs of in-memory pipes, delivery is asynchronous
 * (one `setImmediate` per write) so the code under test sees the same ordering hazards as with
 * sockets. Each call returns an independent network; nothing is global.
 */
export function memoryTransport(): Transport {
  const listeners = new Map<string, (link: Link) => void>();
  let nextPort = 40000;
  let nextClientPort = 50000;
  return {
    connect(address: Address): Promise<Link> {
      const onLink = listeners.get(`${address.host}:${address.port}`);
      if (!onLink) {
        return Promise.reject(new FarcallError("unavailable", `connect to ${address.host}:${address.port}: refused`, { sent: false }));
      }
      const client = new MemoryLink(`${address.host}:${address.port}`);
      const server = new MemoryLink(`memory:${nextClientPort++}`);
      client.peer = server;
      server.peer = client;
      onLink(server);
      return Promise.resolve(client);
    },
    listen(address: Address, onLink: (link: Link) => void): Promise<Listener> {
      const port = address.port === 0 ? nextPort++ : address.port;
      const key = `${address.host}:${port}`;
      if (listeners.has(key)) return Promise.reject(new FarcallError("unavailable", `listen on ${key}: address in use`));
      listeners.set(key, onLink);
      return Promise.resolve({
        address: { host: address.host, port },
        close: () => {
          listeners.delete(key);
          return Promise.resolve();
        },
      });
    },
  };
}
