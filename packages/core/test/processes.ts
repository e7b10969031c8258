import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** A provider child process (test/provider-process.ts) and the port it listens on. */
export interface ProviderProcess {
  readonly child: ChildProcess;
  readonly port: number;
  /** Resolves with the exit signal or code. */
  readonly exited: Promise<string>;
  /** SIGKILLs the child if still running. Idempotent. */
  kill(): void;
}

/** Starts `provider-process.js` with extra environment; waits (at most 15 s) for its port. */
export async function startProviderProcess(name: string, env: Record<string, string>): Promise<ProviderProcess> {
  const script = fileURLToPath(new URL("./provider-process.js", import.meta.url));
  const child = spawn(process.execPath, [script, name], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise<string>((resolve) => child.once("exit", (code, signal) => resolve(signal ?? String(code))));
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  try {
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} did not start within 15 s`)), 15_000);
      child.stdout?.once("data", (d: Buffer) => {
        clearTimeout(timer);
        resolve(d.toString());
      });
      child.once("exit", () => {
        clearTimeout(timer);
        reject(new Error(`${name} exited early`));
      });
    });
    const { port } = JSON.parse(line) as { port: number };
    return { child, port, exited, kill };
  } catch (error) {
    kill();
    throw error;
  }
}
