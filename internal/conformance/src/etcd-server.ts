import { execFile } from "node:child_process";
import { request } from "node:http";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
// dist/src/etcd-server.js → the repository root.
const repo = fileURLToPath(new URL("../../../../", import.meta.url));
const script = `${repo}scripts/etcd.sh`;

/**
 * Owns one named etcd instance of `scripts/etcd.sh` (its own state file, ports and lock), so a
 * test file can halt and restart its server without disturbing any other. The test file that
 * creates it calls {@link EtcdServer.stop} in `after`.
 */
export class EtcdServer {
  #port: number | undefined;

  /** `name`: [a-z0-9-]+, not "default" (kept for people running the script by hand). */
  constructor(readonly name: string) {
    if (!/^[a-z0-9-]{1,64}$/.test(name) || name === "default") throw new Error(`bad etcd instance name ${JSON.stringify(name)}`);
  }

  /** `127.0.0.1:<client port>`, once {@link start} has run. */
  get host(): string {
    if (this.#port === undefined) throw new Error(`etcd ${this.name} was never started`);
    return `127.0.0.1:${this.#port}`;
  }

  /**
   * Starts the server, or restarts a halted one on its ports with its data (leases and keys
   * restored), or reuses a running one. The first start may install Debian's package.
   */
  async start(env: Record<string, string> = {}): Promise<void> {
    const output = await this.#script(300_000, env, "start");
    const port = /^ETCD_PORT=(\d+)$/m.exec(output)?.[1];
    if (port === undefined) throw new Error(`etcd.sh start printed no port:\n${output}`);
    if (this.#port !== undefined && Number(port) !== this.#port) throw new Error(`etcd ${this.name} moved from ${this.#port} to ${port}`);
    this.#port = Number(port);
  }

  /**
   * Replaces the server by a new one with no data on the same client port, as a cluster rebuilt
   * from nothing: every lease is unknown to it and its revisions start again from 1.
   */
  async wipe(): Promise<void> {
    const port = this.#port;
    if (port === undefined) throw new Error(`etcd ${this.name} was never started`);
    await this.stop();
    await this.start({ ETCD_PORT: String(port) });
  }

  /** Stops the server process but keeps its data and ports: an outage, until {@link start}. */
  async halt(): Promise<void> {
    await this.#script(30_000, {}, "halt");
  }

  /** Stops the server and deletes its data; a no-op when nothing is recorded. Idempotent. */
  async stop(): Promise<void> {
    await this.#script(30_000, {}, "stop");
  }

  /** The server's Prometheus metrics (`GET /metrics` on the client port). */
  async metrics(): Promise<string> {
    return (await this.#http("GET", "/metrics", undefined, undefined)).body;
  }

  /**
   * One request to etcd's JSON gateway (`POST /v3/<path>`, as `etcdctl` would make over gRPC):
   * keys and values are base64, int64s decimal strings. `token` is an `auth/authenticate` token.
   * @throws when etcd answers with an error (its message and gRPC code in the error's message).
   */
  async v3<T = Record<string, unknown>>(path: string, body: object, token?: string): Promise<T> {
    const { status, body: text } = await this.#http("POST", `/v3/${path}`, JSON.stringify(body), token);
    if (status !== 200) throw new Error(`etcd ${path}: HTTP ${status}: ${text.slice(0, 300)}`);
    return JSON.parse(text) as T;
  }

  /** Every key under `prefix` with its value and lease id (`"0"` for none), sorted by key. */
  async keys(prefix: string, token?: string): Promise<Array<{ key: string; value: Buffer; lease: string }>> {
    const { kvs = [] } = await this.v3<{ kvs?: Array<{ key: string; value?: string; lease?: string }> }>("kv/range", prefixRange(prefix), token);
    return kvs.map((kv) => ({ key: fromBase64(kv.key), value: Buffer.from(kv.value ?? "", "base64"), lease: kv.lease ?? "0" }));
  }

  /** Puts `value` at `key` (no lease), as an operator's `etcdctl put` would. */
  async put(key: string, value: string | Buffer, token?: string): Promise<void> {
    await this.v3("kv/put", { key: toBase64(key), value: Buffer.from(value).toString("base64") }, token);
  }

  /** Deletes every key under `prefix` (`etcdctl del --prefix`); returns how many went. */
  async deletePrefix(prefix: string, token?: string): Promise<number> {
    const { deleted = "0" } = await this.v3<{ deleted?: string }>("kv/deleterange", prefixRange(prefix), token);
    return Number(deleted);
  }

  /** Compacts the key history up to the current revision (`etcdctl compact`); returns it. */
  async compact(): Promise<number> {
    const { header } = await this.v3<{ header: { revision: string } }>("kv/range", { key: toBase64("\0") });
    await this.v3("kv/compaction", { revision: header.revision, physical: true });
    return Number(header.revision);
  }

  #http(method: string, path: string, body: string | undefined, token: string | undefined): Promise<{ status: number; body: string }> {
    const port = this.#port;
    if (port === undefined) return Promise.reject(new Error(`etcd ${this.name} was never started`));
    return new Promise((resolve, reject) => {
      // agent: false, one connection per request: nothing stays open to count as a leak.
      const headers: Record<string, string> = token === undefined ? {} : { authorization: token };
      const req = request({ host: "127.0.0.1", port, method, path, agent: false, timeout: 5000, headers }, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (text += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on("error", reject);
      });
      req.on("timeout", () => req.destroy(new Error(`etcd ${path}: no answer in 5 s`)));
      req.on("error", reject);
      req.end(body);
    });
  }

  async #script(timeoutMs: number, env: Record<string, string>, ...args: string[]): Promise<string> {
    try {
      const { stdout } = await run("bash", [script, ...args], {
        cwd: repo,
        timeout: timeoutMs,
        env: { ...process.env, ...env, ETCD_NAME: this.name },
      });
      return stdout;
    } catch (error) {
      const { stderr, stdout } = error as { stderr?: string; stdout?: string };
      throw new Error(`ETCD_NAME=${this.name} bash scripts/etcd.sh ${args.join(" ")} failed:\n${stderr ?? ""}${stdout ?? String(error)}`, { cause: error });
    }
  }
}

const toBase64 = (text: string): string => Buffer.from(text).toString("base64");
const fromBase64 = (text: string): string => Buffer.from(text, "base64").toString("utf8");

/** The gateway's range of every key starting with `prefix`. */
function prefixRange(prefix: string): { key: string; range_end: string } {
  const end = Buffer.from(prefix);
  let i = end.length - 1;
  while (i >= 0 && end[i] === 0xff) i--;
  if (i < 0) return { key: toBase64(prefix), range_end: toBase64("\0") };
  end[i] = (end[i] as number) + 1;
  return { key: toBase64(prefix), range_end: end.subarray(0, i + 1).toString("base64") };
}

/**
 * Sums the `grpc_server_handled_total` counters of a `/metrics` page by `grpc_method`: how many
 * requests (unary calls and streams) the server has completed, per method.
 */
export function handledByMethod(metrics: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of metrics.split("\n")) {
    const match = /^grpc_server_handled_total\{([^}]*)\} (\d+(?:\.\d+)?(?:e\+\d+)?)$/.exec(line);
    if (match === null) continue;
    const method = /grpc_method="([^"]+)"/.exec(match[1] ?? "")?.[1] ?? "?";
    counts.set(method, (counts.get(method) ?? 0) + Number(match[2]));
  }
  return counts;
}
