import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Redis } from "ioredis";

const run = promisify(execFile);
// dist/src/redis-server.js → the repository root.
const repo = fileURLToPath(new URL("../../../../", import.meta.url));
const script = `${repo}scripts/redis.sh`;

/**
 * Owns one named Redis instance of `scripts/redis.sh` (its own state file, port and lock), so a
 * fault test can halt and restart its server without disturbing any other test file. The test
 * file that creates it calls {@link RedisServer.stop} in `after`.
 */
export class RedisServer {
  #port: number | undefined;
  readonly #clients = new Set<Redis>();

  /**
   * `name`: [a-z0-9-]+, not "default". `appendonly`: whether a halted server comes back with its
   * data (the append-only file), as a production server with persistence does; without it every
   * restart is an empty server.
   */
  constructor(
    readonly name: string,
    readonly appendonly = true,
  ) {
    if (!/^[a-z0-9-]{1,64}$/.test(name) || name === "default") throw new Error(`bad Redis instance name ${JSON.stringify(name)}`);
  }

  get port(): number {
    if (this.#port === undefined) throw new Error(`Redis ${this.name} was never started`);
    return this.#port;
  }

  /** `redis://127.0.0.1:<port>`, once {@link start} has run. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /**
   * Starts the server, or restarts a halted one on its port (with its data when `appendonly`),
   * or reuses a running one. The first start may install Debian's package.
   */
  async start(env: Record<string, string> = {}): Promise<void> {
    const output = await this.#script(300_000, env, "start");
    const port = /^REDIS_PORT=(\d+)$/m.exec(output)?.[1];
    if (port === undefined) throw new Error(`redis.sh start printed no port:\n${output}`);
    if (this.#port !== undefined && Number(port) !== this.#port) throw new Error(`Redis ${this.name} moved from ${this.#port} to ${port}`);
    this.#port = Number(port);
  }

  /** Stops the server process but keeps its data and port: an outage, until {@link start}. */
  async halt(): Promise<void> {
    await this.#script(30_000, {}, "halt");
  }

  /** Replaces the server by an empty one on the same port (a server rebuilt, or without persistence). */
  async wipe(): Promise<void> {
    const port = this.port;
    await this.#script(30_000, {}, "stop");
    await this.start({ REDIS_PORT: String(port) });
  }

  /** Stops the server and deletes its data; a no-op when nothing is recorded. Idempotent. */
  async stop(): Promise<void> {
    for (const client of this.#clients) client.disconnect();
    this.#clients.clear();
    await this.#script(30_000, {}, "stop");
  }

  /**
   * A plain client, as an operator's redis-cli would be, once connected (disconnected by
   * {@link stop}, or by the caller). It does not queue commands while the server is down: they
   * fail at once.
   */
  async client(): Promise<Redis> {
    const client = new Redis({ host: "127.0.0.1", port: this.port, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
    client.on("error", () => undefined);
    this.#clients.add(client);
    client.once("end", () => this.#clients.delete(client));
    await client.connect();
    return client;
  }

  /** The server's log lines that match `pattern` (last `limit`), for failure messages. */
  async logLines(pattern: RegExp, limit = 20): Promise<string[]> {
    try {
      const state = await readFile(`${repo}.tmp/redis-${this.name}.env`, "utf8");
      const dir = /^REDIS_DIR=(\/tmp\/farcall-redis\.[A-Za-z0-9]+)$/m.exec(state)?.[1];
      if (dir === undefined) return [];
      const log = await readFile(`${dir}/redis.log`, "utf8");
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
        env: { ...process.env, ...env, REDIS_NAME: this.name, REDIS_APPENDONLY: this.appendonly ? "yes" : "no" },
      });
      return stdout;
    } catch (error) {
      const { stderr, stdout } = error as { stderr?: string; stdout?: string };
      throw new Error(`REDIS_NAME=${this.name} bash scripts/redis.sh ${args.join(" ")} failed:\n${stderr ?? ""}${stdout ?? String(error)}`, { cause: error });
    }
  }
}
