// Two providing applications in one process, both with handleSignals on: one SIGTERM must drain
// both before the process ends. Prints "ready" once both listen, then "closed <name>" per app.
import { createApplication } from "../src/application.js";
import { Users } from "./fixtures.js";

for (const name of ["a", "b"]) {
  const app = createApplication({ name, registry: "memory", env: {}, graceMs: 2000 });
  app.provide(Users, {
    get: () => undefined,
    insert: () => 1,
    fail: () => undefined,
    slow: () => "done",
    echo: (_ctx, v) => v,
    notify: () => {},
    whoami: () => name,
    big: (_ctx, bytes) => "x".repeat(bytes),
  });
  await app.start();
  const close = app.close.bind(app);
  Object.assign(app, {
    close: async () => {
      await close();
      process.stdout.write(`closed ${name}\n`);
    },
  });
}
process.stdout.write("ready\n");
setInterval(() => {}, 1000); // stay alive until a signal
