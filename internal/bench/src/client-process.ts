/**
 * Client child: `node client-process.js <system>`. Opens one client per cell (`open`),
 * runs load on it (`run`, used for warm-up and for the measured window alike) and
 * reports what it measured, including its own CPU time for the run.
 */
import { exitWithParent } from "./children.js";
import { errorMessage, reply, type ClientRequest } from "./ipc.js";
import { runLoad } from "./load.js";
import { payloadOf } from "./payloads.js";
import { isSystemName, loadSystem } from "./systems/index.js";
import type { ClientHandle, System } from "./system.js";

exitWithParent();

let client: ClientHandle | undefined;

async function handle(system: System, request: ClientRequest): Promise<void> {
  switch (request.type) {
    case "open":
      await client?.close();
      client = await system.createClient({ port: request.port, concurrency: request.concurrency });
      reply({ type: "opened" });
      return;
    case "run": {
      if (client === undefined) throw new Error("run before open");
      const cpuBefore = process.cpuUsage();
      const result = await runLoad({
        call: client.callFor(request.kind),
        value: payloadOf(request.kind),
        concurrency: request.concurrency,
        durationMs: request.durationMs,
        maxCalls: request.maxCalls,
      });
      const cpu = process.cpuUsage(cpuBefore);
      reply({ type: "ran", result: { ...result, clientCpuUs: cpu.user + cpu.system } });
      return;
    }
    case "close":
      await client?.close();
      client = undefined;
      reply({ type: "closed" });
      return;
    case "stop":
      await client?.close();
      process.exit(0);
  }
}

async function main(): Promise<void> {
  const name = process.argv[2] ?? "";
  if (!isSystemName(name)) throw new Error(`unknown system "${name}"`);
  const system = await loadSystem(name);
  process.on("message", (request: ClientRequest) => {
    handle(system, request).catch((error: unknown) => reply({ type: "failed", message: errorMessage(error) }));
  });
  reply({ type: "ready" });
}

main().catch((error: unknown) => {
  reply({ type: "failed", message: errorMessage(error) });
  process.exitCode = 1;
  process.disconnect?.();
});
