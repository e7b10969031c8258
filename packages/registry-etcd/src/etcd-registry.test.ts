import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FarcallError } from "@farcall/core/extension";
import { checkPrefix, consumersPrefix, encodeSegment, providersPrefix } from "./etcd-keys.js";
import { prefixEnd } from "./etcd-read.js";
import { etcdRegistry, type EtcdRegistryOptions } from "./etcd-registry.js";

function rejects(options: unknown, option: string): void {
  assert.throws(
    () => etcdRegistry(options as EtcdRegistryOptions),
    (error: unknown) => error instanceof FarcallError && error.reason === "bad_option" && error.details["option"] === option,
    JSON.stringify(options),
  );
}

describe("etcd keys", () => {
  it("encodes a service as one segment that cannot be '.' or '..' or hold '/'", () => {
    assert.equal(encodeSegment("users.UserService"), "users%2EUserService");
    assert.equal(encodeSegment("a/b"), "a%2Fb");
    assert.equal(encodeSegment(".."), "%2E%2E");
    assert.equal(decodeURIComponent(encodeSegment("x.y/z ü")), "x.y/z ü");
    assert.equal(providersPrefix("/farcall", "a.B"), "/farcall/a%2EB/providers/");
    assert.equal(consumersPrefix("/", "a.B"), "/a%2EB/consumers/");
  });

  it("checks prefixes", () => {
    assert.equal(checkPrefix("/farcall/prod"), "/farcall/prod");
    assert.equal(checkPrefix("/"), "/");
    for (const bad of ["farcall", "/a/", "/a//b", "/a/./b", "/a/../b", "/a\nb", 7]) {
      assert.throws(() => checkPrefix(bad), (e: unknown) => e instanceof FarcallError && e.reason === "bad_option", String(bad));
    }
  });

  it("ends a prefix range after every key that starts with it", () => {
    assert.deepEqual(prefixEnd(Buffer.from("/a/")), Buffer.from("/a0"));
    assert.deepEqual(prefixEnd(Buffer.from([0x61, 0xff, 0xff])), Buffer.from([0x62]));
    assert.deepEqual(prefixEnd(Buffer.from([0xff])), Buffer.from([0]));
  });
});

describe("etcdRegistry options", () => {
  it("rejects invalid options with bad_option naming the option", () => {
    rejects(undefined, "options");
    rejects({}, "hosts");
    rejects({ hosts: [] }, "hosts");
    rejects({ hosts: "127.0.0.1" }, "hosts");
    rejects({ hosts: "http://127.0.0.1:2379" }, "hosts");
    rejects({ hosts: "h:1", prefix: "farcall" }, "prefix");
    rejects({ hosts: "h:1", ttlSeconds: 0 }, "ttlSeconds");
    rejects({ hosts: "h:1", ttlSeconds: 1.5 }, "ttlSeconds");
    rejects({ hosts: "h:1", requestTimeoutMs: 99 }, "requestTimeoutMs");
    rejects({ hosts: "h:1", cacheGraceMs: -1 }, "cacheGraceMs");
    rejects({ hosts: "h:1", cacheDir: "" }, "cacheDir");
    rejects({ hosts: "h:1", auth: { user: "a:b", password: "x" } }, "auth");
    rejects({ hosts: "h:1", auth: { user: "a", password: "" } }, "auth");
  });

  it("opens nothing before it is used, and closes", async () => {
    const registry = etcdRegistry({ hosts: ["127.0.0.1:1", "[::1]:2"], cacheDir: false });
    assert.equal(registry.kind, "etcd");
    await registry.close();
    await registry.close();
    await assert.rejects(registry.register({} as never), (e: unknown) => e instanceof FarcallError && e.code === "unavailable");
  });
});
