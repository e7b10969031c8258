import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FarcallError } from "@farcall/core/extension";
import { parseEtcdAddress, registryFromAddress } from "./etcd-address.js";

function rejects(address: string, pattern: RegExp): void {
  assert.throws(
    () => parseEtcdAddress(address),
    (error: unknown) => error instanceof FarcallError && error.code === "invalid_argument" && error.reason === "bad_option" && pattern.test(error.message),
  );
}

describe("parseEtcdAddress", () => {
  it("reads hosts, prefix, ttlSeconds, durations, cacheDir and credentials", () => {
    assert.deepEqual(parseEtcdAddress("etcd://127.0.0.1:2379"), { hosts: ["127.0.0.1:2379"] });
    assert.deepEqual(
      parseEtcdAddress("etcd://ops%40x:p%3Ass@a:1,b:2,[::1]:3/farcall/prod/?ttlSeconds=4&requestTimeoutMs=500&cacheGraceMs=0&cacheDir=%2Fvar%2Fcache%2Ffc"),
      {
        hosts: ["a:1", "b:2", "[::1]:3"],
        prefix: "/farcall/prod",
        auth: { user: "ops@x", password: "p:ss" },
        ttlSeconds: 4,
        requestTimeoutMs: 500,
        cacheGraceMs: 0,
        cacheDir: "/var/cache/fc",
      },
    );
    assert.equal(parseEtcdAddress("etcd://h:1?cacheDir=false").cacheDir, false);
    assert.equal(parseEtcdAddress("etcd://h:1/").prefix, undefined);
  });

  it("rejects malformed addresses without repeating the password", () => {
    rejects("etcd://", /not an etcd/);
    rejects("etcd://host", /host:port/);
    rejects("etcd://h:1,", /host:port/);
    rejects("etcd://h:1?ttlSeconds=1.5", /ttlSeconds/);
    rejects("etcd://h:1?requestTimeoutMs=abc", /requestTimeoutMs/);
    rejects("etcd://h:1?cacheGraceMs=1&cacheGraceMs=2", /twice/);
    rejects("etcd://h:1?retries=3", /unknown etcd address parameter/);
    rejects("etcd://h:1?cacheDir=", /cacheDir/);
    rejects("etcd://nopassword@h:1", /user:password/);
    rejects("zookeeper://h:1", /not an etcd/);
    for (const address of ["etcd://u:SECRET-%zz@h:1", "etcd://u:SECRET@h", "etcd://u:SECRET@h:1?ttlSeconds=x", "etcd://u:SECRET@h:1/a//b"]) {
      assert.throws(
        () => registryFromAddress(address),
        (error: unknown) => error instanceof FarcallError && error.reason === "bad_option" && !error.message.includes("SECRET"),
        address,
      );
    }
  });

  it("checks the options it builds when making the registry", () => {
    assert.throws(() => registryFromAddress("etcd://h:1?ttlSeconds=0"), (e: unknown) => e instanceof FarcallError && /ttlSeconds/.test(e.message));
    assert.throws(() => registryFromAddress("etcd://h:1/a/../b"), (e: unknown) => e instanceof FarcallError && /prefix/.test(e.message));
    assert.throws(() => registryFromAddress("etcd://h:1?requestTimeoutMs=5"), (e: unknown) => e instanceof FarcallError && /requestTimeoutMs/.test(e.message));
  });
});
