import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { FarcallError } from "../errors/farcall-error.js";
import type { Endpoint } from "./endpoint.js";
import { currentHost, serviceDirectoryName, writeFileAtomically } from "./local-registry-entries.js";
import { type LocalRegistryOptions, localRegistry } from "./local-registry.js";
import type { Registry } from "./registry.js";
import { sampleEndpoint } from "./sample-endpoint.js";

const fast: LocalRegistryOptions = { heartbeatIntervalMs: 50, expireAfterMs: 300, pollIntervalMs: 25 };

function endpoint(service: string, port: number, pid = process.pid): Endpoint {
  return sampleEndpoint(service, port, { pid });
}

async function withDirectory(body: (directory: string) => Promise<void>): Promise<void> {
  const directory = await mkdtemp(join(tmpdir(), "farcall-local-test-"));
  try {
    await body(directory);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

/** Watches `service` and returns a getter of the last delivered ports. */
function watchPorts(registry: Registry, service: string): () => number[] | undefined {
  let last: number[] | undefined;
  registry.watch(service, (list) => {
    last = list.map((e) => e.port).sort((a, b) => a - b);
  });
  return () => last;
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let round = 0; round < 10_000 && !(await condition()); round++) {
    if (Date.now() > deadline) assert.fail(`no ${what} within ${timeoutMs} ms`);
    await delay(5);
  }
}

async function entryFile(directory: string, service: string, pid: number, port: number, host = currentHost()): Promise<string> {
  const serviceDirectory = join(directory, serviceDirectoryName(service));
  await mkdir(serviceDirectory, { recursive: true });
  const path = join(serviceDirectory, `${pid}-hand-${port}.json`);
  await writeFile(path, JSON.stringify({ farcallLocalRegistry: 1, host, pid, endpoint: endpoint(service, port, pid) }));
  return path;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  await new Promise((resolve) => child.once("exit", resolve));
  assert.ok(child.pid !== undefined);
  return child.pid;
}

describe("localRegistry files", () => {
  it("ignores and sweeps an entry whose heartbeat is older than expireAfterMs", () =>
    withDirectory(async (directory) => {
      const stale = await entryFile(directory, "s", process.pid, 1);
      const old = new Date(Date.now() - 10_000);
      await utimes(stale, old, old);
      await entryFile(directory, "s", process.pid, 2);
      const registry = localRegistry({ ...fast, directory });
      const ports = watchPorts(registry, "s");
      await until(() => ports() !== undefined, "first delivery");
      assert.deepEqual(ports(), [2]);
      assert.equal(await exists(stale), false, "stale entry swept");
      await registry.close();
    }));

  it("ignores and sweeps a fresh entry of a dead pid on this host, not one of another host", () =>
    withDirectory(async (directory) => {
      const pid = await deadPid();
      const dead = await entryFile(directory, "s", pid, 1);
      const elsewhere = await entryFile(directory, "s", pid, 2, "another-host");
      const registry = localRegistry({ ...fast, directory });
      const ports = watchPorts(registry, "s");
      await until(() => ports() !== undefined, "first delivery");
      assert.deepEqual(ports(), [2]);
      assert.equal(await exists(dead), false);
      assert.equal(await exists(elsewhere), true);
      // Another host's entry lives until its heartbeat expires.
      await until(() => ports()?.length === 0, "expiry of the other host's entry", 2000);
      await registry.close();
    }));

  it("ignores junk files and leaves them in place", () =>
    withDirectory(async (directory) => {
      await entryFile(directory, "s", process.pid, 1);
      const serviceDirectory = join(directory, serviceDirectoryName("s"));
      const junk: Record<string, string> = {
        "not-json.json": "{not json",
        "array.json": "[]",
        "wrong-format.json": JSON.stringify({ farcallLocalRegistry: 2, host: "h", pid: 1, endpoint: endpoint("s", 3) }),
        "other-service.json": JSON.stringify({ farcallLocalRegistry: 1, host: "h", pid: 1, endpoint: endpoint("t", 4) }),
        "bad-endpoint.json": JSON.stringify({ farcallLocalRegistry: 1, host: "h", pid: 1, endpoint: { service: "s" } }),
        "huge.json": JSON.stringify({ farcallLocalRegistry: 1, host: "h", pid: 1, endpoint: endpoint("s", 5), pad: "x".repeat(20_000) }),
        "not-an-entry.txt": JSON.stringify({ farcallLocalRegistry: 1, host: "h", pid: 1, endpoint: endpoint("s", 6) }),
      };
      for (const [name, content] of Object.entries(junk)) await writeFile(join(serviceDirectory, name), content);
      await mkdir(join(serviceDirectory, "directory.json"));
      await symlink(join(serviceDirectory, "not-an-entry.txt"), join(serviceDirectory, "symlink.json"));
      const fifo = spawnSync("mkfifo", [join(serviceDirectory, "fifo.json")]).status === 0;
      const registry = localRegistry({ ...fast, directory });
      const ports = watchPorts(registry, "s");
      await until(() => ports() !== undefined, "first delivery");
      assert.deepEqual(ports(), [1]);
      const left = await readdir(serviceDirectory);
      for (const name of [...Object.keys(junk), "directory.json", "symlink.json", ...(fifo ? ["fifo.json"] : [])]) {
        assert.ok(left.includes(name), `${name} left in place`);
      }
      await registry.close();
    }));

  it("writes entries atomically with private modes, and sweeps only stale temp files", () =>
    withDirectory(async (directory) => {
      const registry = localRegistry({ ...fast, directory });
      await registry.register(endpoint("s", 1));
      const serviceDirectory = join(directory, serviceDirectoryName("s"));
      const names = await readdir(serviceDirectory);
      assert.equal(names.length, 1);
      assert.match(names[0] ?? "", new RegExp(`^${process.pid}-[0-9a-f]{12}-0\\.json$`));
      assert.equal((await stat(join(serviceDirectory, names[0] ?? ""))).mode & 0o777, 0o600);
      assert.equal((await stat(directory)).mode & 0o777, 0o700);
      const staleTemp = join(serviceDirectory, ".1-x-0.json.dead.tmp");
      const freshTemp = join(serviceDirectory, ".1-x-1.json.live.tmp");
      await writeFile(staleTemp, "{");
      await writeFile(freshTemp, "{");
      const old = new Date(Date.now() - 10_000);
      await utimes(staleTemp, old, old);
      const ports = watchPorts(registry, "s");
      await until(() => ports() !== undefined, "first delivery");
      assert.deepEqual(ports(), [1]);
      assert.equal(await exists(staleTemp), false);
      assert.equal(await exists(freshTemp), true);
      await registry.close();
      assert.deepEqual((await readdir(serviceDirectory)).sort(), [".1-x-1.json.live.tmp"]);
    }));

  it("never shows a reader a partly written file", () =>
    withDirectory(async (directory) => {
      const path = join(directory, "entry.json");
      const contents = ["a", "b", "c"].map((c) => JSON.stringify({ fill: c.repeat(200_000) }));
      await writeFileAtomically(path, contents[0] ?? "");
      let writing = true;
      const writer = (async () => {
        for (let i = 0; i < 60; i++) await writeFileAtomically(path, contents[i % 3] ?? "");
        writing = false;
      })();
      let reads = 0;
      for (; writing && reads < 10_000; reads++) JSON.parse(await readFile(path, "utf8"));
      await writer;
      assert.ok(reads > 0);
      assert.deepEqual(await readdir(directory), ["entry.json"]);
    }));

  it("keeps entries alive with heartbeats, and rewrites an entry swept while stalled", () =>
    withDirectory(async (directory) => {
      const registry = localRegistry({ ...fast, directory });
      await registry.register(endpoint("s", 1));
      const ports = watchPorts(registry, "s");
      await delay(3 * fast.expireAfterMs!);
      assert.deepEqual(ports(), [1]);
      const serviceDirectory = join(directory, serviceDirectoryName("s"));
      const [name] = await readdir(serviceDirectory);
      const path = join(serviceDirectory, name ?? "");
      await rm(path);
      await until(() => exists(path), "rewrite by the next heartbeat");
      await delay(2 * fast.pollIntervalMs!);
      assert.deepEqual(ports(), [1]);
      await registry.close();
    }));

  it("keeps services with unsafe names inside the directory", () =>
    withDirectory(async (directory) => {
      const registry = localRegistry({ ...fast, directory });
      const names = ["..", ".", "a/../../b", "x".repeat(256), `${"y".repeat(200)}/z`];
      for (const [i, name] of names.entries()) await registry.register(endpoint(name, 10 + i));
      const entries = await readdir(directory);
      assert.equal(entries.length, names.length);
      for (const entry of entries) assert.ok(entry.length <= 120 && !entry.includes("/") && entry !== "." && entry !== "..");
      for (const [i, name] of names.entries()) {
        const ports = watchPorts(registry, name);
        await until(() => ports() !== undefined, `first delivery of ${name.slice(0, 20)}`);
        assert.deepEqual(ports(), [10 + i]);
      }
      await registry.close();
    }));

  it("tightens a shared directory to 0700 and refuses a non-directory", () =>
    withDirectory(async (directory) => {
      await chmod(directory, 0o755);
      const registry = localRegistry({ ...fast, directory });
      await registry.register(endpoint("s", 1));
      assert.equal((await stat(directory)).mode & 0o777, 0o700);
      await registry.close();
      const file = join(directory, "file");
      await writeFile(file, "");
      const broken = localRegistry({ ...fast, directory: file });
      await assert.rejects(broken.register(endpoint("s", 1)), (error: unknown) => {
        assert.ok(error instanceof FarcallError);
        return error.code === "permission_denied" || error.code === "internal";
      });
      await broken.close();
    }));

  it("lets close() undo a registration in flight", () =>
    withDirectory(async (directory) => {
      const registry = localRegistry({ ...fast, directory });
      const registering = registry.register(endpoint("s", 1));
      await registry.close();
      await assert.rejects(registering, (error: unknown) => error instanceof FarcallError && error.reason === "registry_closed");
      assert.deepEqual(await readdir(join(directory, serviceDirectoryName("s"))), []);
    }));

  it("rejects bad options with bad_option", () => {
    for (const options of [
      { heartbeatIntervalMs: 0 },
      { heartbeatIntervalMs: 1.5 },
      { heartbeatIntervalMs: 1000, expireAfterMs: 1500 },
      { pollIntervalMs: -1 },
      { directory: "" },
    ]) {
      assert.throws(
        () => localRegistry(options),
        (error: unknown) => error instanceof FarcallError && error.reason === "bad_option",
      );
    }
  });
});
