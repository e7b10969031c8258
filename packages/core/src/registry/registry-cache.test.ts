import assert from "node:assert/strict";
import fsPromises, { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { syncBuiltinESMExports } from "node:module";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, mock } from "node:test";
import { assertBadOption } from "../../test/assertions.js";
import { trackResources } from "../../test/resources.js";
import type { Endpoint } from "./endpoint.js";
import { cacheFileName, defaultRegistryCacheDir, RegistryCache } from "./registry-cache.js";
import { sampleEndpoint } from "./sample-endpoint.js";

const scope = "zookeeper://127.0.0.1:2181/farcall";

async function withDirectory(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "farcall-cache-test-"));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function list(service: string, ...ports: number[]): Endpoint[] {
  return ports.map((port) => sampleEndpoint(service, port));
}

function ports(endpoints: readonly Endpoint[] | undefined): number[] | undefined {
  return endpoints?.map((e) => e.port).sort((a, b) => a - b);
}

/** The one scope sub-directory of `dir` (created by the first save). */
async function scopeDirectory(dir: string): Promise<string> {
  const names = await readdir(dir);
  assert.equal(names.length, 1, `one scope directory in ${dir}`);
  return join(dir, names[0] ?? "");
}

/** Saves `endpoints` with a throwaway instance so the scope directory and file exist. */
async function seed(dir: string, service: string, endpoints: readonly Endpoint[]): Promise<string> {
  const cache = new RegistryCache({ dir, scope });
  cache.save(service, endpoints);
  await cache.flush();
  return join(await scopeDirectory(dir), cacheFileName(service));
}

/** Counts `fs/promises.rename` calls (every atomic write ends in one) while `body` runs. */
async function countRenames(body: () => Promise<void>): Promise<number> {
  const spy = mock.method(fsPromises, "rename");
  syncBuiltinESMExports();
  try {
    await body();
    return spy.mock.callCount();
  } finally {
    spy.mock.restore();
    syncBuiltinESMExports();
  }
}

