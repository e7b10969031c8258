import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { codeToStatus, FarcallError } from "../../errors/farcall-error.js";
import { type Frame, FrameFlags, maxRouteBytes } from "./frame.js";
import { decodeFrames } from "./frame-decoder.js";
import { encodeFrame, FrameWriter } from "./frame-encoder.js";
import { decodeRoute, encodeRoute, routeKey } from "./route.js";

const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
const bytes = (h: string): Buffer => Buffer.from(h.replace(/\s+/g, ""), "hex");
const empty = new Uint8Array(0);
/** The fields of a frame without sections, serializer or status (heartbeats, closing). */
const bare = { serializerId: 0, status: 0, timeoutMs: 0, route: empty, metadata: empty, body: empty };

function assertFarcallError(fn: () => unknown, code: string, reason: string): void {
  assert.throws(fn, (error: unknown) => error instanceof FarcallError && error.code === code && error.reason === reason);
}

// The golden vectors of docs/wire-protocol.md, byte for byte. A change here is a wire change.
const route = encodeRoute("greeter", "1.0.0", "", "hello");
const golden = {
  request: {
    frame: {
      ...bare,
      flags: 0,
      serializerId: 1,
      requestId: 1,
      timeoutMs: 5000,
      route,
      metadata: bytes("81 a5 7472616365 a2 7431"),
      body: bytes("91 a1 31"),
    },
    hex: "faca0100 0100 0014 00000001 00001388 0000000a 00000003 6772656574657200312e302e30000068656c6c6f 81a57472616365a27431 91a131",
  },
  responseOk: {
    frame: { ...bare, flags: FrameFlags.response, serializerId: 1, requestId: 1, body: bytes("a4 68692031") },
    hex: "faca0101 0100 0000 00000001 00000000 00000000 00000005 a468692031",
  },
  responseError: {
    frame: {
      flags: FrameFlags.response,
      serializerId: 1,
      status: 10,
      requestId: 2,
      timeoutMs: 0,
      route: empty,
      metadata: empty,
      body: bytes("82 a4 6e616d65 aa 52616e67654572726f72 a7 6d657373616765 a7 746f6f20626967"),
    },
    hex: "faca0101 010a 0000 00000002 00000000 00000000 00000021 82a46e616d65aa52616e67654572726f72a76d657373616765a7746f6f20626967",
  },
  ping: {
    frame: { ...bare, flags: FrameFlags.heartbeat, requestId: 7 },
    hex: "faca0104 0000 0000 00000007 00000000 00000000 00000000",
  },
  pong: {
    frame: { ...bare, flags: FrameFlags.heartbeat | FrameFlags.response, requestId: 7 },
    hex: "faca0105 0000 0000 00000007 00000000 00000000 00000000",
  },
  closing: {
    frame: { ...bare, flags: FrameFlags.closing, requestId: 0 },
    hex: "faca0108 0000 0000 00000000 00000000 00000000 00000000",
  },
} satisfies Record<string, { frame: Frame; hex: string }>;

describe("golden vectors", () => {
  it("uses status 10 for application errors", () => assert.equal(codeToStatus("application"), 10));

  for (const [name, vector] of Object.entries(golden)) {
    it(`${name}: encodeFrame gives the documented bytes, and they decode back`, () => {
      const expected = vector.hex.replace(/\s+/g, "");
      assert.equal(hex(encodeFrame(vector.frame)), expected);
      const [decoded] = decodeFrames(bytes(expected));
      assert.ok(decoded);
      assert.equal(hex(encodeFrame(decoded)), expected);
    });
  }

  it("FrameWriter writes the same bytes, all vectors in one buffer", () => {
    const writer = new FrameWriter();
    const { request, responseOk, responseError } = golden;
    writer.writeRequest(1, 0, 1, 5000, route, request.frame.metadata, request.frame.body);
    writer.writeResponse(1, 0, 1, 0, undefined, responseOk.frame.body);
    writer.writeResponse(2, FrameFlags.response, 1, codeToStatus("application"), undefined, responseError.frame.body);
    writer.writeHeartbeat(7, false);
    writer.writeHeartbeat(7, true);
    writer.writeClosing();
    const all = Object.values(golden).map((v) => v.hex.replace(/\s+/g, "")).join("");
    assert.equal(writer.size, all.length / 2);
    assert.equal(hex(writer.take()), all);
    assert.equal(writer.size, 0);
    assert.equal(writer.take().length, 0);
  });
});

