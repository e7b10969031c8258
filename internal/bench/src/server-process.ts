/**
 * Server child: `node server-process.js <system>`. Starts the system's echo server on
 * 127.0.0.1, replies `ready` with its port, then answers `cpu` snapshots until `stop`.
 */
import { exitWithParent } from "./children.js";
import { errorMessage, reply, type ServerRequest } from "./ipc.js";
import { isSystemName, loadSystem } from "./systems/index.js";
import type { ServerHandle } from "./system.js";

exitWithParent();

async function main(): Promise<void> {
  const name = process.argv[2] ?? "";
  if (!isSystemName(name)) throw new Error(`unknown system "${name}"`);
  const system = await loadSystem(name);
  const server: ServerHandle = await system.startServer();
  process.on("message", (request: ServerRequest) => {
    if (request.type === "cpu") {
      reply({ type: "cpu", usage: process.cpuUsage() });
    } else {
      void server.close().finally(() => process.exit(0));
    }
  });
  reply({ type: "ready", port: server.port });
}

main().catch((error: unknown) => {
  reply({ type: "failed", message: errorMessage(error) });
  process.exitCode = 1;
  process.disconnect?.();
});
