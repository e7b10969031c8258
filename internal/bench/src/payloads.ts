/**
 * The two echo payloads. Every system sends the same values; grpc maps them onto
 * `proto/echo.proto`, whose messages mirror these shapes field for field.
 */

/** ~100 bytes in JSON or msgpack: a small structured record. */
export interface SmallPayload {
  id: number;
  name: string;
  age: number;
  tags: string[];
}

/** One line of {@link LargePayload}. */
export interface LargeItem {
  sku: string;
  quantity: number;
  priceCents: number;
  title: string;
}

/** ~1 KiB in JSON (~0.9 KiB msgpack): nested objects, lists of strings, numbers and records, and prose. */
export interface LargePayload {
  id: number;
  name: string;
  email: string;
  age: number;
  active: boolean;
  createdAtMs: number;
  tags: string[];
  address: { street: string; city: string; postalCode: string; country: string };
  scores: number[];
  items: LargeItem[];
  note: string;
}

export type PayloadKind = "small" | "large";
export type Payload = SmallPayload | LargePayload;

export const payloadKinds: readonly PayloadKind[] = ["small", "large"];

export const smallPayload: SmallPayload = {
  id: 1_234_567,
  name: "Augusta Ada King-Noel",
  age: 36,
  tags: ["analyst", "poet", "engine"],
};

export const largePayload: LargePayload = {
  id: 7_654_321,
  name: "Charles Babbage",
  email: "charles.babbage@analytical-engine.example",
  age: 79,
  active: true,
  createdAtMs: 1_700_000_000_000,
  tags: ["mathematician", "philosopher", "inventor", "engineer"],
  address: { street: "1 Dorset Street", city: "London", postalCode: "W1U 4EG", country: "GB" },
  scores: [12, 345, 6789, 10, 11],
  items: Array.from({ length: 1 }, (_, index) => ({
    sku: `SKU-${String(100_000 + index * 7919)}`,
    quantity: index + 1,
    priceCents: 1999 + index * 250,
    title: `Difference engine part number ${String(index + 1)}`,
  })),
  note:
    "Mirror of the small payload, grown to about one kibibyte of JSON: a few scalars, a nested " +
    "address, a short list of numbers, one line item and this free-text note, which stands for " +
    "the descriptions, comments and other prose that real records carry. Records like this one are " +
    "what a typical service call moves: neither a tiny key lookup nor a bulk transfer. The text is " +
    "long enough that bytes, not the count of fields, dominate the encoding cost of this payload, " +
    "as they do for most records of about a kibibyte that services exchange with one another.",
};

export function payloadOf(kind: PayloadKind): Payload {
  return kind === "small" ? smallPayload : largePayload;
}