type Op =
  | { kind: "request"; requestId: number; oneway: boolean; route: Uint8Array; metadata: Uint8Array | undefined; body: Uint8Array }
  | { kind: "response"; requestId: number; status: number; metadata: Uint8Array | undefined; body: Uint8Array }
  | { kind: "heartbeat"; requestId: number; isResponse: boolean }
  | { kind: "closing" }
  | { kind: "take" };

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const body = fc.uint8Array({ maxLength: 300 });
const metadata = fc.option(fc.uint8Array({ minLength: 1, maxLength: 40 }), { nil: undefined });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant("request" as const),
    requestId: u32,
    oneway: fc.boolean(),
    route: fc.uint8Array({ minLength: 1, maxLength: 40 }),
    metadata,
    body,
  }),
  fc.record({ kind: fc.constant("response" as const), requestId: u32, status: fc.integer({ min: 0, max: 255 }), metadata, body }),
  fc.record({ kind: fc.constant("heartbeat" as const), requestId: u32, isResponse: fc.boolean() }),
  fc.constant({ kind: "closing" as const }),
  fc.constant({ kind: "take" as const }),
);

function expectedFrame(op: Exclude<Op, { kind: "take" }>): Frame {
  switch (op.kind) {
    case "request":
      return {
        ...bare,
        flags: op.oneway ? FrameFlags.oneway : 0,
        serializerId: 3,
        requestId: op.requestId,
        timeoutMs: 250,
        route: op.route,
        metadata: op.metadata ?? empty,
        body: op.body,
      };
    case "response":
      return {
        ...bare,
        flags: FrameFlags.response,
        serializerId: 3,
        status: op.status,
        requestId: op.requestId,
        metadata: op.metadata ?? empty,
        body: op.body,
      };
    case "heartbeat":
      const flags = op.isResponse ? FrameFlags.heartbeat | FrameFlags.response : FrameFlags.heartbeat;
      return { ...bare, flags, requestId: op.requestId };
    case "closing":
      return { ...bare, flags: FrameFlags.closing, requestId: 0 };
  }
}

