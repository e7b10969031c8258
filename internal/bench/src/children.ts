import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

/** Every child this process forked and has not yet seen exit; each is killed by PID on the way out. */
const children = new Set<ChildProcess>();

/**
 * Extra Node flags for every child, from `BENCH_CHILD_NODE_ARGS` (space-separated), e.g.
 * `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile the clients and servers (NODE_OPTIONS refuses
 * `--cpu-prof`).
 */
const childNodeArgs = (process.env["BENCH_CHILD_NODE_ARGS"] ?? "").split(" ").filter((arg) => arg !== "");

export function forkChild(script: URL, args: readonly string[]): ChildProcess {
  const child = fork(fileURLToPath(script), args, { stdio: ["ignore", "inherit", "inherit", "ipc"], execArgv: [...process.execArgv, ...childNodeArgs] });
  children.add(child);
  child.once("exit", () => children.delete(child));
  // An IPC send racing the child's exit (EPIPE) is not worth crashing the run: the exit is seen anyway.
  child.on("error", () => undefined);
  return child;
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

export function killChild(child: ChildProcess): void {
  children.delete(child);
  if (child.pid === undefined || !isRunning(child)) return;
  try {
    process.kill(child.pid, "SIGKILL");
  } catch {
    // Already gone between the check and the kill.
  }
}

/** Asks a child to stop, gives it `graceMs` to exit, then kills it by PID regardless. */
export async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (isRunning(child) && child.connected) {
    const exited = once(child, "exit");
    child.send({ type: "stop" }, () => undefined);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
  }
  killChild(child);
}

export function killAllChildren(): void {
  for (const child of [...children]) killChild(child);
}

/** Kills all children on exit, SIGINT, SIGTERM and uncaught errors. */
export function installChildCleanup(): void {
  process.once("exit", killAllChildren);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      killAllChildren();
      process.exit(130);
    });
  }
  process.once("uncaughtException", (error) => {
    killAllChildren();
    console.error(error);
    process.exit(1);
  });
}

/** In a child: exit when the orchestrator goes away, so no server outlives a run. */
export function exitWithParent(): void {
  process.once("disconnect", () => process.exit(0));
}
