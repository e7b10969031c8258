// `npm start`: the seed's demo as separate processes. Two providers of InfoUserService and one
// consumer share a fresh local registry; while the consumer runs its steady phase, provider 1 gets
// SIGTERM and must shut down without failing a single call. Exit code 0 only when no call failed.
import { rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { DemoChild, describeExit } from "./demo-child.js";
import type { ConsumerMessage, ProviderMessage } from "./demo-messages.js";
import { type ProviderOutcome, summarize } from "./demo-summary.js";

/** Longest wait, in ms, for any one report of a child; past it the demo fails. */
const reportTimeoutMs = 20_000;
/** How far into the consumer's steady phase, in ms, provider 1 gets SIGTERM. */
const sigtermAfterMs = 1000;

const started = performance.now();
const registryDirectory = await mkdtemp(join(tmpdir(), "farcall-demo-"));
// A fresh local registry unless FARCALL_REGISTRY names one (e.g. zookeeper://127.0.0.1:2181).
const registry = process.env["FARCALL_REGISTRY"] || `local://${registryDirectory}`;
const env = { ...process.env, FARCALL_REGISTRY: registry };
const children: Array<DemoChild<ProviderMessage> | DemoChild<ConsumerMessage>> = [];

function killChildren(): void {
  for (const child of children) child.signal("SIGKILL");
}

process.once("SIGINT", () => {
  killChildren();
  rmSync(registryDirectory, { recursive: true, force: true });
  process.exit(130);
});

function provider(n: number): DemoChild<ProviderMessage> {
  const child = new DemoChild<ProviderMessage>(`info-user-provider-${n}`, new URL("./info-user-provider.js", import.meta.url), [String(n)], env);
  children.push(child);
  return child;
}

/** Sends SIGTERM and collects the provider's report and exit. */
async function stop(child: DemoChild<ProviderMessage>): Promise<ProviderOutcome> {
  const signalledAt = performance.now();
  child.signal("SIGTERM");
  const report = await child.next("stopped", reportTimeoutMs);
  const exit = await child.exit(reportTimeoutMs);
  return {
    name: report.name,
    pid: report.pid,
    served: report.served,
    closeMs: report.closeMs,
    exitMs: Math.round(exit.at - signalledAt),
    exitCode: exit.code,
  };
}

try {
  console.log(`farcall demo: the seed's InfoUserService; registry ${registry}`);
  const providers = [provider(1), provider(2)];
  // `listening` is sent after start(), which resolves once the provider is registered.
  await Promise.all(providers.map((p) => p.next("listening", reportTimeoutMs)));

  const consumer = new DemoChild<ConsumerMessage>("info-user-consumer", new URL("./info-user-consumer.js", import.meta.url), [], env);
  children.push(consumer);
  for (const [phase, what] of [
    ["insert", "100 concurrent insertInfoUser calls"],
    ["getAll", "1000 concurrent getAllUser calls"],
  ] as const) {
    await consumer.next("phase", reportTimeoutMs, (m) => m.phase === phase && m.state === "started");
    console.log(`demo: consumer: ${what}`);
    await consumer.next("phase", reportTimeoutMs, (m) => m.phase === phase && m.state === "done");
  }
  await consumer.next("phase", reportTimeoutMs, (m) => m.phase === "steady" && m.state === "started");
  console.log("demo: consumer: steady mix of reads and writes at a fixed rate");

  await sleep(sigtermAfterMs);
  const [first, second] = providers as [DemoChild<ProviderMessage>, DemoChild<ProviderMessage>];
  const sigtermAt = Date.now();
  console.log(`demo: SIGTERM to info-user-provider-1 (pid ${first.pid}) while calls continue`);
  const stopped = await stop(first);

  const results = await consumer.next("results", reportTimeoutMs);
  const consumerExit = await consumer.exit(reportTimeoutMs);
  if (consumerExit.code !== 0) throw new Error(`the consumer exited with ${describeExit(consumerExit)}`);
  console.log("demo: consumer done; stopping info-user-provider-2");
  const last = await stop(second);

  const summary = summarize({
    calls: results.calls,
    sigtermAt,
    stopped,
    providers: [stopped, last],
    usersInserted: 100,
    usersSeenByGetAll: results.usersSeenByGetAll,
    durationMs: performance.now() - started,
  });
  console.log(summary.text);
  process.exitCode = summary.failed === 0 && stopped.exitCode === 0 ? 0 : 1;
} catch (error) {
  console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
} finally {
  killChildren();
  await rm(registryDirectory, { recursive: true, force: true });
}
