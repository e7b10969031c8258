// Micro-benchmark of the consumer's call path without sockets or a second process: a fake link
// answers every request frame with a response frame carrying the same body, on the next turn of
// the event loop (as a socket read would). Measures client-process CPU per call at 256 in flight,
// median (and min) of 9 rounds of 200,000 calls. Run: node dist/src/micro-client.js
// FARCALL_BENCH_OPTIONS='{"timeoutMs":0}' passes extra application options (JSON),
// FARCALL_BENCH_CLIENT_OPTIONS the client's (JSON).
//
// FARCALL_BENCH_COMPARE='{"direct":{"app":{...},"client":{...}},"governed":{...}}' instead runs
// every named configuration in this one process, interleaved in 60 short rounds of 20,000 calls
// (the order rotating each round), and prints each one's CPU per call (25th percentile, median,
// min) and its ratio to the first configuration paired by round. Short interleaved rounds cancel
// most of the drift other work on a shared machine causes; sharing one process makes the code
// the configurations share polymorphic, as in an application with several clients.
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
type ClientOptions = Parameters<ReturnType<typeof createApplication>["client"]>[1];
interface Configuration {
  readonly app?: Record<string, unknown>;
  readonly client?: ClientOptions;
}
interface EchoStub {
  echo(value: unknown): Promise<unknown>;
}

function open(configuration: Configuration): { app: ReturnType<typeof createApplication>; echo: EchoStub } {
  const app = createApplication({ name: "micro", registry: "direct://127.0.0.1:1", env: {}, transport, ...(configuration.app ?? {}) });
  return { app, echo: app.client(Echo, configuration.client ?? {}) };
}

/** Runs `calls` calls, 256 in flight; returns the client's CPU µs per call. */
async function run(echo: EchoStub, calls: number): Promise<number> {
  let started = 0;
  const worker = async (): Promise<void> => {
    while (started++ < calls) await echo.echo(smallPayload);
  };
  const before = process.cpuUsage();
  await Promise.all(Array.from({ length: 256 }, worker));
  const used = process.cpuUsage(before);
  return (used.user + used.system) / calls;
}

const sorted = (values: readonly number[]): number[] => [...values].sort((a, b) => a - b);
const at = (values: readonly number[], q: number): number => values[Math.floor(q * (values.length - 1))] as number;
const compare = process.env["FARCALL_BENCH_COMPARE"];
if (compare === undefined) {
  const { app, echo } = open({
    app: JSON.parse(process.env["FARCALL_BENCH_OPTIONS"] ?? "{}") as Record<string, unknown>,
    client: JSON.parse(process.env["FARCALL_BENCH_CLIENT_OPTIONS"] ?? "{}") as ClientOptions,
  });
  await run(echo, 50_000); // warm-up
  const perCall: number[] = [];
  for (let round = 0; round < 9; round++) perCall.push(await run(echo, 200_000));
  const s = sorted(perCall);
  console.log(`client path, 256 in flight: ${at(s, 0.5).toFixed(2)} µs CPU per call (median of 9; min ${at(s, 0).toFixed(2)})`);
  await app.close();
} else {
  const entries = Object.entries(JSON.parse(compare) as Record<string, Configuration>);
  const opened = entries.map(([name, configuration]) => ({ name, ...open(configuration) }));
  for (const { echo } of opened) await run(echo, 100_000); // warm-up
  const rounds = 60;
  const perCall = opened.map((): number[] => []);
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < opened.length; i++) {
      const k = (i + round) % opened.length;
      (perCall[k] as number[]).push(await run((opened[k] as (typeof opened)[number]).echo, 20_000));
    }
  }
  const first = perCall[0] as number[];
  console.log(`client path, 256 in flight, ${rounds} interleaved rounds of 20,000 calls, µs CPU per call:`);
  opened.forEach(({ name }, i) => {
    const mine = perCall[i] as number[];
    const s = sorted(mine);
    const paired = sorted(mine.map((v, r) => v / (first[r] as number)));
    console.log(`  ${name}: p25 ${at(s, 0.25).toFixed(2)}, median ${at(s, 0.5).toFixed(2)}, min ${at(s, 0).toFixed(2)}; paired against ${entries[0]?.[0] ?? ""} ${((at(paired, 0.5) - 1) * 100).toFixed(1)} %`);
  });
  for (const { app } of opened) await app.close();
}
