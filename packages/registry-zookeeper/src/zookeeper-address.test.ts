import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FarcallError } from "@farcall/core/extension";
import { parseZookeeperAddress } from "./zookeeper-address.js";

function rejects(address: string, pattern: RegExp): void {
  assert.throws(
    () => parseZookeeperAddress(address),
    (error: unknown) => error instanceof FarcallError && error.code === "invalid_argument" && error.reason === "bad_option" && pattern.test(error.message),
  );
}

describe("parseZookeeperAddress", () => {
  it("reads hosts, root, durations, cacheDir and digest credentials", () => {
    assert.deepEqual(parseZookeeperAddress("zookeeper://127.0.0.1:2181"), { connect: "127.0.0.1:2181" });
    assert.deepEqual(
      parseZookeeperAddress("zookeeper://ops%40x:p%3Ass@a:1,b:2/farcall/prod/?sessionTimeoutMs=4000&requestTimeoutMs=500&cacheGraceMs=0&cacheDir=%2Fvar%2Fcache%2Ffc"),
      {
        connect: "a:1,b:2",
        root: "/farcall/prod",
        digest: { user: "ops@x", password: "p:ss" },
        sessionTimeoutMs: 4000,
        requestTimeoutMs: 500,
        cacheGraceMs: 0,
        cacheDir: "/var/cache/fc",
      },
    );
    assert.equal(parseZookeeperAddress("zookeeper://h:1?cacheDir=false").cacheDir, false);
  });

  it("rejects malformed addresses without repeating the password", () => {
    rejects("zookeeper://", /not a zookeeper/);
    rejects("zookeeper://host", /host:port/);
    rejects("zookeeper://h:1?sessionTimeoutMs=abc", /sessionTimeoutMs/);
    rejects("zookeeper://h:1?sessionTimeoutMs=1&sessionTimeoutMs=2", /twice/);
    rejects("zookeeper://h:1?retries=3", /unknown zookeeper address parameter/);
    rejects("zookeeper://h:1?cacheDir=", /cacheDir/);
    rejects("zookeeper://nopassword@h:1", /user:password/);
    assert.throws(
      () => parseZookeeperAddress("zookeeper://u:SECRET-%zz@h:1"),
      (error: unknown) => error instanceof FarcallError && !error.message.includes("SECRET"),
    );
    assert.throws(
      () => parseZookeeperAddress("zookeeper://u:SECRET@h"),
      (error: unknown) => error instanceof FarcallError && !error.message.includes("SECRET"),
    );
  });
});
