import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FarcallError } from "@farcall/core/extension";
import { parseRedisAddress, registryFromAddress } from "./redis-address.js";
import { redisRegistry } from "./redis-registry.js";

function rejects(address: string, pattern: RegExp): void {
  assert.throws(
    () => parseRedisAddress(address),
    (error: unknown) => error instanceof FarcallError && error.code === "invalid_argument" && error.reason === "bad_option" && pattern.test(error.message),
  );
}

function badOption(make: () => unknown, option: string): void {
  assert.throws(make, (error: unknown) => error instanceof FarcallError && error.reason === "bad_option" && error.details?.["option"] === option);
}

describe("parseRedisAddress", () => {
  it("reads host, port, db, credentials, prefix, durations and cacheDir", () => {
    assert.deepEqual(parseRedisAddress("redis://127.0.0.1:6379"), { host: "127.0.0.1", port: 6379 });
    assert.deepEqual(parseRedisAddress("redis://redis.internal"), { host: "redis.internal" });
    assert.deepEqual(parseRedisAddress("redis://[::1]:7000/3"), { host: "[::1]", port: 7000, db: 3 });
    assert.deepEqual(parseRedisAddress("redis://:p%40ss%3Aword@h:1/"), { host: "h", port: 1, password: "p@ss:word" });
    assert.deepEqual(
      parseRedisAddress(
        "redis://ops%40x:s3cret@h:6380/2?prefix=fc-prod&heartbeatMs=1000&expireAfterMs=4000&sweepMs=500&pollMs=250&requestTimeoutMs=700&cacheGraceMs=0&cacheDir=%2Fvar%2Fcache%2Ffc",
      ),
      {
        host: "h",
        port: 6380,
        db: 2,
        username: "ops@x",
        password: "s3cret",
        prefix: "fc-prod",
        heartbeatMs: 1000,
        expireAfterMs: 4000,
        sweepMs: 500,
        pollMs: 250,
        requestTimeoutMs: 700,
        cacheGraceMs: 0,
        cacheDir: "/var/cache/fc",
      },
    );
    assert.equal(parseRedisAddress("redis://h:1?cacheDir=false").cacheDir, false);
  });

  it("rejects malformed addresses without repeating the password", () => {
    rejects("redis://", /not a redis/);
    rejects("rediss://h:1", /not a redis/);
    rejects("redis://h:1/x", /database number/);
    rejects("redis://h a:1", /host/);
    rejects("redis://h:1?heartbeatMs=abc", /heartbeatMs/);
    rejects("redis://h:1?pollMs=1&pollMs=2", /twice/);
    rejects("redis://h:1?retries=3", /unknown redis address parameter/);
    rejects("redis://h:1?cacheDir=", /cacheDir/);
    rejects("redis://nopassword@h:1", /password/);
    rejects("redis://user:@h:1", /password/);
    for (const address of ["redis://u:SECRET-%zz@h:1", "redis://u:SECRET@h:99999999", "redis://:SECRET@h:1/x", "redis://u:SECRET@h:1?sweepMs=-1"]) {
      assert.throws(
        () => registryFromAddress(address),
        (error: unknown) => error instanceof FarcallError && !error.message.includes("SECRET") && !JSON.stringify(error.details ?? {}).includes("SECRET"),
        address,
      );
    }
  });
});

describe("redisRegistry options", () => {
  it("rejects invalid options at construction, naming the option", () => {
    badOption(() => redisRegistry({ host: "a b" }), "host");
    badOption(() => redisRegistry({ port: 0 }), "port");
    badOption(() => redisRegistry({ db: -1 }), "db");
    badOption(() => redisRegistry({ prefix: "a:b" }), "prefix");
    badOption(() => redisRegistry({ username: "u" }), "username");
    badOption(() => redisRegistry({ heartbeatMs: 50 }), "heartbeatMs");
    badOption(() => redisRegistry({ heartbeatMs: 1000, expireAfterMs: 2000 }), "expireAfterMs");
    badOption(() => redisRegistry({ heartbeatMs: 500, expireAfterMs: 2000, sweepMs: 1000 }), "sweepMs");
    badOption(() => redisRegistry({ pollMs: 1.5 }), "pollMs");
    badOption(() => redisRegistry({ cacheDir: "" }), "cacheDir");
    assert.throws(
      () => redisRegistry({ password: "SECRET", heartbeatMs: 1 }),
      (error: unknown) => error instanceof FarcallError && !error.message.includes("SECRET"),
    );
  });

  it("builds a registry without connecting, and closes it at once", async () => {
    const registry = registryFromAddress("redis://127.0.0.1:1/0?cacheDir=false");
    assert.equal(registry.kind, "redis");
    await registry.close();
  });
});
