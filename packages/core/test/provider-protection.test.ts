// Provider-side protection through a real server and a real consumer connection over TCP on
// 127.0.0.1:0 (a listening socket keeps the process alive while calls wait in the server's unref'd
// timing wheel, as in production): per-method concurrency limits and rate limiters (fakes of the governance
// interfaces), server-wide load shedding. Every refusal is checked to happen on the header alone:
// the server's serializer counts the bodies it decodes.
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import type { CallContext } from "../src/call/call-context.js";
import type { Reply } from "../src/call/call.js";
import { defineService } from "../src/contract/define-service.js";
import { FarcallError } from "../src/errors/farcall-error.js";
import type { ConcurrencyLimiter, RateLimiter } from "../src/governance/limiter.js";
import { ClientConnection } from "../src/protocol/binary/client-connection.js";
import { defaultMaxFrameBytes } from "../src/protocol/binary/frame.js";
import { encodeRoute } from "../src/protocol/binary/frame-encoder.js";
import { msgpackSerializer } from "../src/serialization/msgpack-serializer.js";
import type { Serializer } from "../src/serialization/serializer.js";
import { type ServerOptions, Server } from "../src/server/server.js";
import { type MethodGuard, ServiceTable } from "../src/server/service-table.js";
import { TimingWheel } from "../src/timing/timing-wheel.js";
import { tcpTransport } from "../src/transport/tcp-transport.js";
import { trackResources } from "./resources.js";

interface Guarded {
  hold(tag: string): Promise<string>;
  plain(tag: string): Promise<string>;
  limited(n: number): number;
  paced(n: number): number;
  both(): string;
  fire(event: string): void;
}

const Guarded = defineService<Guarded>("test.Guarded", {
  version: "1.0.0",
  methods: { hold: {}, plain: {}, limited: {}, paced: {}, both: {}, fire: { oneway: true } },
});

const msgpack = msgpackSerializer();

/** A concurrency limit that counts what it is asked. */
class FakeConcurrency implements ConcurrencyLimiter {
  running = 0;
  acquired = 0;
  released = 0;
  constructor(readonly limit: number) {}
  tryAcquire(): boolean {
    if (this.running >= this.limit) return false;
    this.running++;
    this.acquired++;
    return true;
  }
  release(): void {
    assert.ok(this.running > 0, "released more often than acquired");
    this.running--;
    this.released++;
  }
}

/** A rate limiter answering from a script (-1 once the script runs out), recording each `now`. */
class FakeRateLimiter implements RateLimiter {
  readonly seen: number[] = [];
  constructor(
    readonly kind: RateLimiter["kind"],
    readonly answers: number[],
  ) {}
  tryAcquire(now: number): number {
    this.seen.push(now);
    return this.answers.shift() ?? -1;
  }
}

/** Implementations whose calls the test settles by hand (`hold`, `plain`), and run counters. */
function implementation() {
  const gates: Array<{ resolve: (value: string) => void; reject: (error: Error) => void }> = [];
  const runs = { hold: 0, plain: 0, limited: 0, paced: 0, both: 0, fire: 0 };
  const ranAt: number[] = [];
  const gate = (): Promise<string> => new Promise((resolve, reject) => gates.push({ resolve, reject }));
  const impl = {
    hold: (_ctx: CallContext) => (runs.hold++, gate()),
    plain: (_ctx: CallContext) => (runs.plain++, gate()),
    limited: (_ctx: CallContext, n: number) => (runs.limited++, n),
    paced: (_ctx: CallContext, n: number) => (runs.paced++, ranAt.push(Date.now()), n),
    both: (_ctx: CallContext) => (runs.both++, "ran"),
    fire: (_ctx: CallContext) => void runs.fire++,
  };
  return { impl, gates, runs, ranAt };
}

/** Waits, one event-loop turn at a time (bounded), until `done()` holds. */
async function until(done: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 5000; i++) {
    if (done()) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.fail(`never happened: ${what}`);
}

