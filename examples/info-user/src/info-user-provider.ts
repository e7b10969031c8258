// A provider process of the seed's InfoUserService: `node info-user-provider.js [N]` serves it as
// `info-user-provider-N`, registered in the registry FARCALL_REGISTRY names (default `local`, the
// embedded registry of this machine). On SIGTERM or SIGINT it closes gracefully (unregister, tell
// consumers it is closing, finish running calls), then reports how many calls it served and exits.
import { setTimeout as sleep } from "node:timers/promises";
import { type CallContext, createApplication, type Implementation, type MethodNames } from "@farcall/core";
import { onParentLost, report } from "./demo-messages.js";
import { type InfoUser, InfoUserService } from "./info-user-service.js";

/** Calls executed, by method. */
export type ServedCounts = Record<MethodNames<InfoUserService>, number>;

/**
 * Simulated storage latency of every call, in ms. It keeps some calls running when SIGTERM arrives,
 * so the graceful shutdown has calls to wait for, as a real database-backed provider would.
 */
const storageLatencyMs = 2;

function storage(ctx: CallContext): Promise<void> {
  // The context's signal aborts when the caller's connection drops or the deadline passes.
  return sleep(storageLatencyMs, undefined, { signal: ctx.signal });
}

/**
 * The seed's `InfoUserServiceImpl`: a Map in this process stands in for the database, so every
 * provider process has its own users. Counts each executed call in `served`.
 */
export function createInfoUserService(served: ServedCounts): Implementation<InfoUserService> {
  const users = new Map<string, InfoUser>();
  return {
    async insertInfoUser(ctx, user) {
      served.insertInfoUser++;
      await storage(ctx);
      users.set(user.id, user);
      return [...users.values()];
    },
    async getInfoUserById(ctx, id) {
      served.getInfoUserById++;
      await storage(ctx);
      return users.get(id);
    },
    async deleteInfoUserById(ctx, id) {
      served.deleteInfoUserById++;
      await storage(ctx);
      return users.delete(id);
    },
    async getNameById(ctx, id) {
      served.getNameById++;
      await storage(ctx);
      return users.get(id)?.name;
    },
    async getAllUser(ctx) {
      served.getAllUser++;
      await storage(ctx);
      return new Map(users);
    },
  };
}

const name = `info-user-provider-${process.argv[2] ?? "1"}`;
const served: ServedCounts = { insertInfoUser: 0, getInfoUserById: 0, deleteInfoUserById: 0, getNameById: 0, getAllUser: 0 };
// handleSignals is off so that the served-call report can follow the drain (see `stop`).
const app = createApplication({ name, handleSignals: false });
app.provide(InfoUserService, createInfoUserService(served));
await app.start();
const host = app.address?.host ?? "?";
const port = app.address?.port ?? 0;
console.log(`${name}: serving ${InfoUserService.name}:${InfoUserService.version} on ${host}:${port} (pid ${process.pid}, ${app.registry.kind} registry)`);
await report({ type: "listening", name, pid: process.pid, host, port });

let stopping = false;
async function stop(reason: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  const startedAt = performance.now();
  try {
    await app.close();
  } catch (error) {
    console.error(`${name}: close failed after ${reason}:`, error);
    process.exit(1);
  }
  const closeMs = Math.round(performance.now() - startedAt);
  const total = Object.values(served).reduce((a, b) => a + b, 0);
  console.log(`${name}: ${reason}: closed gracefully in ${closeMs} ms; served ${total} calls`);
  await report({ type: "stopped", name, pid: process.pid, served, closeMs });
  process.exit(0);
}

process.once("SIGTERM", () => void stop("SIGTERM"));
process.once("SIGINT", () => void stop("SIGINT"));
onParentLost(() => void stop("demo gone"));
