import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { createApplication, defineService } from "@farcall/core";
import { zookeeperRegistry } from "@farcall/registry-zookeeper";
import { type RegistryPair, registryConformance } from "./registry-conformance.js";

// Against a real ZooKeeper started by the project's own script (which installs Debian's package
// when missing). Never skipped: if ZooKeeper cannot be started, `before` fails and so does every case.

const run = promisify(execFile);
// dist/src/zookeeper.test.js → the repository root.
const repo = fileURLToPath(new URL("../../../../", import.meta.url));
const script = `${repo}scripts/zookeeper.sh`;
let connect = "";
let startedHere = false;

async function zookeeper(command: "start" | "stop"): Promise<string> {
  try {
    const { stdout } = await run("bash", [script, command], { cwd: repo, timeout: 300_000 });
    return stdout;
  } catch (error) {
    const { stderr } = error as { stderr?: string };
    throw new Error(`bash scripts/zookeeper.sh ${command} failed:\n${stderr ?? String(error)}`, { cause: error });
  }
}

// The first start installs Debian's zookeeper package (about 17 s here): allow for a slow mirror.
before(async () => {
  const output = await zookeeper("start");
  startedHere = output.split("\n").includes("started");
  const state = await readFile(`${repo}.tmp/zookeeper.env`, "utf8");
  const port = /^ZOOKEEPER_PORT=(\d+)$/m.exec(state)?.[1];
  if (port === undefined) throw new Error(`no ZOOKEEPER_PORT in ${repo}.tmp/zookeeper.env:\n${state}`);
  connect = `127.0.0.1:${port}`;
}, { timeout: 300_000 });

after(async () => {
  // A server that was already running (started by hand or by CI) is left to its owner.
  if (startedHere) await zookeeper("stop");
});

registryConformance(
  "zookeeper",
  async (): Promise<RegistryPair> => {
    // A root of its own per case, so that cases never see each other's nodes.
    const root = `/farcall-conformance-${randomBytes(6).toString("hex")}`;
    // A cache directory of its own (the default is under ~/.cache), removed with the pair.
    const cacheDir = await mkdtemp(join(tmpdir(), "farcall-conformance-cache-"));
    const options = { connect, root, sessionTimeoutMs: 4000, requestTimeoutMs: 4000, cacheDir };
    const a = zookeeperRegistry(options);
    const b = zookeeperRegistry(options);
    return {
      a,
      b,
      async cleanup() {
        // The root's persistent parent nodes stay until the server (and its data dir) is stopped.
        await Promise.all([a.close(), b.close()]);
        await rm(cacheDir, { recursive: true, force: true });
      },
    };
  },
  { settleMs: 2000 },
);

describe("a zookeeper:// registry address", () => {
  it("lets a provider and a consumer find each other, as FARCALL_REGISTRY=zookeeper://… would", async () => {
    interface Greeter {
      greet(name: string): string;
    }
    const Greeter = defineService<Greeter>("conformance.Greeter", { version: "1", methods: { greet: { idempotent: true } } });
    const registry = `zookeeper://${connect}/farcall-e2e-${randomBytes(6).toString("hex")}?sessionTimeoutMs=4000&cacheDir=false`;
    const base = { env: {}, handleSignals: false, warmupMs: 0 } as const;
    const provider = createApplication({ ...base, name: "zk-provider", registry });
    const consumer = createApplication({ ...base, name: "zk-consumer", registry });
    try {
      provider.provide(Greeter, { greet: (_ctx, name) => `hello ${name}` });
      await provider.start();
      assert.equal(provider.registry.kind, "zookeeper");
      assert.equal(await consumer.client(Greeter).greet("zk"), "hello zk");
    } finally {
      await consumer.close();
      await provider.close();
    }
  });
});