/** Asserts the call was refused `resource_exhausted` with these details, as the consumer sees them. */
async function refused(reply: Promise<Reply>, reason: string, retryAfterMs: number): Promise<void> {
  await assert.rejects(reply, (error: unknown) => {
    assert.ok(error instanceof FarcallError);
    assert.equal(error.code, "resource_exhausted", error.message);
    assert.equal(error.details["reason"], reason);
    assert.equal(error.details["retryAfterMs"], retryAfterMs);
    return true;
  });
}

async function world(guards: Partial<Record<keyof Guarded, MethodGuard>> = {}, overrides: Partial<ServerOptions> = {}) {
  const transport = tcpTransport();
  const { impl, gates, runs, ranAt } = implementation();
  const table = new ServiceTable();
  table.add(Guarded, impl as never, (method) => guards[method as keyof Guarded]);
  let decodes = 0;
  const counting: Serializer = {
    id: msgpack.id,
    name: msgpack.name,
    encode: (value) => msgpack.encode(value),
    decode: (bytes, start, end) => (decodes++, msgpack.decode(bytes, start, end)),
  };
  const server = new Server({
    transport,
    table,
    serializers: new Map([[counting.id, counting]]),
    fallbackSerializer: counting,
    maxFrameBytes: defaultMaxFrameBytes,
    idleTimeoutMs: 0,
    includeStack: false,
    ...overrides,
  });
  const address = await server.listen({ host: "127.0.0.1", port: 0 });
  // The consumer's wheel never ticks: a deadline_exceeded can only come from the provider.
  const client = new ClientConnection(await transport.connect(address), {
    serializer: msgpack,
    serializers: new Map([[msgpack.id, msgpack]]),
    maxFrameBytes: defaultMaxFrameBytes,
    heartbeatIntervalMs: 0,
    maxPendingCalls: 100,
    maxBufferedBytes: 1024 * 1024,
    wheel: new TimingWheel({ autoTick: false }),
  });
  const call = (method: keyof Guarded, args: unknown[], timeoutMs = 0): Promise<Reply> => {
    const definition = Guarded.methods.get(method);
    assert.ok(definition);
    const ref = { service: Guarded.name, version: Guarded.version, group: "", method, idempotent: false, oneway: definition.oneway };
    const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : Infinity;
    return client.invoke({ ref, args, metadata: {}, deadline, signal: undefined, attempt: 0, tried: [] }, encodeRoute(Guarded.name, Guarded.version, "", method));
  };
  const close = async (): Promise<void> => {
    client.close();
    await server.close(1000);
  };
  return { server, client, call, close, gates, runs, ranAt, decodes: () => decodes };
}

