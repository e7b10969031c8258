import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FarcallError } from "../errors/farcall-error.js";
import { directRegistry, parseDirectAddress } from "./direct-registry.js";
import type { Endpoint } from "./endpoint.js";
import { endpointMatches } from "./endpoint-matches.js";

function firstDelivery(registry: ReturnType<typeof directRegistry>, service: string): Promise<readonly Endpoint[]> {
  return new Promise((resolve) => {
    const unwatch = registry.watch(service, (list) => {
      unwatch();
      resolve(list);
    });
  });
}

function reason(expected: string) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof FarcallError);
    assert.equal(error.code, "invalid_argument");
    assert.equal(error.reason, expected);
    return true;
  };
}

describe("parseDirectAddress", () => {
  it("parses host:port lists with or without the direct:// prefix, IPv6 in brackets", () => {
    assert.deepEqual(parseDirectAddress("direct://127.0.0.1:2000,127.0.0.1:2001"), [
      { host: "127.0.0.1", port: 2000 },
      { host: "127.0.0.1", port: 2001 },
    ]);
    assert.deepEqual(parseDirectAddress(" provider.local:80 , [::1]:2000 "), [
      { host: "provider.local", port: 80 },
      { host: "::1", port: 2000 },
    ]);
  });

  it("rejects malformed items with bad_address", () => {
    for (const text of ["", "direct://", "h", "h:0", "h:65536", "h:1,", "a b:1", "h:1/x", "::1:2000", "zk://h:1"]) {
      assert.throws(() => parseDirectAddress(text), reason("bad_address"), text);
    }
  });
});

describe("directRegistry", () => {
  it("serves its list for any service, with wildcard version and group", async () => {
    const registry = directRegistry({ endpoints: [{ host: "127.0.0.1", port: 2000 }, { host: "::1", port: 2001, weight: 5 }] });
    const list = await firstDelivery(registry, "org.example.Users");
    assert.deepEqual(
      list.map((e) => [e.service, e.host, e.port, e.weight, e.version, e.group, e.protocol, e.serializer]),
      [
        ["org.example.Users", "127.0.0.1", 2000, 100, "*", "*", "farcall", "msgpack"],
        ["org.example.Users", "::1", 2001, 5, "*", "*", "farcall", "msgpack"],
      ],
    );
    assert.ok(list.every((e) => endpointMatches(e, "2.0.0", "blue")));
    await registry.close();
  });

  it("serves only the configured service when one is given", async () => {
    const registry = directRegistry({ endpoints: [{ host: "h", port: 1 }], service: "a" });
    assert.equal((await firstDelivery(registry, "a")).length, 1);
    assert.equal((await firstDelivery(registry, "b")).length, 0);
    await registry.close();
  });

  it("rejects bad options with bad_option", () => {
    const bad: unknown[] = [
      { endpoints: [] },
      { endpoints: [{ host: "h", port: 0 }] },
      { endpoints: [{ host: "bad host", port: 1 }] },
      { endpoints: [{ host: "h", port: 1, weight: 10001 }] },
      { endpoints: [{ host: "h", port: 1 }], service: "bad service" },
    ];
    for (const options of bad) {
      assert.throws(() => directRegistry(options as Parameters<typeof directRegistry>[0]), reason("bad_option"));
    }
  });
});

describe("endpointMatches", () => {
  it("matches equal strings or a wildcard on the endpoint's side", async () => {
    const registry = directRegistry({ endpoints: [{ host: "h", port: 1 }] });
    const [direct] = await firstDelivery(registry, "s");
    assert.ok(direct);
    const exact = { ...direct, version: "1", group: "g" };
    assert.equal(endpointMatches(exact, "1", "g"), true);
    assert.equal(endpointMatches(exact, "2", "g"), false);
    assert.equal(endpointMatches(exact, "1", ""), false);
    assert.equal(endpointMatches(direct, "anything", ""), true);
    await registry.close();
  });
});
