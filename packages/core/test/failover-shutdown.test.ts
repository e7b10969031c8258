// Multi-process cluster tests on the local registry: a provider killed with SIGKILL under load
// loses no idempotent call; a provider stopped with SIGTERM under load loses no call at all.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { createApplication } from "../src/application.js";
import { FarcallError } from "../src/errors/farcall-error.js";
import { Users } from "./fixtures.js";
import { startProviderProcess } from "./processes.js";

/** Keeps `concurrency` calls in flight until `stop()` (bounded by maxCalls); counts outcomes. */
function load(call: () => Promise<unknown>, concurrency: number, maxCalls: number) {
  let running = true;
  let started = 0;
  const failures: FarcallError[] = [];
  let ok = 0;
  const worker = async (): Promise<void> => {
    while (running && started < maxCalls) {
      started++;
      try {
        await call();
        ok++;
      } catch (error) {
        failures.push(FarcallError.from(error));
      }
    }
  };
  const done = Promise.all(Array.from({ length: concurrency }, worker));
  return {
    stop: async () => {
      running = false;
      await done;
      return { ok, failures };
    },
  };
}

describe("failover and graceful shutdown across processes", () => {
  it("loses no idempotent call when a provider is killed with SIGKILL under load", async () => {
    const dir = await mkdtemp(join(tmpdir(), "farcall-test-"));
    const registry = `local://${dir}`;
    const victim = await startProviderProcess("victim", { FARCALL_REGISTRY: registry, FARCALL_WARMUP_MS: "0" });
    const survivor = await startProviderProcess("survivor", { FARCALL_REGISTRY: registry, FARCALL_WARMUP_MS: "0" });
    const consumer = createApplication({ name: "c", registry, env: {}, handleSignals: false, timeoutMs: 5000 });
    try {
      const users = consumer.client(Users);
      const served = new Map<string, number>();
      const run = load(async () => {
        const who = await users.whoami();
        served.set(who, (served.get(who) ?? 0) + 1);
        await users.slow(5);
      }, 32, 200_000);
      await sleep(700);
      victim.kill();
      await sleep(1200);
      const { ok, failures } = await run.stop();
      assert.deepEqual(failures.map((f) => `${f.code}: ${f.message}`), []);
      assert.ok((served.get("victim") ?? 0) > 0 && (served.get("survivor") ?? 0) > 0, `served: ${JSON.stringify([...served])}`);
      assert.ok(ok > 100);
    } finally {
      victim.kill();
      survivor.kill();
      await consumer.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("loses no call, non-idempotent included, when a provider stops with SIGTERM under load", async () => {
    const dir = await mkdtemp(join(tmpdir(), "farcall-test-"));
    const registry = `local://${dir}`;
    const leaving = await startProviderProcess("leaving", { FARCALL_REGISTRY: registry, FARCALL_WARMUP_MS: "0", FARCALL_GRACE_MS: "5000" });
    const staying = await startProviderProcess("staying", { FARCALL_REGISTRY: registry, FARCALL_WARMUP_MS: "0" });
    const consumer = createApplication({ name: "c", registry, env: {}, handleSignals: false, timeoutMs: 10_000 });
    try {
      const users = consumer.client(Users);
      const run = load(() => Promise.all([users.insert({ id: "1", name: "n", age: 1, tags: [] }), users.slow(50)]), 32, 200_000);
      await sleep(700);
      const signaledAt = Date.now();
      leaving.child.kill("SIGTERM");
      const exit = await leaving.exited;
      const exitMs = Date.now() - signaledAt;
      await sleep(300);
      const { ok, failures } = await run.stop();
      assert.deepEqual(failures.map((f) => `${f.code}: ${f.message}`), []);
      assert.equal(exit, "SIGTERM", "the provider drained and let SIGTERM end it");
      assert.ok(exitMs < 5000 + 1000, `exited ${exitMs} ms after SIGTERM`);
      assert.ok(ok > 100);
    } finally {
      leaving.kill();
      staying.kill();
      await consumer.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("drains every providing application of a process on one SIGTERM, then lets the signal end it", async () => {
    const script = fileURLToPath(new URL("./two-providers-process.js", import.meta.url));
    const child = spawn(process.execPath, [script], { stdio: ["ignore", "pipe", "inherit"] });
    try {
      let output = "";
      const exited = new Promise<string>((resolve) => child.once("exit", (code, signal) => resolve(signal ?? String(code))));
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("the child did not start within 15 s")), 15_000);
        child.stdout?.on("data", (d: Buffer) => {
          output += d.toString();
          if (output.includes("ready")) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      child.kill("SIGTERM");
      assert.equal(await exited, "SIGTERM");
      assert.match(output, /closed a/);
      assert.match(output, /closed b/);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
  });
});
