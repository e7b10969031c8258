import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** A running `fault-provider-process.js` and what it printed once registered. */
export interface ProviderProcess {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
  /** `Date.now()` in the child right after its `start()` resolved (same machine clock). */
  readonly registeredAt: number;
  readonly child: ChildProcess;
  /** Resolves with the exit signal or code once the child has exited. */
  readonly exited: Promise<string>;
}

/** Every child spawned here and not yet seen exiting, for {@link killAll} in `after`. */
const live = new Set<ChildProcess>();

function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/**
 * Spawns a provider process registered through `registry` (a registry address) and waits, at
 * most `timeoutMs`, for its JSON line. A child that does not report in time is SIGKILLed.
 */
export function spawnProvider(name: string, registry: string, timeoutMs = 20_000): Promise<ProviderProcess> {
  return spawnReporting(new URL("./fault-provider-process.js", import.meta.url), name, { FARCALL_REGISTRY: registry }, timeoutMs);
}

/**
 * Spawns `script` (a provider process of this directory) with `name` as its argument and `env`
 * over this process's environment, and waits, at most `timeoutMs`, for the JSON line it prints
 * once registered (`{ port, pid, registeredAt }`). A child that does not report in time, or
 * reports something else, is SIGKILLed; {@link killAll} ends the others.
 */
export async function spawnReporting(script: URL, name: string, env: Record<string, string>, timeoutMs = 20_000): Promise<ProviderProcess> {
  const child = spawn(process.execPath, [fileURLToPath(script), name], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  live.add(child);
  const exited = new Promise<string>((resolve) =>
    child.once("exit", (code, signal) => {
      live.delete(child);
      resolve(signal ?? String(code));
    }),
  );
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let buffered = "";
      const timer = setTimeout(() => reject(new Error(`provider ${name} did not register within ${timeoutMs} ms`)), timeoutMs);
      child.stdout?.on("data", (chunk: Buffer) => {
        buffered += chunk.toString();
        const end = buffered.indexOf("\n");
        if (end < 0) return;
        clearTimeout(timer);
        resolve(buffered.slice(0, end));
      });
      void exited.then((how) => {
        clearTimeout(timer);
        reject(new Error(`provider ${name} exited (${how}) before registering`));
      });
    });
    const { port, pid, registeredAt } = JSON.parse(line) as { port: number; pid: number; registeredAt: number };
    if (!Number.isInteger(port) || pid !== child.pid || !Number.isFinite(registeredAt)) throw new Error(`provider ${name} printed ${line}`);
    child.stdout?.resume(); // nothing more is read; never let a full pipe block the child
    return { name, pid, port, registeredAt, child, exited };
  } catch (error) {
    signal(child, "SIGKILL");
    throw error;
  }
}

/** Sends `sig` to the child by its pid, unless it has exited already. */
export function signal(child: ChildProcess, sig: "SIGKILL" | "SIGSTOP" | "SIGCONT" | "SIGTERM"): void {
  if (running(child) && child.pid !== undefined) process.kill(child.pid, sig);
}

/** Waits at most `timeoutMs` for the provider to exit; resolves with how it ended, or rejects. */
export async function awaitExit(provider: ProviderProcess, timeoutMs = 10_000): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`provider ${provider.name} (pid ${provider.pid}) still running after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([provider.exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** SIGKILLs the provider (SIGKILL also ends a stopped process) and waits for its exit. */
export async function killProvider(provider: ProviderProcess): Promise<string> {
  signal(provider.child, "SIGKILL");
  return awaitExit(provider, 5000);
}

/** SIGKILLs every child spawned here that is still running, each by its pid; for `after`. */
export async function killAll(): Promise<void> {
  const exits = [...live].map(
    (child) =>
      new Promise<void>((resolve) => {
        if (!running(child)) return resolve();
        child.once("exit", () => resolve());
        signal(child, "SIGKILL");
      }),
  );
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(exits), new Promise<void>((resolve) => (timer = setTimeout(resolve, 5000)))]);
  clearTimeout(timer);
}
