import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { FarcallError } from "../../errors/farcall-error.js";
import { defaultMaxFrameBytes, type Frame, FrameFlags, headerBytes, maxRouteBytes } from "./frame.js";
import { decodeFrames, FrameDecoder } from "./frame-decoder.js";
import { encodeFrame } from "./frame-encoder.js";

/** A frame with hex sections, safe to keep after the callback. */
interface Snapshot {
  flags: number;
  serializerId: number;
  status: number;
  requestId: number;
  timeoutMs: number;
  route: string;
  metadata: string;
  body: string;
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
const snapshot = (f: Frame): Snapshot => ({
  flags: f.flags,
  serializerId: f.serializerId,
  status: f.status,
  requestId: f.requestId,
  timeoutMs: f.timeoutMs,
  route: hex(f.route),
  metadata: hex(f.metadata),
  body: hex(f.body),
});

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const empty = new Uint8Array(0);
/** The fields of a frame without sections, serializer or status (heartbeats, closing). */
const bare = { serializerId: 0, status: 0, timeoutMs: 0, route: empty, metadata: empty, body: empty };

/** Every valid v1 frame shape; `sectionBytes` bounds each section (the route's 1024 edge aside). */
function frameArbitrary(sectionBytes: number): fc.Arbitrary<Frame> {
  const section = fc.oneof(fc.constant(empty), fc.uint8Array({ maxLength: sectionBytes }));
  const routeArb = fc.oneof(
    { weight: 9, arbitrary: fc.uint8Array({ minLength: 1, maxLength: Math.min(64, sectionBytes) + 1 }) },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: maxRouteBytes, maxLength: maxRouteBytes }) },
  );
  const request: fc.Arbitrary<Frame> = fc.record({
    flags: fc.constantFrom(0, FrameFlags.oneway),
    serializerId: fc.integer({ min: 1, max: 255 }),
    status: fc.constant(0),
    requestId: u32,
    timeoutMs: u32,
    route: routeArb,
    metadata: section,
    body: section,
  });
  const response: fc.Arbitrary<Frame> = fc.record({
    flags: fc.constant(FrameFlags.response),
    serializerId: fc.integer({ min: 1, max: 255 }),
    status: fc.integer({ min: 0, max: 255 }),
    requestId: u32,
    timeoutMs: fc.constant(0),
    route: fc.constant(empty),
    metadata: section,
    body: section,
  });
  const control: fc.Arbitrary<Frame> = fc
    .oneof(
      fc.record({ flags: fc.constantFrom(FrameFlags.heartbeat, FrameFlags.heartbeat | FrameFlags.response), requestId: u32 }),
      fc.record({ flags: fc.constant(FrameFlags.closing), requestId: fc.constant(0) }),
    )
    .map(({ flags, requestId }) => ({ ...bare, flags, requestId }));
  return fc.oneof(request, response, control);
}
const frameArb = frameArbitrary(300);
const streamArb = fc.array(frameArb, { minLength: 1, maxLength: 8 });

function encodeStream(frames: readonly Frame[]): Buffer {
  return Buffer.concat(frames.map(encodeFrame));
}

/** Feeds `bytes` cut at `cuts` (sorted offsets) into one decoder. */
function decodeInChunks(bytes: Buffer, cuts: readonly number[], decoder = new FrameDecoder()): Snapshot[] {
  const out: Snapshot[] = [];
  let start = 0;
  for (const cut of [...cuts, bytes.length]) {
    decoder.push(bytes.subarray(start, cut), (frame) => out.push(snapshot(frame)));
    start = cut;
  }
  assert.equal(decoder.bufferedBytes, 0);
  return out;
}

function assertTooLarge(fn: () => unknown): void {
  assertFarcallError(fn, "resource_exhausted", "frame_too_large");
}

function assertFarcallError(fn: () => unknown, code: string, reason: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof FarcallError, `not a FarcallError: ${String(error)}`);
    assert.equal(error.code, code);
    assert.equal(error.reason, reason);
    return true;
  });
}

/** A 24-byte header from its fields (lengths unchecked, so any declared size can be built). */
interface HeaderFields {
  flags?: number;
  serializerId?: number;
  status?: number;
  route?: number;
  requestId?: number;
  timeoutMs?: number;
  metadata?: number;
  body?: number;
}

