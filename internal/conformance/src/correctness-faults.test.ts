// Multi-process correctness tests on ZooKeeper (RELIABILITY.md T07, T13, T20): what the caller
// sees against what the providers executed. Each provider records every request that reached its
// implementation (correctness-provider-process.ts); the consumer logs every call and attempt
// (correctness-cluster.ts). Bars are the acceptance bars only; every figure is printed as a
// diagnostic, and all missed bars of a case are reported together.
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, describe, it, type TestContext } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { withOptions } from "@farcall/core";
import { sampleEndpoint } from "@farcall/core/testing";
import { type CallLog, type CorrectnessProvider, killCorrectnessProviders, latencySummary, withCorrectnessCluster } from "./correctness-cluster.js";
import { type Arrival, executed, faultOf, type ProviderMode, type ProviderRecord } from "./correctness-records.js";
import { FaultsEcho } from "./faults-echo.js";
import { PacedLoad } from "./paced-load.js";
import { awaitExit, signal } from "./processes.js";
import { until } from "./until.js";
import { ZookeeperServer } from "./zookeeper-server.js";

const sessionTimeoutMs = 4000;
/** The application's default call deadline, which T07 and T20 keep. */
const defaultTimeoutMs = 5000;
/** The application's default drain time, which T20's provider keeps. */
const defaultGraceMs = 10_000;
const zk = new ZookeeperServer("correctness");
const cluster = (providers: number, mode: ProviderMode, env: Record<string, string>, body: Parameters<typeof withCorrectnessCluster>[1]): Promise<void> =>
  withCorrectnessCluster({ zk, sessionTimeoutMs, providers, mode, env }, body);

/** Violations of acceptance bars, reported all at once (so one run tells the whole story). */
function bars(t: TestContext) {
  const problems: string[] = [];
  return {
    check(ok: boolean, message: string): void {
      if (!ok) problems.push(message);
    },
    note(message: string): void {
      t.diagnostic(message);
    },
    done(): void {
      assert.deepEqual(problems, [], `${problems.length} acceptance bar(s) missed:\n- ${problems.join("\n- ")}`);
    },
  };
}

/** Every arrival of every provider, by request id, with the provider that recorded it. */
function arrivalsById(records: Map<CorrectnessProvider, ProviderRecord>, method: string): Map<number, { provider: CorrectnessProvider; arrival: Arrival }[]> {
  const byId = new Map<number, { provider: CorrectnessProvider; arrival: Arrival }[]>();
  for (const [provider, record] of records) {
    for (const arrival of record.arrivals) {
      if (arrival.method !== method) continue;
      const list = byId.get(arrival.n);
      if (list === undefined) byId.set(arrival.n, [{ provider, arrival }]);
      else list.push({ provider, arrival });
    }
  }
  return byId;
}

/** Request ids executed more than once, and successful calls without exactly one matching execution. */
function executionAudit(calls: readonly CallLog[], byId: ReturnType<typeof arrivalsById>) {
  const duplicates: number[] = [];
  const unrecorded: number[] = [];
  for (const call of calls) {
    const execs = (byId.get(call.n) ?? []).filter((a) => executed(a.arrival.outcome));
    if (execs.length > 1) duplicates.push(call.n);
    if (call.pid !== undefined && !execs.some((e) => e.provider.pid === call.pid)) unrecorded.push(call.n);
  }
  return { duplicates, unrecorded };
}

/** Counts of `keys`, as `key n, …` (most frequent first, at most `limit`). */
function tally(keys: readonly string[], limit = 8): string {
  const counts = new Map<string, number>();
  for (const key of keys) counts.set(key, (counts.get(key) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1]).slice(0, limit).map(([k, n]) => `${n} × ${k}`).join("; ") || "none";
}

/** Failed calls grouped by method, code, `sent` and message, for messages. */
function failureGroups(calls: readonly CallLog[]): string {
  return tally(calls.flatMap((c) => (c.error ? [`${c.method} ${c.error.code} sent=${c.error.sent}: ${c.error.message}`] : [])));
}

/**
 * T13's comparison of the caller's attempts with what reached the providers (each request
 * carries its attempt number): which bars each call breaks, and what each injected fault became.
 */
