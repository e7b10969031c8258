import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { FarcallError } from "../errors/farcall-error.js";
import type { Endpoint } from "./endpoint.js";
import { maxGovernanceRulesBytes, parseGovernanceRules } from "./governance-rules.js";
import { currentHost, serviceDirectoryName, writeFileAtomically } from "./local-registry-entries.js";
import { rulesDirectory, rulesFile } from "./local-registry-rules.js";
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

/** Watches the rules of `service`; returns every delivery so far. */
function watchRules(registry: Registry, service: string): (string | undefined)[] {
  const seen: (string | undefined)[] = [];
  registry.watchRules?.(service, (rules) => seen.push(rules));
  return seen;
}

describe("localRegistry governance rules", () => {
  it("stores one file per service under .rules (0700, files 0600), replaced atomically, deleted by undefined", () =>
    withDirectory(async (directory) => {
      const registry = localRegistry({ ...fast, directory });
      const names = ["s", "..", "a/../../b", "x".repeat(256)];
      for (const [i, name] of names.entries()) await registry.publishRules?.(name, `{"n":${i}}`);
      assert.deepEqual((await readdir(directory)).sort(), [".rules"], "no service directory for rules");
      assert.equal((await stat(rulesDirectory(directory))).mode & 0o777, 0o700);
      const files = await readdir(rulesDirectory(directory));
      assert.equal(files.length, names.length);
      for (const file of files) assert.ok(file.endsWith(".json") && !file.startsWith(".") && file.length <= 125, file);
      for (const [i, name] of names.entries()) {
        const path = rulesFile(directory, name);
        assert.equal(await readFile(path, "utf8"), `{"n":${i}}`);
        assert.equal((await stat(path)).mode & 0o777, 0o600);
      }
      await registry.publishRules?.("s", undefined);
      await registry.publishRules?.("s", undefined);
      assert.equal(await exists(rulesFile(directory, "s")), false);
      await registry.close();
      assert.equal(await exists(rulesFile(directory, "..")), true, "rules outlive close()");
    }));

  it("lands the writes of one instance in call order", () =>
    withDirectory(async (directory) => {
      const registry = localRegistry({ ...fast, directory });
      const publish = registry.publishRules?.bind(registry);
      assert.ok(publish !== undefined);
      const writes = Array.from({ length: 20 }, (_, i) => publish("s", i % 7 === 6 ? undefined : `{"n":${i}}`));
      await Promise.all(writes);
      assert.equal(await readFile(rulesFile(directory, "s"), "utf8"), '{"n":19}');
      assert.deepEqual(await readdir(rulesDirectory(directory)), [rulesFile(directory, "s").slice(rulesDirectory(directory).length + 1)], "no temp file left");
      await registry.close();
    }));

  it("delivers a hand-written file, and reads junk as untrusted: empty, oversized, symlink, FIFO, directory", () =>
    withDirectory(async (directory) => {
      const registry = localRegistry({ ...fast, directory });
      const path = rulesFile(directory, "s");
      await mkdir(rulesDirectory(directory), { recursive: true });
      await writeFile(path, '{"tagForce":true}');
      const seen = watchRules(registry, "s");
      await until(() => seen.at(-1) === '{"tagForce":true}', "the hand-written rules");
      // Edited in place, same size: a new mtime is a change.
      await delay(20);
      await writeFile(path, '{"tagForce":null}');
      await until(() => seen.at(-1) === '{"tagForce":null}', "the rules edited in place");
      await writeFile(path, "");
      await until(() => seen.at(-1) === undefined, "an empty file as no rules");
      // Oversized: cut after the limit + 1 bytes, so the parser rejects it as too large.
      // writeFile is not atomic: a poll may read part of it first (delivered, and refused by the
      // parser like any junk); wait for the whole file's cut.
      await writeFile(path, `{"comment":"${"é".repeat(60_000)}"}`);
      await until(() => Buffer.byteLength(seen.at(-1) ?? "") > maxGovernanceRulesBytes, "the oversized text");
      const cut = seen.at(-1) ?? "";
      assert.ok(Buffer.byteLength(cut) > maxGovernanceRulesBytes && Buffer.byteLength(cut) <= maxGovernanceRulesBytes + 3, `${Buffer.byteLength(cut)} bytes`);
      assert.throws(() => parseGovernanceRules(cut), (error: unknown) => error instanceof FarcallError && error.reason === "bad_rules");
      await rm(path);
      await until(() => seen.at(-1) === undefined, "deletion by hand");
      const target = join(directory, "elsewhere.json");
      await writeFile(target, '{"routes":[]}');
      await symlink(target, path);
      await delay(4 * fast.pollIntervalMs!);
      assert.equal(seen.at(-1), undefined, "a symlink is not followed");
      await rm(path);
      if (spawnSync("mkfifo", [path]).status === 0) {
        await delay(4 * fast.pollIntervalMs!);
        assert.equal(seen.at(-1), undefined, "a FIFO is no rules, and does not block");
        await rm(path);
      }
      await mkdir(path);
      await delay(4 * fast.pollIntervalMs!);
      assert.equal(seen.at(-1), undefined, "a directory is no rules");
      await rm(path, { recursive: true });
      await writeFile(path, '{"version":1}');
      await until(() => seen.at(-1) === '{"version":1}', "rules after the junk");
      for (let i = 1; i < seen.length; i++) assert.notEqual(seen[i], seen[i - 1], "an equal text delivered twice in a row");
      await registry.close();
    }));

  it("sees another instance's change by polling alone, and delivers undefined first when the directory is unusable", () =>
    withDirectory(async (directory) => {
      const publisher = localRegistry({ ...fast, directory });
      const consumer = localRegistry({ ...fast, directory });
      await publisher.publishRules?.("s", "{}");
      const seen = watchRules(consumer, "s");
      await until(() => seen.at(-1) === "{}", "the other instance's rules");
      // Replace the rules directory: the consumer's fs watcher now watches a deleted directory.
      await rm(rulesDirectory(directory), { recursive: true });
      await mkdir(rulesDirectory(directory), { mode: 0o700 });
      await publisher.publishRules?.("s", '{"tagForce":false}');
      await until(() => seen.at(-1) === '{"tagForce":false}', "a change seen by the poll");
      await Promise.all([publisher.close(), consumer.close()]);
      const file = join(directory, "file");
      await writeFile(file, "");
      const broken = localRegistry({ ...fast, directory: file });
      const none = watchRules(broken, "s");
      await until(() => none.length > 0, "the first delivery of a broken directory");
      assert.deepEqual(none, [undefined]);
      await assert.rejects(broken.publishRules?.("s", "{}") ?? Promise.resolve(), (error: unknown) => {
        assert.ok(error instanceof FarcallError);
        return error.code === "permission_denied" || error.code === "internal";
      });
      await broken.close();
    }));
});
