// A provider in its own process for the registry fault tests: serves faults.Echo on
// 127.0.0.1:0, registered in the registry FARCALL_REGISTRY names (zookeeper://, etcd://, …), and
// prints one JSON line {"port","pid","registeredAt"} once start() has resolved. SIGTERM drains
// and ends it (handleSignals); the tests mostly SIGKILL, SIGSTOP and SIGCONT it.
import { createApplication } from "@farcall/core";
import { FaultsEcho } from "./faults-echo.js";

const registry = process.env["FARCALL_REGISTRY"];
if (registry === undefined || registry === "") {
  process.stderr.write("fault-provider-process: FARCALL_REGISTRY must name a registry\n");
  process.exit(2);
}
const app = createApplication({
  name: process.argv[2] ?? "faults-provider",
  registry,
  host: "127.0.0.1",
  port: 0,
  warmupMs: 0,
  handleSignals: true,
  env: {},
});
app.provide(FaultsEcho, {
  whoami: (_ctx, n) => ({ pid: process.pid, n }),
  append: (_ctx, n) => ({ pid: process.pid, n }),
});
await app.start();
process.stdout.write(`${JSON.stringify({ port: app.address?.port, pid: process.pid, registeredAt: Date.now() })}\n`);