describe("FrameWriter", () => {
  it("takes exactly the frames written since the last take, and never overwrites a taken buffer", () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 40 }), fc.integer({ min: 24, max: 2048 }), (ops, initialBytes) => {
        const writer = new FrameWriter({ initialBytes });
        const taken: { buffer: Buffer; copy: string; expected: string }[] = [];
        let expected = "";
        const takeNow = (): void => {
          const buffer = writer.take();
          taken.push({ buffer, copy: hex(buffer), expected });
          expected = "";
        };
        for (const op of [...ops, { kind: "take" as const }]) {
          if (op.kind === "take") {
            takeNow();
            continue;
          }
          const flags = op.kind === "request" && op.oneway ? FrameFlags.oneway : 0;
          if (op.kind === "request") writer.writeRequest(op.requestId, flags, 3, 250, op.route, op.metadata, op.body);
          else if (op.kind === "response") writer.writeResponse(op.requestId, 0, 3, op.status, op.metadata, op.body);
          else if (op.kind === "heartbeat") writer.writeHeartbeat(op.requestId, op.isResponse);
          else writer.writeClosing();
          expected += hex(encodeFrame(expectedFrame(op)));
          assert.equal(writer.size * 2, expected.length);
        }
        for (const t of taken) {
          assert.equal(t.copy, t.expected);
          assert.equal(hex(t.buffer), t.copy, "a taken buffer was overwritten");
        }
      }),
      { numRuns: 1500 },
    );
  });

  it("grows for a burst and shrinks back after the take", () => {
    const writer = new FrameWriter({ initialBytes: 1024 });
    const big = new Uint8Array(10_000).fill(5);
    writer.writeResponse(1, 0, 1, 0, undefined, big);
    writer.writeResponse(2, 0, 1, 0, undefined, big);
    const burst = writer.take();
    assert.equal(burst.length, 2 * (24 + 10_000));
    assert.ok(burst.buffer.byteLength >= burst.length);
    writer.writeHeartbeat(1, false);
    const small = writer.take();
    assert.equal(small.buffer.byteLength <= 8192, true, "the writer kept the burst-sized slab");
    assert.equal(hex(burst.subarray(24, 28)), "05050505");
  });

  it("copies section bytes during the call, so the serializer may reuse its buffer", () => {
    const writer = new FrameWriter();
    const scratch = Buffer.from([1, 2, 3]);
    writer.writeResponse(1, 0, 1, 0, undefined, scratch);
    scratch.fill(9);
    assert.equal(hex(writer.take().subarray(24)), "010203");
  });

  it("rejects invalid fields and oversize frames before writing anything", () => {
    const writer = new FrameWriter({ maxFrameBytes: 100 });
    const r = encodeRoute("s", "", "", "m");
    writer.writeHeartbeat(1, false);
    const cases: [() => void, string, string][] = [
      [() => writer.writeRequest(-1, 0, 1, 0, r, undefined, empty), "invalid_argument", "bad_frame_field"],
      [() => writer.writeRequest(2 ** 32, 0, 1, 0, r, undefined, empty), "invalid_argument", "bad_frame_field"],
      [() => writer.writeRequest(1, FrameFlags.response, 1, 0, r, undefined, empty), "invalid_argument", "bad_frame_field"],
      [() => writer.writeRequest(1, 0, 0, 0, r, undefined, empty), "invalid_argument", "bad_frame_field"],
      [() => writer.writeRequest(1, 0, 256, 0, r, undefined, empty), "invalid_argument", "bad_frame_field"],
      [() => writer.writeRequest(1, 0, 1, 1.5, r, undefined, empty), "invalid_argument", "bad_frame_field"],
      [() => writer.writeRequest(1, 0, 1, 0, empty, undefined, empty), "invalid_argument", "bad_frame_field"],
      [() => writer.writeRequest(1, 0, 1, 0, new Uint8Array(maxRouteBytes + 1), undefined, empty), "invalid_argument", "bad_frame_field"],
      [() => writer.writeResponse(1, FrameFlags.oneway, 1, 0, undefined, empty), "invalid_argument", "bad_frame_field"],
      [() => writer.writeResponse(1, 0, 1, 256, undefined, empty), "invalid_argument", "bad_frame_field"],
      [() => writer.writeHeartbeat(-1, true), "invalid_argument", "bad_frame_field"],
      [() => writer.writeResponse(1, 0, 1, 0, undefined, new Uint8Array(77)), "resource_exhausted", "frame_too_large"],
    ];
    for (const [fn, code, reason] of cases) assertFarcallError(fn, code, reason);
    writer.writeResponse(1, 0, 1, 0, undefined, new Uint8Array(76));
    assert.equal(writer.size, 24 + 100);
    assertFarcallError(() => new FrameWriter({ initialBytes: 10 }), "invalid_argument", "bad_option");
  });
});

describe("routes", () => {
  it("round-trips and keys any route", () => {
    const part = fc.string({ unit: "grapheme", maxLength: 20 }).filter((s) => !s.includes("\u0000"));
    fc.assert(
      fc.property(part.filter((s) => s !== ""), part, part, part.filter((s) => s !== ""), (service, version, group, method) => {
        const encoded = encodeRoute(service, version, group, method);
        assert.deepEqual(decodeRoute(encoded), { service, version, group, method });
        assert.equal(routeKey(encoded), Buffer.from(`${service}\0${version}\0${group}\0${method}`).toString("latin1"));
        assert.equal(routeKey(new Uint8Array(encoded)), routeKey(encoded));
      }),
      { numRuns: 500 },
    );
  });

  it("rejects what cannot be a route", () => {
    assertFarcallError(() => encodeRoute("a\u0000b", "", "", "m"), "invalid_argument", "bad_route");
    assertFarcallError(() => encodeRoute("", "", "", "m"), "invalid_argument", "bad_route");
    assertFarcallError(() => encodeRoute("s".repeat(maxRouteBytes), "", "", "m"), "invalid_argument", "route_too_large");
    for (const bad of ["s\0v\0m", "s\0v\0g\0m\0x", "\0v\0g\0m", "s\0v\0g\0"]) {
      assertFarcallError(() => decodeRoute(Buffer.from(bad)), "internal", "bad_route");
    }
    assertFarcallError(() => decodeRoute(Buffer.from([0x73, 0, 0, 0, 0xff])), "internal", "bad_route");
  });
});