function retryAudit(calls: readonly CallLog[], byId: ReturnType<typeof arrivalsById>) {
  const violations = { retryAfterSent: [] as number[], retryAfterArrival: [] as number[], sentFalseButArrived: [] as number[], twoArrivals: [] as number[], phantom: [] as number[], faultSucceeded: [] as string[], okMismatch: [] as number[] };
  const v = violations;
  /** `outcome → code` of every request that met a fault. */
  const faults: string[] = [];
  let retried = 0;
  let refusedAttempts = 0;
  for (const call of calls) {
    const arrivals = (byId.get(call.n) ?? []).map((a) => a.arrival);
    const last = call.attempts.at(-1);
    if (call.attempts.length > 1) retried++;
    for (const [k, a] of call.attempts.entries()) {
      if (a.error?.sent === false) refusedAttempts++;
      if (a.error?.sent === false && arrivals.some((r) => r.attempt === a.attempt)) v.sentFalseButArrived.push(call.n);
      if (k > 0 && call.attempts[k - 1]?.error?.sent !== false) v.retryAfterSent.push(call.n);
    }
    if (last !== undefined && arrivals.some((r) => r.attempt < last.attempt)) v.retryAfterArrival.push(call.n);
    if (arrivals.length > 1) v.twoArrivals.push(call.n);
    if (arrivals.some((r) => r.attempt < 0 || r.attempt >= call.attempts.length)) v.phantom.push(call.n);
    for (const r of arrivals) {
      if (r.outcome === "exec") continue;
      faults.push(`${r.outcome} → ${call.error?.code ?? "ok"}`);
      if (call.error === undefined) v.faultSucceeded.push(`${r.outcome} #${call.n}`);
    }
    if (call.pid !== undefined) {
      const execs = arrivals.filter((r) => executed(r.outcome));
      if (execs.length !== 1 || execs[0]?.attempt !== last?.attempt) v.okMismatch.push(call.n);
    }
  }
  return { violations, faults, retried, refusedAttempts };
}

/** Ports nothing listens on: bound once on 127.0.0.1, then closed. */
async function closedPorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  for (let i = 0; i < count; i++) {
    const server = createServer();
    await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, "127.0.0.1", resolve));
    const address = server.address();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (address === null || typeof address === "string") throw new Error("no port");
    ports.push(address.port);
  }
  return ports;
}

before(() => zk.start(), { timeout: 300_000 });
after(async () => {
  await killCorrectnessProviders();
  await zk.stop();
});

