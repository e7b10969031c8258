// A provider in its own process for socket tests: serves test.UserService on 127.0.0.1:0 and
// prints `{"port":N}` once listening. Options come from FARCALL_* variables.
import { setTimeout as sleep } from "node:timers/promises";
import { createApplication } from "../src/application.js";
import { Users } from "./fixtures.js";

const name = process.argv[2] ?? "child";
const app = createApplication({ name, host: "127.0.0.1", port: 0 });
app.provide(Users, {
  get: () => undefined,
  insert: () => 1,
  fail: (_ctx, message) => {
    throw new Error(message);
  },
  slow: async (_ctx, ms) => {
    await sleep(ms);
    return "done";
  },
  echo: (_ctx, value) => value,
  notify: () => {},
  whoami: () => name,
  big: (_ctx, bytes) => "x".repeat(bytes),
});
await app.start();
process.stdout.write(`${JSON.stringify({ port: app.address?.port, pid: process.pid })}\n`);
