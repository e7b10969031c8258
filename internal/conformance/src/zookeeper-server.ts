import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
// dist/src/zookeeper-server.js → the repository root.
const repo = fileURLToPath(new URL("../../../../", import.meta.url));
const script = `${repo}scripts/zookeeper.sh`;

/**
 * Owns one named ZooKeeper instance of `scripts/zookeeper.sh` (its own state file, port and lock),
 * so a fault test can halt and restart its server without disturbing the shared default one. The
 * test file that creates it calls {@link ZookeeperServer.stop} in `after`.
 */
export class ZookeeperServer {
  #port: number | undefined;

  /** `name`: [a-z0-9-]+, not "default" (the instance other test files share). */
  constructor(readonly name: string) {
    if (!/^[a-z0-9-]{1,64}$/.test(name) || name === "default") throw new Error(`bad ZooKeeper instance name ${JSON.stringify(name)}`);
  }

  /** `127.0.0.1:<port>`, once {@link start} has run. */
  get connect(): string {
    if (this.#port === undefined) throw new Error(`ZooKeeper ${this.name} was never started`);
    return `127.0.0.1:${this.#port}`;
  }

  /**
   * Starts the server, or restarts a halted one on its port with its data (sessions and ephemeral
   * nodes restored), or reuses a running one. The first start may install Debian's package.
   */
  async start(env: Record<string, string> = {}): Promise<void> {
    const output = await this.#script(300_000, env, "start");
    const port = /^ZOOKEEPER_PORT=(\d+)$/m.exec(output)?.[1];
    if (port === undefined) throw new Error(`zookeeper.sh start printed no port:\n${output}`);
    if (this.#port !== undefined && Number(port) !== this.#port) throw new Error(`ZooKeeper ${this.name} moved from ${this.#port} to ${port}`);
    this.#port = Number(port);
  }

  /**
   * Replaces the server by a new one with no data on the same port, as a rebuilt ensemble: every
   * client's session is unknown to it.
   */
  async wipe(): Promise<void> {
    const port = this.#port;
    if (port === undefined) throw new Error(`ZooKeeper ${this.name} was never started`);
    await this.stop();
    await this.start({ ZOOKEEPER_PORT: String(port) });
  }

  /** Stops the server process but keeps its data and port: an outage, until {@link start}. */
  async halt(): Promise<void> {
    await this.#script(30_000, {}, "halt");
  }

  /** Stops the server and deletes its data; a no-op when nothing is recorded. Idempotent. */
  async stop(): Promise<void> {
    await this.#script(30_000, {}, "stop");
  }

  /**
   * Runs one zkCli command as an operator with full rights (e.g. `"deleteall", path`) and returns
   * its output without connection noise; rejects when the command fails (message has stderr).
   */
  async zkcli(...args: string[]): Promise<string> {
    return this.#script(40_000, {}, "zkcli", ...args);
  }

  /**
   * The children of `path` as `zkcli ls` prints them (`[a, b]`). zkCli may wrap a long list over
   * several lines (seen in CI: `[a\n, \nb, c]`), so the last bracketed span is read across them.
   */
  async children(path: string): Promise<string[]> {
    const output = await this.zkcli("ls", path);
    // The last span that opens a line with "[" and closes a line with "]" (log lines start otherwise).
    const list = [...output.matchAll(/(?:^|\n)\[([^[\]]*)\][ \t]*(?=\n|$)/g)].at(-1);
    if (list === undefined) throw new Error(`zkcli ls ${path}: no list in ${JSON.stringify(output)}`);
    return (list[1] as string).split(",").map((name) => name.trim()).filter((name) => name !== "");
  }

  /**
   * The last `limit` lines of the server's log that match `pattern` (the log lives in the data
   * dir, kept across halts), for failure messages; empty when there is no log.
   */
  async logLines(pattern: RegExp, limit = 20): Promise<string[]> {
    try {
      const state = await readFile(`${repo}.tmp/zookeeper-${this.name}.env`, "utf8");
      const dir = /^ZOOKEEPER_DIR=(\/tmp\/farcall-zookeeper\.[A-Za-z0-9]+)$/m.exec(state)?.[1];
      if (dir === undefined) return [];
      const log = await readFile(`${dir}/zookeeper.log`, "utf8");
      return log.split("\n").filter((line) => pattern.test(line)).slice(-limit);
    } catch {
      return [];
    }
  }

  async #script(timeoutMs: number, env: Record<string, string>, ...args: string[]): Promise<string> {
    try {
      const { stdout } = await run("bash", [script, ...args], {
        cwd: repo,
        timeout: timeoutMs,
        env: { ...process.env, ...env, ZOOKEEPER_NAME: this.name },
      });
      return stdout;
    } catch (error) {
      const { stderr, stdout } = error as { stderr?: string; stdout?: string };
      throw new Error(`ZOOKEEPER_NAME=${this.name} bash scripts/zookeeper.sh ${args.join(" ")} failed:\n${stderr ?? ""}${stdout ?? String(error)}`, {
        cause: error,
      });
    }
  }
}