describe("correctness under faults, across processes (ZooKeeper)", { concurrency: 1 }, () => {
  it("T07: kill -9 of one of three providers at 2,000 calls/s, half of them non-idempotent: no failed idempotent call, non-idempotent failures only among the calls in flight on it and prompt, no duplicate execution, a restarted provider served within 2 s", { timeout: 90_000 }, (t) =>
    cluster(3, "plain", {}, async (c) => {
      const b = bars(t);
      const [, victim] = c.providers;
      assert.ok(victim);
      const load = new PacedLoad([c.ledger.loadCall("whoami", c.echo), c.ledger.loadCall("append", c.echo)], { ratePerS: 2000, tickMs: 5, maxDurationMs: 60_000, maxInFlight: 64 });
      let killAt = 0;
      let fresh: CorrectnessProvider | undefined;
      try {
        assert.ok((await until(() => c.providers.every((p) => load.firstReplyFrom(p.pid) !== undefined), 10_000)) !== undefined, `not every provider served within 10 s: ${load.describe()}`);
        await delay(2000);
        killAt = Date.now();
        signal(victim.child, "SIGKILL");
        b.note(`victim ${victim.name} (pid ${victim.pid}) ended by ${await awaitExit(victim, 5000)} ${Date.now() - killAt} ms after kill -9`);
        const goneAt = await until(() => !c.watch.lists(victim.port), sessionTimeoutMs + 5000);
        b.note(`its node left the consumer's watch ${goneAt === undefined ? "never" : `${goneAt - killAt} ms`} after the kill`);
        fresh = await c.spawn("p2-restarted", "plain");
        await until(() => load.firstReplyFrom(fresh?.pid ?? -1) !== undefined, 10_000);
        await delay(1500);
      } finally {
        await load.stop();
      }
      const calls = [...c.ledger.calls.values()];
      b.note(load.describe());
      b.note(`latency of successful calls: ${latencySummary(calls.filter((x) => x.pid !== undefined).map((x) => x.settledAt - x.issuedAt))}`);
      b.check(load.ok > 5000, `the load barely ran: ${load.describe()}`);

      const idempotentFailures = calls.filter((x) => x.method === "whoami" && x.error);
      b.check(idempotentFailures.length === 0, `${idempotentFailures.length} failed idempotent calls: ${failureGroups(idempotentFailures)}`);

      // Attempts on the victim that were outstanding at the kill, or written to its connection
      // before the consumer saw that connection drop (sent: true).
      const onVictim = calls.flatMap((x) => x.attempts.map((a) => ({ call: x, a }))).filter(({ a }) => a.pid === victim.pid || a.error?.address === victim.address);
      const outstanding = onVictim.filter(({ a }) => a.startedAt < killAt && a.settledAt >= killAt);
      const intoWindow = onVictim.filter(({ a }) => a.startedAt >= killAt && a.error?.sent === true);
      const refusedAfter = onVictim.filter(({ a }) => a.startedAt >= killAt && a.error?.sent === false);
      const appendFailures = calls.filter((x) => x.method === "append" && x.error);
      const inFlightAppends = new Set([...outstanding, ...intoWindow].filter(({ call }) => call.method === "append").map(({ call }) => call.n));
      b.note(`in flight on the victim at the kill: ${outstanding.length} attempts outstanding at the signal + ${intoWindow.length} written to its connection before the consumer saw it drop (${inFlightAppends.size} non-idempotent calls); refused before write afterwards, and retried: ${refusedAfter.length}`);
      const latencies = appendFailures.map((x) => x.settledAt - killAt);
      b.note(`non-idempotent calls failed: ${appendFailures.length} (${failureGroups(appendFailures)}); their failure came ${latencies.length ? `${Math.min(...latencies)}..${Math.max(...latencies)} ms` : "-"} after the kill`);
      const strays = appendFailures.filter((x) => !inFlightAppends.has(x.n));
      b.check(strays.length === 0, `${strays.length} non-idempotent calls failed that were not in flight on the killed provider: ${failureGroups(strays)}`);
      b.check(appendFailures.length <= inFlightAppends.size, `non-idempotent failures ${appendFailures.length} > non-idempotent calls in flight on the killed provider ${inFlightAppends.size}`);
      const slowest = Math.max(0, ...latencies);
      b.check(slowest <= defaultTimeoutMs / 5, `a non-idempotent call failed ${slowest} ms after the kill (bar ${defaultTimeoutMs / 5} ms, a fifth of the ${defaultTimeoutMs} ms deadline)`);

      const byId = arrivalsById(await c.records(), "append");
      const { duplicates, unrecorded } = executionAudit(calls.filter((x) => x.method === "append"), byId);
      const idempotentRuns = arrivalsById(await c.records(), "whoami");
      const rerun = [...idempotentRuns.values()].filter((list) => list.length > 1).length;
      b.note(`executions recorded: ${[...byId.values()].reduce((s, l) => s + l.length, 0)} non-idempotent, ${[...idempotentRuns.values()].reduce((s, l) => s + l.length, 0)} idempotent (${rerun} idempotent requests ran twice, allowed)`);
      b.check(duplicates.length === 0, `${duplicates.length} non-idempotent requests executed more than once: ids ${duplicates.slice(0, 10).join(", ")}`);
      b.check(unrecorded.length === 0, `${unrecorded.length} successful non-idempotent calls have no execution record at the provider that answered (the records are incomplete): ids ${unrecorded.slice(0, 10).join(", ")}`);

      const firstReply = fresh === undefined ? undefined : load.firstReplyFrom(fresh.pid);
      const trafficMs = fresh === undefined || firstReply === undefined ? undefined : firstReply - fresh.registeredAt;
      b.note(`restarted provider's first reply ${trafficMs === undefined ? "never" : `${trafficMs} ms`} after it registered; served ${fresh === undefined ? 0 : (load.served.get(fresh.pid)?.count ?? 0)} calls`);
      b.check(trafficMs !== undefined && trafficMs <= 2000, `restarted provider got no traffic within 2000 ms of registering (${trafficMs ?? "none in 10 s"})`);
      b.done();
    }));

  it("T13: 10,000 non-idempotent calls against timeouts, resets after and before execution, and refused connections: no duplicate execution, retries only of requests never written, timeouts and resets surface as errors", { timeout: 120_000 }, (t) =>
    cluster(3, "faults", { CORRECTNESS_SLEEP_MS: "500" }, async (c) => {
      const b = bars(t);
      // Short enough that most held replies time out before a reset (one every ~150 ms per
      // connection at this rate) cuts their connection; still ~100 × a call's loaded p99.
      const timeoutMs = 250;
      const total = 10_000;
      // Registered by hand, with nothing listening: a connect there is refused before any byte is written.
      const dead = await closedPorts(3);
      const extra = c.extraRegistry();
      for (const port of dead) {
        await extra.register(sampleEndpoint(FaultsEcho.name, port, { id: `127.0.0.1:${port}//${FaultsEcho.name}:1#dead`, methods: ["whoami", "append"], application: "correctness-dead", startTime: Date.now() }));
      }
      const ports = [...c.providers.map((p) => p.port), ...dead];
      assert.ok((await until(() => c.watch.listsExactly(ports), 10_000)) !== undefined, `the consumer's watch did not list ${ports.join(",")}: [${c.watch.ports()}]`);
      const echo = withOptions(c.echo, { timeoutMs });
      const load = new PacedLoad([c.ledger.loadCall("append", echo)], { ratePerS: 1000, tickMs: 5, maxDurationMs: 40_000, maxInFlight: 96 });
      try {
        await until(() => load.issued >= total, 35_000, 20);
      } finally {
        await load.stop();
      }
      b.note(load.describe());
      const calls = [...c.ledger.calls.values()];
      b.check(calls.length >= total, `only ${calls.length} calls issued in 35 s`);
      const unsettled = calls.filter((x) => x.settledAt === 0);
      b.check(unsettled.length === 0, `${unsettled.length} calls never settled`);
      const byId = arrivalsById(await c.records(), "append");
      const { duplicates, unrecorded } = executionAudit(calls, byId);
      b.check(duplicates.length === 0, `${duplicates.length} requests executed more than once: ids ${duplicates.slice(0, 10).join(", ")}`);
      b.check(unrecorded.length === 0, `${unrecorded.length} successful calls have no execution record at the provider that answered: ids ${unrecorded.slice(0, 10).join(", ")}`);

      const audit = retryAudit(calls, byId);
      b.note(`caller outcomes: ${tally(calls.map((x) => (x.error ? `${x.error.code}${x.error.sent ? "" : " (unsent)"}` : "ok")))}`);
      b.note(`faults met at the providers → what the caller got: ${tally(audit.faults)}`);
      b.note(`attempts refused before write: ${audit.refusedAttempts}; calls retried: ${audit.retried}; requests reaching a provider: ${[...byId.values()].reduce((s, l) => s + l.length, 0)}`);
      const v = audit.violations;
      const list = (ids: readonly (number | string)[]): string => ids.slice(0, 10).join(", ");
      b.check(v.twoArrivals.length === 0, `${v.twoArrivals.length} requests reached providers twice: ${list(v.twoArrivals)}`);
      b.check(v.retryAfterSent.length === 0, `${v.retryAfterSent.length} calls retried after an attempt whose request had been written (sent: true): ${list(v.retryAfterSent)}`);
      b.check(v.retryAfterArrival.length === 0, `${v.retryAfterArrival.length} calls retried although an earlier attempt reached a provider: ${list(v.retryAfterArrival)}`);
      b.check(v.sentFalseButArrived.length === 0, `${v.sentFalseButArrived.length} attempts failed with sent: false although the provider received them: ${list(v.sentFalseButArrived)}`);
      b.check(v.phantom.length === 0, `${v.phantom.length} requests reached a provider with an attempt number the consumer never made: ${list(v.phantom)}`);
      b.check(v.faultSucceeded.length === 0, `${v.faultSucceeded.length} timed-out or reset requests resolved as successes: ${list(v.faultSucceeded)}`);
      b.check(v.okMismatch.length === 0, `${v.okMismatch.length} successes without exactly one execution at the successful attempt: ${list(v.okMismatch)}`);
      b.check(audit.faults.includes("exec-sleep → deadline_exceeded"), "no held reply surfaced as deadline_exceeded");
      b.check(audit.retried > 0, "no call was retried: the refused-before-write path was not exercised");
      b.done();
    }));

  it("T13, large requests: a non-idempotent request of 16 KiB or more whose connection drops after the provider executed it is not retried", { timeout: 60_000 }, (t) =>
    cluster(3, "faults", {}, async (c) => {
      const b = bars(t);
      // Ids whose fault is "reset-after" (the provider executes, then destroys the connection),
      // past any id a load uses: one request over the consumer's 16 KiB flush batch, one small.
      const ids: number[] = [];
      for (let n = 1_000_000; ids.length < 2 && n < 1_010_000; n++) if (faultOf(n) === "reset-after") ids.push(n);
      const [large, small] = ids;
      assert.ok(large !== undefined && small !== undefined);
      const padded = withOptions(c.echo, { metadata: { pad: "x".repeat(20_000) } });
      const outcomes: string[] = [];
      for (const [n, stub] of [[small, c.echo], [large, padded]] as const) {
        await c.ledger.loadCall("append", stub).call(n).catch(() => undefined);
        await delay(200);
      }
      const byId = arrivalsById(await c.records(), "append");
      for (const n of [small, large]) {
        const call = c.ledger.calls.get(n);
        const runs = (byId.get(n) ?? []).filter((a) => executed(a.arrival.outcome));
        const attempts = call?.attempts.map((a) => `#${a.attempt} ${a.error ? `${a.error.code} sent=${a.error.sent}` : "ok"}`).join(", ") ?? "none";
        const what = n === large ? "~20 KB request" : "small request";
        outcomes.push(`${what}: ${runs.length} execution(s) on ${new Set(runs.map((r) => r.provider.name)).size} provider(s); attempts ${attempts}`);
        b.check(runs.length === 1, `${what} #${n} executed ${runs.length} times (attempts: ${attempts}): a request written to the socket was reported sent: false and retried`);
        b.check(call?.error !== undefined, `${what} #${n} whose connection was reset after execution resolved as a success`);
      }
      for (const line of outcomes) b.note(line);
      b.done();
    }));

  it("T20: SIGTERM of one of three providers at 2,000 calls/s with 30 % 200 ms non-idempotent writes: no failed call, no request sent to it after the consumer read its closing frame, in-flight calls complete, exit within graceMs + 1 s", { timeout: 90_000 }, (t) =>
    cluster(3, "slow-writes", { CORRECTNESS_WRITE_MS: "200" }, async (c) => {
      const b = bars(t);
      const [leaving] = c.providers;
      assert.ok(leaving);
      const w = c.ledger.loadCall("whoami", c.echo);
      const a = c.ledger.loadCall("append", c.echo);
      const load = new PacedLoad([w, a, w, w, a, w, w, a, w, w], { ratePerS: 2000, tickMs: 5, maxDurationMs: 60_000, maxInFlight: 512 });
      let termAt = 0;
      let exitAt: number | undefined;
      let how = "still running";
      try {
        assert.ok((await until(() => c.providers.every((p) => load.firstReplyFrom(p.pid) !== undefined), 10_000)) !== undefined, `not every provider served within 10 s: ${load.describe()}`);
        await delay(2000);
        termAt = Date.now();
        signal(leaving.child, "SIGTERM");
        try {
          how = await awaitExit(leaving, defaultGraceMs + 5000);
          exitAt = Date.now();
        } catch (error) {
          how = String(error);
        }
        await delay(1000);
      } finally {
        await load.stop();
      }
      const calls = [...c.ledger.calls.values()];
      b.note(load.describe());
      b.note(`latency of successful calls: ${latencySummary(calls.filter((x) => x.pid !== undefined).map((x) => x.settledAt - x.issuedAt))}`);
      b.check(load.ok > 5000, `the load barely ran: ${load.describe()}`);
      const failed = calls.filter((x) => x.error);
      b.check(failed.length === 0, `${failed.length} failed calls: ${failureGroups(failed)}`);

      const record = (await c.records()).get(leaving);
      assert.ok(record);
      const closingAt = Math.min(...record.closings.map((x) => x.at));
      const readAt = c.closingReadAt.get(leaving.address);
      const goneAt = c.watch.deliveries.find((d) => d.at >= termAt && !d.endpoints.some((e) => e.port === leaving.port))?.at;
      const lastReply = load.served.get(leaving.pid)?.last;
      const rel = (at: number | undefined): string => (at === undefined || !Number.isFinite(at) ? "never" : `+${at - termAt} ms`);
      b.note(`after SIGTERM: signal seen ${rel(record.sigtermAt)}, dropped from the consumer's watch ${rel(goneAt)}, closing written ${rel(closingAt)} (${record.closings.length} connection(s)), read by the consumer ${rel(readAt)}, last reply ${rel(lastReply)}, exit ${rel(exitAt)} (${how})`);
      b.check(record.closings.length > 0, "the provider wrote no closing frame");

      // The bar: no new request after `closing`. `closing` is the first of gRPC's two GOAWAYs:
      // requests already on the wire when it was written cross it and are served (never failed:
      // the run's zero failed calls cover them); a request sent after the consumer read it must not
      // exist. Crossing ones are counted and reported.
      const late = record.arrivals.filter((x) => x.at > closingAt).map((x) => {
        const sentAt = c.ledger.calls.get(x.n)?.attempts.find((y) => y.attempt === x.attempt)?.startedAt;
        const crossing = readAt !== undefined && sentAt !== undefined && sentAt <= readAt;
        return `${x.method} #${x.n} sent ${rel(sentAt)}, arrived ${rel(x.at)}, ${crossing ? "crossing" : "sent after the consumer read closing"}`;
      });
      const ignored = late.filter((x) => !x.endsWith("crossing"));
      b.note(`requests reaching the provider after its closing frame: ${late.length} (${late.length - ignored.length} crossing it on the wire, ${ignored.length} sent after the consumer read it)${late.length ? `: ${late.slice(0, 5).join("; ")}` : ""}`);
      b.check(ignored.length === 0, `${ignored.length} requests were sent after the consumer read closing; ${late.length} reached the provider after it wrote closing at ${rel(closingAt)} (${ignored.length} of them sent after the consumer read it at ${rel(readAt)}; the consumer's watch dropped it at ${rel(goneAt)}): ${late.slice(0, 5).join("; ")}`);

      // The writes running when `closing` went out must complete, answered by the leaving provider.
      const running = record.arrivals.filter((x) => x.method === "append" && x.at <= closingAt && (c.ledger.calls.get(x.n)?.settledAt ?? 0) > closingAt);
      const unfinished = running.filter((x) => c.ledger.calls.get(x.n)?.pid !== leaving.pid);
      b.note(`writes in flight on the provider when it wrote closing: ${running.length}; completed by it: ${running.length - unfinished.length}`);
      b.check(unfinished.length === 0, `${unfinished.length} writes running at closing did not complete on the leaving provider`);

      const byId = arrivalsById(await c.records(), "append");
      const { duplicates } = executionAudit(calls.filter((x) => x.method === "append"), byId);
      b.check(duplicates.length === 0, `${duplicates.length} non-idempotent requests executed more than once`);
      const exitMs = exitAt === undefined ? undefined : exitAt - termAt;
      b.check(how === "SIGTERM", `the provider did not end by its own SIGTERM after draining: ${how}`);
      b.check(exitMs !== undefined && exitMs <= defaultGraceMs + 1000, `exit ${exitMs ?? "never"} ms after SIGTERM (bar graceMs ${defaultGraceMs} + 1000 ms)`);
      b.done();
    }));
});
