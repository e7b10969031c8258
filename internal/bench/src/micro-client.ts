// Micro-benchmark of the consumer's call path without sockets or a second process: a fake link
// answers every request frame with a response frame carrying the same body, on the next turn of
// the event loop (as a socket read would). Measures client-process CPU per call at 256 in flight,
// median (and min) of 9 rounds of 200,000 calls. Run: node dist/src/micro-client.js
// FARCALL_BENCH_OPTIONS='{"timeoutMs":0}' passes extra application options (JSON),
// FARCALL_BENCH_CLIENT_OPTIONS the client's (JSON).
import { createApplication, defineService } from "@farcall/core";
import { FrameDecoder, FrameFlags, FrameWriter, type Link, type Transport } from "@farcall/core/extension";
import { smallPayload } from "./payloads.js";

class EchoLink implements Link {
  readonly remote = "echo:1";
  readonly bufferedBytes = 0;
  #onData: ((chunk: Buffer) => void) | undefined;
  readonly #decoder = new FrameDecoder();
  readonly #writer = new FrameWriter();
  #scheduled = false;
  write(chunk: Uint8Array): boolean {
    this.#decoder.push(Buffer.from(chunk), (frame) => {
      if (frame.flags & FrameFlags.heartbeat) return;
      this.#writer.writeResponse(frame.requestId, FrameFlags.response, frame.serializerId, 0, undefined, frame.source.subarray(frame.bodyStart, frame.bodyEnd));
    });
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        this.#onData?.(Buffer.from(this.#writer.take()));
      });
    }
    return true;
  }
  end(): void {}
  destroy(): void {}
  onData(listener: (chunk: Buffer) => void): void {
    this.#onData = listener;
  }
  onClose(): void {}
  onDrain(): void {}
  pause(): void {}
  resume(): void {}
}

const transport: Transport = {
  connect: () => Promise.resolve(new EchoLink()),
  listen: () => Promise.reject(new Error("the micro-benchmark has no server")),
};

interface EchoApi {
  echo(value: unknown): unknown;
}
const Echo = defineService<EchoApi>("bench.Echo", { version: "1.0.0", methods: { echo: { idempotent: true } } });
const extra = JSON.parse(process.env["FARCALL_BENCH_OPTIONS"] ?? "{}") as Record<string, unknown>;
const app = createApplication({ name: "micro", registry: "direct://127.0.0.1:1", env: {}, transport, ...extra });
const echo = app.client(Echo, JSON.parse(process.env["FARCALL_BENCH_CLIENT_OPTIONS"] ?? "{}") as Parameters<typeof app.client>[1]);

async function run(calls: number): Promise<void> {
  let started = 0;
  const worker = async (): Promise<void> => {
    while (started++ < calls) await echo.echo(smallPayload);
  };
  await Promise.all(Array.from({ length: 256 }, worker));
}

await run(50_000); // warm-up
const perCall: number[] = [];
for (let round = 0; round < 9; round++) {
  const before = process.cpuUsage();
  await run(200_000);
  const used = process.cpuUsage(before);
  perCall.push((used.user + used.system) / 200_000);
}
perCall.sort((a, b) => a - b);
console.log(`client path, 256 in flight: ${perCall[4]?.toFixed(2)} µs CPU per call (median of 9; min ${perCall[0]?.toFixed(2)})`);
await app.close();
