// The consumer process of the demo, doing what the seed's test does (100 concurrent inserts, then
// 1000 concurrent getAllUser calls) and then a steady mix of calls for a few seconds, during which
// the demo stops one provider. It records every call and reports them all at the end.
import { AsyncLocalStorage } from "node:async_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { createApplication, FarcallError, type LoadBalancer, type Stub, weightedRandom } from "@farcall/core";
import { type CallRecord, onParentLost, type Phase, report } from "./demo-messages.js";
import { type InfoUser, InfoUserService } from "./info-user-service.js";

/** Length of the steady phase in ms, and its call rate per second. */
const steadyMs = 4000;
const steadyCallsPerSecond = 400;
const steadyTickMs = 5;

/**
 * Which provider served a call: the seed's methods carry no provider name, and the contract should
 * not grow one for a demo. The load balancer knows: the balancer below wraps the default one and
 * notes each pick in the calling call's async context, so the pick of the last attempt (the one
 * that answered) ends up in that call's record. Providers count what they executed on their side;
 * the demo checks that the two agree.
 */
const pickSlot = new AsyncLocalStorage<{ provider: string }>();

function recordingBalancer(inner: LoadBalancer): LoadBalancer {
  return {
    name: inner.name,
    pick(endpoints, call, now) {
      const endpoint = inner.pick(endpoints, call, now);
      const slot = pickSlot.getStore();
      if (slot !== undefined && endpoint !== undefined) slot.provider = endpoint.application;
      return endpoint;
    },
  };
}

const name = "info-user-consumer";
const records: CallRecord[] = [];
let failuresLogged = 0;

/** Runs one call, recording its latency, outcome and provider; never rejects. */
async function timed<R>(phase: Phase, method: keyof Stub<InfoUserService>, invoke: () => Promise<R>): Promise<R | undefined> {
  const slot = { provider: "" };
  const startedAt = Date.now();
  const started = performance.now();
  let outcome: CallRecord["outcome"] = "ok";
  try {
    return await pickSlot.run(slot, invoke);
  } catch (error) {
    const farcallError = FarcallError.from(error);
    outcome = farcallError.code;
    if (failuresLogged++ < 5) {
      console.error(`${name}: ${method} failed: ${farcallError.code} (sent: ${farcallError.sent}): ${farcallError.message}`, farcallError.details);
    }
    return undefined;
  } finally {
    const latencyMs = Math.round((performance.now() - started) * 100) / 100;
    records.push({ phase, method, startedAt, latencyMs, outcome, provider: slot.provider });
  }
}

function user(id: string): InfoUser {
  return { id, name: `user ${id}`, address: `${id} Seed Street` };
}

const app = createApplication({ name });
onParentLost(() => process.exit(1));
const users = app.client(InfoUserService, { loadBalancer: recordingBalancer(weightedRandom()) });

// The seed's test, part 1: 100 concurrent inserts.
await report({ type: "phase", phase: "insert", state: "started" });
const ids = Array.from({ length: 100 }, (_, i) => `u${i}`);
await Promise.all(ids.map((id) => timed("insert", "insertInfoUser", () => users.insertInfoUser(user(id)))));
await report({ type: "phase", phase: "insert", state: "done" });

// Part 2: 1000 concurrent getAllUser calls. Each provider keeps its own users (the seed's HashMap),
// so every reply is a subset; together they hold every inserted user.
await report({ type: "phase", phase: "getAll", state: "started" });
const seen = new Set<string>();
const maps = await Promise.all(Array.from({ length: 1000 }, () => timed("getAll", "getAllUser", () => users.getAllUser())));
for (const map of maps) for (const id of map?.keys() ?? []) seen.add(id);
await report({ type: "phase", phase: "getAll", state: "done" });

// Part 3: a steady mix of reads and writes at a fixed rate; the demo stops a provider meanwhile.
await report({ type: "phase", phase: "steady", state: "started" });
const steady: Array<Promise<unknown>> = [];
const inserted: string[] = [];
function steadyCall(n: number): Promise<unknown> {
  const known = ids[n % ids.length] as string;
  const slot = n % 20;
  if (slot < 8) return timed("steady", "getInfoUserById", () => users.getInfoUserById(known));
  if (slot < 13) return timed("steady", "getNameById", () => users.getNameById(known));
  if (slot < 16) return timed("steady", "getAllUser", () => users.getAllUser());
  if (slot < 19) {
    const id = `s${n}`;
    inserted.push(id);
    return timed("steady", "insertInfoUser", () => users.insertInfoUser(user(id)));
  }
  return timed("steady", "deleteInfoUserById", () => users.deleteInfoUserById(inserted.shift() ?? known));
}
const steadyStart = performance.now();
for (let issued = 0; ; ) {
  const elapsedMs = performance.now() - steadyStart;
  if (elapsedMs >= steadyMs) break;
  const due = Math.floor((elapsedMs * steadyCallsPerSecond) / 1000);
  while (issued < due) steady.push(steadyCall(issued++));
  await sleep(steadyTickMs);
}
await Promise.all(steady);
await report({ type: "phase", phase: "steady", state: "done" });

await report({ type: "results", name, calls: records, usersSeenByGetAll: seen.size });
await app.close();
process.exit(0);
