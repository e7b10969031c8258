import { createHook } from "node:async_hooks";
import { readdirSync, readlinkSync } from "node:fs";
import { setTimeout as delay } from "node:timers/promises";

/**
 * Async resource types that are handles or pending I/O. FILEHANDLE is left out (its destroy hook
 * waits for garbage collection); open file descriptors are counted instead.
 */
const trackedTypes = new Set([
  "Timeout",
  "Immediate",
  "FSEVENTWRAP",
  "STATWATCHER",
  "FSREQCALLBACK",
  "FSREQPROMISE",
  "TCPWRAP",
  "TCPSERVERWRAP",
  "TCPCONNECTWRAP",
  "PIPEWRAP",
  "PIPESERVERWRAP",
  "PIPECONNECTWRAP",
  "PROCESSWRAP",
  "UDPWRAP",
  "SIGNALWRAP",
  "GETADDRINFOREQWRAP",
]);

function countBy(items: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(item, (counts.get(item) ?? 0) + 1);
  return counts;
}

/** Open descriptors by kind (`file`, `socket`, `pipe`), where /proc/self/fd exists. */
function openDescriptors(): Map<string, number> {
  const kinds: string[] = [];
  let fds: string[];
  try {
    fds = readdirSync("/proc/self/fd");
  } catch {
    return new Map();
  }
  for (const fd of fds) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // the descriptor readdir itself used, already closed
    }
    // anon_inode (inotify, epoll, eventfd) descriptors belong to the event loop, which keeps them.
    if (target.startsWith("/")) kinds.push("file");
    else if (target.startsWith("socket:")) kinds.push("socket");
    else if (target.startsWith("pipe:")) kinds.push("pipe");
  }
  return countBy(kinds);
}

function growth(before: Map<string, number>, after: Map<string, number>): string[] {
  const grown: string[] = [];
  for (const [kind, count] of after) {
    const was = before.get(kind) ?? 0;
    if (count > was) grown.push(`${kind} ${was} → ${count}`);
  }
  return grown;
}

/** Watches resource creation from {@link trackResources} until {@link ResourceTracker.assertReleased}. */
export interface ResourceTracker {
  /**
   * Waits up to `settleMs` (default 1000) for every resource created since tracking began to be
   * released, then fails with the list of leaks. Resources created after this call are ignored.
   */
  assertReleased(settleMs?: number): Promise<void>;
  /** Disables the hook; idempotent. */
  stop(): void;
}

/**
 * Starts tracking handles, timers (ref'd or not), pending requests and open descriptors, for a
 * test that must leave none behind. Three views: `process.getActiveResourcesInfo()` counts by
 * type, an async hook's live set (which also sees unref'd timers and watchers) and, on Linux,
 * `/proc/self/fd`.
 */
export function trackResources(): ResourceTracker {
  const activeBefore = countBy(process.getActiveResourcesInfo());
  const descriptorsBefore = openDescriptors();
  const live = new Map<number, string>();
  let recording = true;
  const hook = createHook({
    init(asyncId, type) {
      if (recording && trackedTypes.has(type)) live.set(asyncId, type);
    },
    destroy(asyncId) {
      live.delete(asyncId);
    },
  }).enable();

  const leaks = (): string[] => [
    ...growth(activeBefore, countBy(process.getActiveResourcesInfo())).map((l) => `active ${l}`),
    ...[...countBy([...live.values()])].map(([type, count]) => `created and not destroyed: ${type} × ${count}`),
    ...growth(descriptorsBefore, openDescriptors()).map((l) => `descriptors ${l}`),
  ];

  return {
    async assertReleased(settleMs = 1000): Promise<void> {
      recording = false;
      const deadline = Date.now() + settleMs;
      let found = leaks();
      for (let round = 0; found.length > 0 && Date.now() < deadline && round < 1000; round++) {
        await delay(10);
        found = leaks();
      }
      if (found.length > 0) throw new Error(`leaked resources after ${settleMs} ms:\n  ${found.join("\n  ")}`);
    },
    stop(): void {
      recording = false;
      hook.disable();
    },
  };
}
