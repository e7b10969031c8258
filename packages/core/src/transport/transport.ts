/** A host and port. */
export interface Address {
  readonly host: string;
  readonly port: number;
}

/**
 * One bidirectional byte stream (a TCP socket, or an in-memory pipe in tests). Owned by exactly one
 * `Connection`, which calls `destroy()` when done.
 */
export interface Link {
  /** Queues bytes; returns false when the kernel buffer is full (backpressure). */
  write(chunk: Uint8Array): boolean;
  /** Half-closes after pending writes. */
  end(): void;
  /** Closes at once; idempotent. */
  destroy(): void;
  onData(listener: (chunk: Buffer) => void): void;
  /** Called once, when the link is closed for any reason. */
  onClose(listener: (error: Error | undefined) => void): void;
  onDrain(listener: () => void): void;
  /** Bytes queued for writing that the kernel has not taken yet (`socket.writableLength`). */
  readonly bufferedBytes: number;
  /** Stops delivering data (backpressure towards the peer); idempotent. */
  pause(): void;
  /** Resumes delivering data; idempotent. */
  resume(): void;
  readonly remote: string;
}

/**
 * A bound listener. `close()` stops accepting new links at once and resolves once every accepted
 * link has closed; it never closes accepted links itself (their owners do). Idempotent.
 */
export interface Listener {
  readonly address: Address;
  close(): Promise<void>;
}

/** Creates links. TCP in production, memory in tests. */
export interface Transport {
  connect(address: Address, signal?: AbortSignal): Promise<Link>;
  listen(address: Address, onLink: (link: Link) => void): Promise<Listener>;
}