describe("provider protection", () => {
  let assertReleased: () => Promise<void> = async () => {};
  beforeEach(() => {
    assertReleased = trackResources();
  });
  afterEach(() => assertReleased());

  it("answers the 3rd concurrent call concurrency_limited without decoding its body; permits come back however calls end", async () => {
    const concurrency = new FakeConcurrency(2);
    const w = await world({ hold: { concurrency } });
    try {
      const first = w.call("hold", ["a"]);
      const second = w.call("hold", ["b"]);
      await until(() => w.runs.hold === 2, "two calls running");
      assert.equal(concurrency.running, 2);
      const decoded = w.decodes();
      await refused(w.call("hold", ["c"]), "concurrency_limited", 0);
      assert.equal(w.decodes(), decoded, "the refused request's body was never decoded");
      assert.equal(w.runs.hold, 2);
      // One call succeeds, the other fails: both give their permit back, once each.
      w.gates[0]?.resolve("a done");
      w.gates[1]?.reject(new Error("b failed"));
      assert.equal((await first).value, "a done");
      await assert.rejects(second, (error: unknown) => error instanceof FarcallError && error.code === "application");
      assert.equal(concurrency.running, 0);
      assert.equal(concurrency.released, 2);
      const again = w.call("hold", ["d"]);
      await until(() => w.runs.hold === 3, "a call admitted once permits came back");
      w.gates[2]?.resolve("d done");
      assert.equal((await again).value, "d done");
      assert.equal(concurrency.released, concurrency.acquired);
      assert.equal(w.server.stats().inFlight, 0);
    } finally {
      await w.close();
    }
  });

  it("drops a oneway call its concurrency limit refuses: not run, not decoded, no reply", async () => {
    const concurrency = new FakeConcurrency(0);
    const w = await world({ fire: { concurrency } });
    try {
      await w.call("fire", ["event"]);
      // Requests on one connection are handled in order: once this is answered, `fire` was handled.
      const after = w.call("plain", ["after"]);
      await until(() => w.runs.plain === 1, "the next call running");
      w.gates[0]?.resolve("ok");
      assert.equal((await after).value, "ok");
      assert.equal(w.runs.fire, 0);
      assert.equal(w.decodes(), 1, "only the plain call's body was decoded");
      assert.equal(concurrency.acquired, 0);
    } finally {
      await w.close();
    }
  });

  it("rejects rate_limited beyond the limiter's tokens, passes the read time as now, and returns the refused call's permit", async () => {
    const limiter = new FakeRateLimiter("tokenBucket", [0, 0]);
    const bothConcurrency = new FakeConcurrency(5);
    const w = await world({ limited: { rateLimiter: limiter }, both: { concurrency: bothConcurrency, rateLimiter: new FakeRateLimiter("slidingWindow", []) } });
    try {
      const before = Date.now();
      const replies = [w.call("limited", [1]), w.call("limited", [2]), w.call("limited", [3])];
      assert.equal((await replies[0])?.value, 1);
      assert.equal((await replies[1])?.value, 2);
      await refused(replies[2] as Promise<Reply>, "rate_limited", 0);
      assert.equal(w.runs.limited, 2);
      assert.equal(w.decodes(), 2, "the refused request's body was never decoded");
      assert.equal(limiter.seen.length, 3);
      for (const now of limiter.seen) assert.ok(now >= before && now <= Date.now(), `now ${now} is the time the request was read`);
      // Concurrency is checked first; a rate refusal after it gives the permit straight back.
      await refused(w.call("both", []), "rate_limited", 0);
      assert.equal(w.runs.both, 0);
      assert.deepEqual([bothConcurrency.acquired, bothConcurrency.released, bothConcurrency.running], [1, 1, 0]);
    } finally {
      await w.close();
    }
  });

  it("runs a call a leaky bucket delays after the delay, counted in flight meanwhile; one whose deadline comes first gets deadline_exceeded unrun", async () => {
    const concurrency = new FakeConcurrency(10);
    const w = await world({ paced: { concurrency, rateLimiter: new FakeRateLimiter("leakyBucket", [150, 300]) } });
    try {
      const sentAt = Date.now();
      const delayed = w.call("paced", [7]);
      await until(() => w.server.stats().delayed === 1, "the call waiting for its turn");
      assert.equal(w.server.stats().inFlight, 1);
      assert.equal(concurrency.running, 1, "the waiting call holds its permit");
      assert.equal(w.runs.paced, 0);
      assert.equal((await delayed).value, 7);
      assert.ok((w.ranAt[0] ?? 0) - sentAt >= 150, `ran ${(w.ranAt[0] ?? 0) - sentAt} ms after it was sent`);
      // A 300 ms wait with a 100 ms deadline: answered by the provider (the consumer's wheel never ticks).
      const startedAt = Date.now();
      await assert.rejects(w.call("paced", [8], 100), (error: unknown) => error instanceof FarcallError && error.code === "deadline_exceeded");
      assert.ok(Date.now() - startedAt < 300, "answered without waiting for the turn");
      assert.equal(w.runs.paced, 1);
      assert.deepEqual([concurrency.running, concurrency.released], [0, 2]);
      assert.deepEqual([w.server.stats().inFlight, w.server.stats().delayed], [0, 0]);
    } finally {
      await w.close();
    }
  });

  it("close runs waiting calls within the grace period and answers unavailable the ones still waiting at its end", async () => {
    const concurrency = new FakeConcurrency(10);
    const w = await world({ paced: { concurrency, rateLimiter: new FakeRateLimiter("leakyBucket", [50, 60_000]) } });
    try {
      const soon = w.call("paced", [1]);
      const never = w.call("paced", [2]);
      await until(() => w.server.stats().delayed === 2, "both calls waiting");
      const closed = w.server.close(300);
      assert.equal((await soon).value, 1, "the call whose turn came during the drain ran");
      await assert.rejects(never, (error: unknown) => error instanceof FarcallError && error.code === "unavailable");
      await closed;
      assert.equal(w.runs.paced, 1);
      assert.deepEqual([concurrency.running, concurrency.released], [0, 2]);
      assert.deepEqual([w.server.stats().inFlight, w.server.stats().delayed], [0, 0]);
    } finally {
      await w.close();
    }
  });

  it("answers overloaded beyond the server-wide maxConcurrentCalls without decoding, and counts it", async () => {
    // A target no event-loop hiccup reaches: only the cap may refuse here.
    const w = await world({}, { loadShedding: { maxConcurrentCalls: 2, targetDelayMs: 60_000 } });
    try {
      const running = [w.call("plain", ["a"]), w.call("hold", ["b"])];
      await until(() => w.runs.plain + w.runs.hold === 2, "two calls running");
      const decoded = w.decodes();
      await refused(w.call("limited", [1]), "overloaded", 0);
      assert.equal(w.decodes(), decoded);
      assert.equal(w.runs.limited, 0);
      assert.deepEqual([w.server.stats().shedCount, w.server.stats().admissionProbability], [1, 1]);
      for (const gate of w.gates) gate.resolve("done");
      await Promise.all(running);
      assert.equal((await w.call("limited", [2])).value, 2, "admitted again once calls finished");
    } finally {
      await w.close();
    }
  });

  it("sheds by admission probability once the event loop lags: overloaded, retry after one interval, body not decoded", async () => {
    // A draw of 0.99 is refused at any probability below 1.
    const w = await world({}, { loadShedding: { targetDelayMs: 20, intervalMs: 50, random: () => 0.99 } });
    try {
      assert.equal((await w.call("limited", [1])).value, 1, "admitted while the loop keeps up");
      // monitorEventLoopDelay records nothing until its second sample (10 ms apart): let it start.
      await new Promise((resolve) => setTimeout(resolve, 30));
      const end = Date.now() + 80;
      while (Date.now() < end); // the loop lags 80 ms: the next interval is over target
      const deadline = Date.now() + 2000;
      while (w.server.stats().admissionProbability === 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      const p = w.server.stats().admissionProbability;
      assert.ok(p <= 0.75, `admission probability ${p} after an interval over target`);
      // p climbs back by 0.1 per quiet 50 ms interval: it stays below 0.99 for the next 100 ms at least.
      const decoded = w.decodes();
      await refused(w.call("limited", [2]), "overloaded", 50);
      assert.equal(w.decodes(), decoded);
      assert.equal(w.runs.limited, 1);
      assert.equal(w.server.stats().shedCount, 1);
    } finally {
      await w.close();
    }
  });

  it("owns its load-shedding timer: started by listen, cleared by close", async () => {
    const intervalMs = 97;
    const created = new Set<unknown>();
    const cleared = new Set<unknown>();
    const realSet = globalThis.setInterval;
    const realClear = globalThis.clearInterval;
    globalThis.setInterval = ((fn: () => void, ms?: number) => {
      const timer = realSet(fn, ms);
      if (ms === intervalMs) created.add(timer);
      return timer;
    }) as typeof setInterval;
    globalThis.clearInterval = ((timer: NodeJS.Timeout | undefined) => {
      cleared.add(timer);
      realClear(timer);
    }) as typeof clearInterval;
    try {
      const w = await world({}, { loadShedding: { intervalMs } });
      assert.equal(created.size, 1, "one shedder timer while listening");
      const [timer] = created as Set<NodeJS.Timeout>;
      assert.equal(timer?.hasRef(), false, "unref'd");
      await w.close();
      assert.ok(cleared.has(timer), "cleared on close");
    } finally {
      globalThis.setInterval = realSet;
      globalThis.clearInterval = realClear;
    }
  });
});
