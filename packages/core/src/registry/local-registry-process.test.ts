import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import type { Endpoint } from "./endpoint.js";
import { localRegistry } from "./local-registry.js";

const timings = { heartbeatIntervalMs: 100, expireAfterMs: 500, pollIntervalMs: 100 };

/** A provider process: registers one endpoint, prints "registered", then idles until killed. */
const providerScript = `
const { localRegistry } = await import(process.env.FARCALL_MODULE);
const registry = localRegistry({ ...JSON.parse(process.env.FARCALL_TIMINGS), directory: process.env.FARCALL_DIRECTORY });
await registry.register({
  id: "127.0.0.1:7000//child:1#" + process.pid, service: "child", version: "1", group: "",
  host: "127.0.0.1", port: 7000, pid: process.pid,
});
process.stdout.write("registered\\n");
setInterval(() => {}, 60_000);
`;

function startProvider(directory: string): ChildProcess {
  return startChild(directory, providerScript);
}

/**
 * A rules process: publishes "from-child" as the rules of "ruled", watches them, and prints every
 * delivery as one JSON line, until killed.
 */
const rulesScript = `
const { localRegistry } = await import(process.env.FARCALL_MODULE);
const registry = localRegistry({ ...JSON.parse(process.env.FARCALL_TIMINGS), directory: process.env.FARCALL_DIRECTORY });
await registry.publishRules("ruled", "from-child");
registry.watchRules("ruled", (rules) => process.stdout.write(JSON.stringify({ rules: rules ?? null }) + "\\n"));
setInterval(() => {}, 60_000);
`;

function startChild(directory: string, script: string): ChildProcess {
  return spawn(process.execPath, ["--input-type=module", "-e", script], {
    stdio: ["ignore", "pipe", "inherit"],
    env: {
      ...process.env,
      FARCALL_MODULE: new URL("./local-registry.js", import.meta.url).href,
      FARCALL_DIRECTORY: directory,
      FARCALL_TIMINGS: JSON.stringify(timings),
    },
  });
}

async function until(condition: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let round = 0; round < 100_000 && !condition(); round++) {
    if (Date.now() > deadline) assert.fail(`no ${what} within ${timeoutMs} ms`);
    await delay(5);
  }
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
}

describe("localRegistry across processes", () => {
  it("drops the endpoint of a provider killed with SIGKILL within expireAfterMs + 1 s", async () => {
    const directory = await mkdtemp(join(tmpdir(), "farcall-local-process-"));
    const child = startProvider(directory);
    const watcher = localRegistry({ ...timings, directory });
    try {
      let output = "";
      child.stdout?.on("data", (chunk: Buffer) => {
        output += chunk.toString();
      });
      let last: readonly Endpoint[] | undefined;
      watcher.watch("child", (list) => {
        last = list;
      });
      await until(() => output.includes("registered"), "registration by the child", 10_000);
      await until(() => last?.length === 1, "the child's endpoint", 2000);
      assert.equal(last?.[0]?.pid, child.pid);
      const killedAt = Date.now();
      assert.ok(child.pid !== undefined && process.kill(child.pid, "SIGKILL"));
      await until(() => last?.length === 0, "removal of the killed child's endpoint", timings.expireAfterMs + 1000);
      const tookMs = Date.now() - killedAt;
      assert.ok(tookMs <= timings.expireAfterMs + 1000, `took ${tookMs} ms`);
    } finally {
      await kill(child);
      await watcher.close();
      await rm(directory, { recursive: true, force: true });
    }
  });

  it("carries governance rules both ways between two processes", async () => {
    const directory = await mkdtemp(join(tmpdir(), "farcall-local-process-"));
    const child = startChild(directory, rulesScript);
    const registry = localRegistry({ ...timings, directory });
    try {
      const childSaw: (string | null)[] = [];
      let pending = "";
      child.stdout?.on("data", (chunk: Buffer) => {
        pending += chunk.toString();
        const lines = pending.split("\n");
        pending = lines.pop() ?? "";
        for (const line of lines) childSaw.push((JSON.parse(line) as { rules: string | null }).rules);
      });
      let last: string | undefined;
      registry.watchRules?.("ruled", (rules) => {
        last = rules;
      });
      await until(() => last === "from-child", "the child's rules in this process", 10_000);
      await until(() => childSaw.at(-1) === "from-child", "the child's own watch", 2000);
      await registry.publishRules?.("ruled", "from-parent");
      await until(() => childSaw.at(-1) === "from-parent", "this process's rules in the child", 2000);
      await registry.publishRules?.("ruled", undefined);
      await until(() => childSaw.at(-1) === null, "the deletion in the child", 2000);
      assert.equal(childSaw.filter((r) => r === "from-parent").length, 1, JSON.stringify(childSaw));
    } finally {
      await kill(child);
      await registry.close();
      await rm(directory, { recursive: true, force: true });
    }
  });
});