function header(fields: HeaderFields): Buffer {
  const b = Buffer.alloc(headerBytes);
  b.set([0xfa, 0xca, 1, fields.flags ?? FrameFlags.response, fields.serializerId ?? 1, fields.status ?? 0]);
  b.writeUInt16BE(fields.route ?? 0, 6);
  b.writeUInt32BE(fields.requestId ?? 1, 8);
  b.writeUInt32BE(fields.timeoutMs ?? 0, 12);
  b.writeUInt32BE(fields.metadata ?? 0, 16);
  b.writeUInt32BE(fields.body ?? 0, 20);
  return b;
}

describe("FrameDecoder", () => {
  it("round-trips every valid frame: decode(encode(f)) = f, and encode(decode(bytes)) = bytes", () => {
    fc.assert(
      fc.property(frameArb, (frame) => {
        const bytes = encodeFrame(frame);
        const [decoded, ...rest] = decodeFrames(bytes);
        assert.equal(rest.length, 0);
        assert.ok(decoded);
        assert.deepEqual(snapshot(decoded), snapshot(frame));
        assert.equal(hex(encodeFrame(decoded)), hex(bytes));
      }),
      { numRuns: 2000 },
    );
  });

  it("decodes a multi-frame stream the same whatever the chunk boundaries", () => {
    fc.assert(
      fc.property(streamArb, fc.array(fc.nat(), { maxLength: 20 }), (frames, rawCuts) => {
        const bytes = encodeStream(frames);
        const cuts = [...new Set(rawCuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        assert.deepEqual(decodeInChunks(bytes, cuts), frames.map(snapshot));
      }),
      { numRuns: 3000 },
    );
  });

  it("decodes the same at every single split point, and byte by byte", () => {
    fc.assert(
      fc.property(fc.array(frameArb, { minLength: 2, maxLength: 4 }), (frames) => {
        const bytes = encodeStream(frames);
        const expected = frames.map(snapshot);
        const decoder = new FrameDecoder();
        for (let cut = 0; cut <= bytes.length; cut += 1) assert.deepEqual(decodeInChunks(bytes, [cut], decoder), expected);
        const everyByte = Array.from({ length: bytes.length }, (_, i) => i);
        assert.deepEqual(decodeInChunks(bytes, everyByte), expected);
      }),
      { numRuns: 60 },
    );
  });

  it("hands out views of the chunk for whole frames, without copying", () => {
    const frame: Frame = { ...bare, flags: FrameFlags.response, serializerId: 1, requestId: 9, metadata: Buffer.from([1]), body: Buffer.from([2, 3]) };
    const chunk = encodeStream([frame, frame]);
    const seen: Frame[] = [];
    new FrameDecoder().push(chunk, (f) => seen.push(f));
    assert.equal(seen.length, 2);
    for (const f of seen) assert.equal(f.body.buffer, chunk.buffer);
    assert.equal(seen[1]?.body.byteOffset, chunk.byteOffset + chunk.length - 2);
  });

  it("throws only FarcallError on arbitrary and mutated bytes, and stays dead afterwards", () => {
    const mutated = fc
      .tuple(
        fc.array(frameArbitrary(16), { minLength: 1, maxLength: 3 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }),
      )
      .map(([frames, edits]) => {
        const bytes = encodeStream(frames);
        for (const [at, value] of edits) bytes[at % bytes.length] = value;
        return bytes;
      });
    const headerish = fc
      .tuple(fc.uint8Array({ minLength: 21, maxLength: 21 }), fc.uint8Array({ maxLength: 64 }))
      .map(([rest, tail]) => Buffer.concat([Buffer.from([0xfa, 0xca, 1]), rest, tail]));
    const input = fc.oneof(fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b)), headerish, mutated);
    /** Decodes `bytes` cut at `at`; returns the error thrown, if any. */
    const run = (decoder: FrameDecoder, bytes: Buffer, at: number): unknown => {
      try {
        decoder.push(bytes.subarray(0, at), () => {});
        decoder.push(bytes.subarray(at), () => {});
        return undefined;
      } catch (error) {
        return error;
      }
    };
    const slow: [Buffer, number][] = [];
    // Stack traces are irrelevant here and are most of the cost of 100k thrown errors.
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      fc.assert(
        fc.property(input, fc.nat(), (bytes, cut) => {
          const started = performance.now();
          const decoder = new FrameDecoder();
          const at = cut % (bytes.length + 1);
          const failure = run(decoder, bytes, at);
          if (failure !== undefined) {
            assert.ok(failure instanceof FarcallError, String(failure));
            assert.ok(failure.code === "internal" || failure.code === "resource_exhausted");
            assert.throws(() => decoder.push(Buffer.from([0xfa]), () => {}), (again: unknown) => again === failure);
          }
          assert.ok(decoder.bufferedBytes <= bytes.length);
          if (performance.now() - started > 10) slow.push([bytes, at]);
        }),
        { numRuns: 100_000 },
      );
    } finally {
      Error.stackTraceLimit = stackTraceLimit;
    }
    // T25: no input takes more than 10 ms (typical is well under 0.1 ms). An input that looked slow
    // is timed again alone, best of three, so a GC pause or a busy machine does not fail the test.
    for (const [bytes, at] of slow) {
      const times = [0, 1, 2].map(() => {
        const started = performance.now();
        run(new FrameDecoder(), bytes, at);
        return performance.now() - started;
      });
      assert.ok(Math.min(...times) < 10, `input ${bytes.toString("hex")} takes ${Math.min(...times)} ms`);
    }
  });

  describe("length fields", () => {
    const max = defaultMaxFrameBytes - headerBytes;
    const accepted = [0, 1, max - 1, max];
    const rejected = [max + 1, 2 ** 31, 2 ** 32 - 1];

    for (const field of ["metadata", "body"] as const) {
      for (const length of accepted) {
        it(`accepts ${field} length ${length}`, () => {
          const head = header({ [field]: length });
          const payload = Buffer.alloc(length, 7);
          const lengths: number[] = [];
          const decoder = new FrameDecoder();
          decoder.push(head, (f) => lengths.push(f[field].length));
          for (let at = 0; at < length; at += 65_536) decoder.push(payload.subarray(at, at + 65_536), (f) => lengths.push(f[field].length));
          assert.deepEqual(lengths, [length]);
          assert.equal(decoder.bufferedBytes, 0);
        });
      }
      for (const length of rejected) {
        it(`rejects ${field} length ${length} on the 24th header byte`, () => {
          const head = header({ [field]: length });
          const decoder = new FrameDecoder();
          for (let at = 0; at < headerBytes - 1; at += 1) decoder.push(head.subarray(at, at + 1), () => assert.fail());
          assertTooLarge(() => decoder.push(head.subarray(headerBytes - 1), () => assert.fail()));
          assertTooLarge(() => decoder.push(Buffer.alloc(1), () => assert.fail()));
          // Also when the header arrives in one chunk with body bytes behind it.
          assertTooLarge(() => new FrameDecoder().push(Buffer.concat([head, Buffer.alloc(100)]), () => assert.fail()));
        });
      }
    }

    it("does not let metadata + body overflow 32 bits past the limit", () => {
      const head = header({ metadata: 2 ** 32 - 1, body: 2 ** 32 - 1 });
      assertTooLarge(() => new FrameDecoder().push(head, () => assert.fail()));
      const sum = header({ metadata: 2 ** 31, body: 2 ** 31 });
      assertTooLarge(() => new FrameDecoder({ maxFrameBytes: 2 ** 32 }).push(sum, () => assert.fail()));
    });

    it("applies a custom maxFrameBytes to the whole frame, route and metadata included", () => {
      const decoder = () => new FrameDecoder({ maxFrameBytes: 100 });
      const fits = header({ flags: 0, route: 10, metadata: 30, body: 36 });
      const frames: Frame[] = [];
      decoder().push(Buffer.concat([fits, Buffer.alloc(76, 1)]), (f) => frames.push(f));
      assert.equal(frames.length, 1);
      assertTooLarge(() => decoder().push(header({ flags: 0, route: 10, metadata: 30, body: 37 }), () => {}));
    });

    const routeCases = [
      [0, true],
      [1, true],
      [maxRouteBytes - 1, true],
      [maxRouteBytes, true],
      [maxRouteBytes + 1, false],
      [0xffff, false],
    ] as const;
    for (const [route, ok] of routeCases) {
      it(`${ok ? "accepts" : "rejects"} route length ${route}`, () => {
        const head = header({ flags: 0, route, body: 1 });
        const push = (): number => {
          let count = 0;
          new FrameDecoder().push(Buffer.concat([head, Buffer.alloc(route + 1, 0x61)]), () => (count += 1));
          return count;
        };
        if (route === 0) assertFarcallError(push, "internal", "bad_header"); // a request needs a route
        else if (ok) assert.equal(push(), 1);
        else assertFarcallError(push, "resource_exhausted", "route_too_large");
      });
    }

    it("buffers only bytes received, not the size a header declares", () => {
      const before = process.memoryUsage().arrayBuffers;
      const decoders: FrameDecoder[] = [];
      for (let i = 0; i < 1000; i += 1) {
        const decoder = new FrameDecoder();
        decoder.push(Buffer.concat([header({ body: defaultMaxFrameBytes - headerBytes }), Buffer.alloc(1)]), () => assert.fail());
        assert.equal(decoder.bufferedBytes, headerBytes + 1);
        decoders.push(decoder);
      }
      const grownBytes = process.memoryUsage().arrayBuffers - before;
      assert.ok(grownBytes < 16 * 1024 * 1024, `1000 pending headers hold ${grownBytes} bytes`);
    });
  });

  describe("malformed headers", () => {
    const cases: [string, Buffer, string][] = [
      ["bad magic", Buffer.concat([Buffer.from([0xfa, 0xcb]), header({}).subarray(2)]), "bad_magic"],
      ["HTTP/1.1 bytes", Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "bad_magic"],
      ["version 0", Buffer.concat([Buffer.from([0xfa, 0xca, 0]), header({}).subarray(3)]), "bad_version"],
      ["version 2", Buffer.concat([Buffer.from([0xfa, 0xca, 2]), header({}).subarray(3)]), "bad_version"],
      ...[0x10, 0x20, 0x40, 0x80].map((bit): [string, Buffer, string] => [
        `unknown flag bit 0x${bit.toString(16)}`,
        header({ flags: FrameFlags.response | bit }),
        "bad_flags",
      ]),
      ["response marked oneway", header({ flags: FrameFlags.response | FrameFlags.oneway }), "bad_flags"],
      ["heartbeat marked oneway", header({ flags: FrameFlags.heartbeat | FrameFlags.oneway, serializerId: 0 }), "bad_flags"],
      ["heartbeat and closing", header({ flags: FrameFlags.heartbeat | FrameFlags.closing, serializerId: 0 }), "bad_flags"],
      ["closing response", header({ flags: FrameFlags.closing | FrameFlags.response, serializerId: 0, requestId: 0 }), "bad_flags"],
      ["heartbeat with a body", header({ flags: FrameFlags.heartbeat, serializerId: 0, body: 1 }), "bad_header"],
      ["heartbeat with a serializer", header({ flags: FrameFlags.heartbeat, serializerId: 1 }), "bad_header"],
      ["closing with a request id", header({ flags: FrameFlags.closing, serializerId: 0, requestId: 3 }), "bad_header"],
      ["request with a status", header({ flags: 0, status: 1, route: 1 }), "bad_header"],
      ["request without a route", header({ flags: 0 }), "bad_header"],
      ["response with a route", header({ route: 1 }), "bad_header"],
      ["response with a timeout", header({ timeoutMs: 5 }), "bad_header"],
      ["body without a serializer id", header({ serializerId: 0, body: 1 }), "bad_header"],
    ];
    for (const [name, bytes, reason] of cases) {
      it(`rejects ${name} with internal/${reason}, on the header`, () => {
        assertFarcallError(() => new FrameDecoder().push(bytes.subarray(0, headerBytes), () => assert.fail()), "internal", reason);
      });
    }
  });

  it("dies when onFrame throws: the error propagates and later pushes rethrow it", () => {
    const ping = encodeFrame({ ...bare, flags: FrameFlags.heartbeat, requestId: 1 });
    const decoder = new FrameDecoder();
    const boom = new Error("boom");
    assert.throws(() => decoder.push(ping, () => { throw boom; }), (e: unknown) => e === boom);
    assert.throws(() => decoder.push(ping, () => assert.fail()), (e: unknown) => e === boom);
  });

  it("decodeFrames rejects bytes that end inside a frame", () => {
    const ping = encodeFrame({ ...bare, flags: FrameFlags.heartbeat, requestId: 1 });
    assertFarcallError(() => decodeFrames(ping.subarray(0, 23)), "internal", "truncated");
    assert.equal(decodeFrames(new Uint8Array(ping)).length, 1);
  });

  it("validates maxFrameBytes once, at construction", () => {
    for (const bad of [0, 23, 1.5, Number.NaN, -1, 2 ** 60]) {
      assertFarcallError(() => new FrameDecoder({ maxFrameBytes: bad }), "invalid_argument", "bad_option");
    }
  });
});