describe("RegistryCache", () => {
  it("round-trips a list through the file, in the documented layout", () =>
    withDirectory(async (dir) => {
      const leaks = trackResources();
      const cache = new RegistryCache({ dir, scope });
      assert.equal(await cache.load("a.B"), undefined);
      cache.save("a.B", list("a.B", 2, 1));
      await cache.flush();
      assert.deepEqual(ports(await cache.load("a.B")), [1, 2]);
      assert.deepEqual(ports(await new RegistryCache({ dir, scope }).load("a.B")), [1, 2], "another instance reads it");
      const sub = await scopeDirectory(dir);
      assert.match(sub, /[/\\][0-9a-f]{16}$/);
      assert.deepEqual(await readdir(sub), ["a%2EB.json"]);
      const file = JSON.parse(await readFile(join(sub, "a%2EB.json"), "utf8")) as Record<string, unknown>;
      assert.deepEqual(Object.keys(file), ["version", "service", "savedAt", "endpoints"]);
      assert.equal(file["version"], 1);
      assert.equal(file["service"], "a.B");
      assert.ok(typeof file["savedAt"] === "number" && Math.abs(file["savedAt"] - Date.now()) < 60_000);
      if (process.platform !== "win32") {
        assert.equal((await stat(join(sub, "a%2EB.json"))).mode & 0o777, 0o600);
        assert.equal((await stat(sub)).mode & 0o777, 0o700);
      }
      await leaks();
    }));

  it("does not write an empty list; the last non-empty list stays", () =>
    withDirectory(async (dir) => {
      const cache = new RegistryCache({ dir, scope });
      cache.save("s", []);
      await cache.flush();
      assert.deepEqual(await readdir(dir), [], "nothing written, not even the directory");
      cache.save("s", list("s", 1));
      await cache.flush();
      cache.save("s", []);
      await cache.flush();
      assert.deepEqual(ports(await cache.load("s")), [1]);
    }));

  it("keeps scopes apart", () =>
    withDirectory(async (dir) => {
      const one = new RegistryCache({ dir, scope: "zookeeper://a:2181/farcall" });
      const two = new RegistryCache({ dir, scope: "zookeeper://b:2181/farcall" });
      one.save("s", list("s", 1));
      two.save("s", list("s", 2));
      await Promise.all([one.flush(), two.flush()]);
      assert.deepEqual(ports(await one.load("s")), [1]);
      assert.deepEqual(ports(await two.load("s")), [2]);
      assert.equal(await new RegistryCache({ dir, scope: "zookeeper://c:2181/farcall" }).load("s"), undefined);
      assert.equal((await readdir(dir)).length, 2);
    }));

  it("returns undefined for corrupted, oversized, foreign-service and non-file entries", () =>
    withDirectory(async (dir) => {
      const cache = new RegistryCache({ dir, scope });
      const path = await seed(dir, "s", list("s", 1));
      await writeFile(path, '{"version":1,"service":"s","endpoints":[{"id":');
      assert.equal(await cache.load("s"), undefined, "truncated JSON");
      await writeFile(path, "not json at all");
      assert.equal(await cache.load("s"), undefined, "not JSON");
      const big = JSON.stringify({ version: 1, service: "s", savedAt: 0, endpoints: list("s", 1), pad: "x".repeat(2 * 1024 * 1024) });
      await writeFile(path, big);
      assert.equal(await cache.load("s"), undefined, "2 MiB file");
      await writeFile(path, JSON.stringify({ version: 1, service: "other", savedAt: 0, endpoints: list("other", 1) }));
      assert.equal(await cache.load("s"), undefined, "file of another service");
      await writeFile(path, JSON.stringify({ version: 1, service: "s", savedAt: 0, endpoints: list("other", 1) }));
      assert.deepEqual(await cache.load("s"), [], "endpoints of another service are dropped");
      await writeFile(path, JSON.stringify({ version: 2, service: "s", savedAt: 0, endpoints: list("s", 1) }));
      assert.equal(await cache.load("s"), undefined, "another layout version");
      await writeFile(path, JSON.stringify([list("s", 1)]));
      assert.equal(await cache.load("s"), undefined, "an array");
      await rm(path);
      await mkdir(path);
      assert.equal(await cache.load("s"), undefined, "a directory");
    }));

  it("returns only the valid entries among junk, deduplicated by id", () =>
    withDirectory(async (dir) => {
      const cache = new RegistryCache({ dir, scope });
      const path = await seed(dir, "s", list("s", 1));
      const [one, two] = list("s", 1, 2);
      const junk = [null, 7, "x", [], { id: "no-host", service: "s" }, { ...one, port: 70_000 }, sampleEndpoint("t", 3)];
      const endpoints = [junk[0], one, ...junk.slice(1), one, two, { ...two, extra: "dropped" }];
      await writeFile(path, JSON.stringify({ version: 1, service: "s", savedAt: 0, endpoints }));
      const loaded = await cache.load("s");
      assert.deepEqual(ports(loaded), [1, 2]);
      assert.ok(loaded !== undefined && !("extra" in (loaded[1] ?? {})));
    }));

  it("never throws on a directory where the file should be, nor on an unwritable dir", () =>
    withDirectory(async (dir) => {
      const path = await seed(dir, "s", list("s", 1));
      await rm(path);
      await mkdir(path);
      const cache = new RegistryCache({ dir, scope });
      cache.save("s", list("s", 2));
      await cache.flush();
      assert.equal(await cache.load("s"), undefined);
      assert.deepEqual(await readdir(await scopeDirectory(dir)), ["s.json"], "no temp file left behind");

      const file = join(dir, "regular-file");
      await writeFile(file, "");
      const blocked = new RegistryCache({ dir: join(file, "cache"), scope });
      const leaks = trackResources();
      blocked.save("s", list("s", 1));
      await blocked.flush();
      assert.equal(await blocked.load("s"), undefined);
      await leaks();
    }));

  it("coalesces a burst of saves into few writes ending with the newest list", () =>
    withDirectory(async (dir) => {
      const cache = new RegistryCache({ dir, scope });
      const renames = await countRenames(async () => {
        for (let i = 1; i <= 100; i++) cache.save("s", list("s", i, 1000 + i));
        await cache.flush();
      });
      assert.deepEqual(ports(await cache.load("s")), [100, 1100]);
      assert.ok(renames >= 1 && renames <= 3, `${renames} writes for 100 saves`);
    }));

  it("skips writing a list equal to the last one written, whatever its order", () =>
    withDirectory(async (dir) => {
      const cache = new RegistryCache({ dir, scope });
      cache.save("s", list("s", 1, 2));
      await cache.flush();
      const renames = await countRenames(async () => {
        for (let i = 0; i < 10; i++) {
          cache.save("s", i % 2 === 0 ? list("s", 1, 2) : list("s", 2, 1));
          await cache.flush();
        }
        cache.save("s", list("s", 1, 2, 3));
        await cache.flush();
      });
      assert.equal(renames, 1, "only the changed list is written");
    }));

  it("never shows a concurrent reader a torn file", () =>
    withDirectory(async (dir) => {
      const writer = new RegistryCache({ dir, scope });
      const reader = new RegistryCache({ dir, scope });
      const a = list("s", 1, 2, 3);
      const b = list("s", ...Array.from({ length: 200 }, (_, i) => 10_000 + i));
      let writing = true;
      const seen = { a: 0, b: 0, none: 0 };
      const reading = (async () => {
        for (let round = 0; round < 100_000 && (writing || round === 0); round++) {
          const loaded = await reader.load("s");
          if (loaded === undefined) {
            assert.equal(seen.a + seen.b, 0, "undefined only before the first write");
            seen.none++;
          } else if (loaded.length === a.length) {
            assert.deepEqual(loaded, a);
            seen.a++;
          } else {
            assert.deepEqual(loaded, b);
            seen.b++;
          }
        }
      })();
      for (let i = 0; i < 200; i++) {
        writer.save("s", i % 2 === 0 ? a : b);
        if (i % 4 === 3) await writer.flush();
        else await new Promise((resolve) => setImmediate(resolve));
      }
      await writer.flush();
      writing = false;
      await reading;
      assert.ok(seen.a + seen.b > 0, `the reader saw written lists: ${JSON.stringify(seen)}`);
      assert.deepEqual(await readdir(await scopeDirectory(dir)), ["s.json"], "no temp file left behind");
    }));

  it("lets concurrent writers of one service end with one complete file", () =>
    withDirectory(async (dir) => {
      const writers = Array.from({ length: 4 }, () => new RegistryCache({ dir, scope }));
      for (let round = 0; round < 20; round++) {
        writers.forEach((writer, n) => writer.save("s", list("s", n + 1, 100 + round)));
        await Promise.all(writers.map((writer) => writer.flush()));
      }
      const loaded = ports(await new RegistryCache({ dir, scope }).load("s"));
      assert.ok(loaded?.length === 2 && loaded[1] === 119, `a complete last list: ${JSON.stringify(loaded)}`);
    }));

  it("names files safely and shortens long names", () => {
    assert.equal(cacheFileName("com.example.UserService"), "com%2Eexample%2EUserService.json");
    assert.equal(cacheFileName(".."), "%2E%2E.json");
    assert.equal(cacheFileName("a/b:c"), "a%2Fb%3Ac.json");
    const long = cacheFileName("x/".repeat(200));
    assert.ok(long.length < 200, long);
    assert.notEqual(long, cacheFileName(`${"x/".repeat(200)}y`));
  });

  it("validates its options", () => {
    assertBadOption(() => new RegistryCache({ dir: "", scope }), "dir");
    assertBadOption(() => new RegistryCache({ dir: "/tmp", scope: "" }), "scope");
  });
});

describe("defaultRegistryCacheDir", () => {
  it("honours an absolute XDG_CACHE_HOME, else uses ~/.cache", () => {
    assert.equal(defaultRegistryCacheDir({ XDG_CACHE_HOME: "/var/cache/me" }), join("/var/cache/me", "farcall", "registry"));
    assert.equal(defaultRegistryCacheDir({}), join(homedir(), ".cache", "farcall", "registry"));
    assert.equal(defaultRegistryCacheDir({ XDG_CACHE_HOME: "" }), join(homedir(), ".cache", "farcall", "registry"));
    assert.equal(defaultRegistryCacheDir({ XDG_CACHE_HOME: "relative" }), join(homedir(), ".cache", "farcall", "registry"));
  });
});
