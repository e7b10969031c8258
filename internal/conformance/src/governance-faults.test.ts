// Multi-process governance tests on the ZooKeeper registry (RELIABILITY.md T09, T10, T11): three
// provider processes whose behaviour is switched over IPC (governance-provider-process.ts), the
// consumer in this process. Bars are the acceptance bars only, asserted on windows of calls;
// every measured figure is printed as a TAP diagnostic.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { FarcallError, type Interceptor } from "@farcall/core";
import type { Served } from "./faults-echo.js";
import { bars, type CallRecord, epochNow, fixed, type GovernanceProvider, killGovernanceProviders, type ProviderView, quantile, withGovernanceCase } from "./governance-cluster.js";
import { until } from "./until.js";
import { ZookeeperServer } from "./zookeeper-server.js";

const zk = new ZookeeperServer("governance-faults");
const three = [{ name: "p1" }, { name: "p2" }, { name: "p3" }];

before(() => zk.start(), { timeout: 300_000 });
after(async () => {
  await killGovernanceProviders();
  await zk.stop();
});

/** Share of the successful calls in `records` served by `provider`; NaN when there are none. */
function shareOf(records: readonly CallRecord[], provider: GovernanceProvider): number {
  const ok = records.filter((r) => r.code === "");
  return ok.filter((r) => r.pid === provider.pid).length / ok.length;
}

function latencies(records: readonly CallRecord[]): number[] {
  return records.map((r) => r.end - r.start);
}

/** A series of per-second figures for a diagnostic line. */
function series(values: readonly number[], digits = 0): string {
  return values.map((v) => fixed(v, digits)).join(" ");
}

describe("governance under faults, across processes (ZooKeeper registry)", { concurrency: 1 }, () => {
  it("T09: a provider slowed by 500 ms gets < 10 % of calls within 10 s under the adaptive balancer; p99 stays under 500 ms", { timeout: 120_000 }, (t) =>
    withGovernanceCase({ zk, providers: three, consumer: { loadBalancer: "adaptive" } }, async (c) => {
      const b = bars(t);
      const slow = c.providers[1] as GovernanceProvider;
      const ratePerS = 400;
      const faultMs = 13_000;
      const watchMs = 30_000;
      const balanceMs = 20_000;
      const view = (): string =>
        c
          .snapshot()
          .map((p) => `${fixed(p.peakMs ?? Number.NaN, 1)} ms×${p.inFlight ?? "?"}${p.reportedLoad === undefined ? "" : ` busy ${fixed(p.reportedLoad.busy, 2)}`}`)
          .join(" / ");
      b.note(`peak EWMA × in flight, last reported busy, per provider before the load: ${view()}`);
      const load = c.load(ratePerS, balanceMs + faultMs + watchMs + 5000, 64);
      const loadAt = epochNow();
      // The fault must take a share away: first every provider serves ≥ 20 % of the last 2 s (the baseline).
      const balanced = (): boolean => {
        const now = epochNow();
        return now - loadAt >= 2000 && c.providers.every((p) => shareOf(load.between(now - 2000, now - 20), p) >= 0.2);
      };
      const balancedAt = await until(balanced, balanceMs, 100);
      b.note(`every provider ≥ 20 % of the last 2 s ${balancedAt === undefined ? `never within ${balanceMs / 1000} s` : `${fixed((balancedAt - loadAt) / 1000, 1)} s after the load started`}; then: ${view()}`);
      assert.ok(balancedAt !== undefined, `the adaptive balancer did not spread the load over the three providers within ${balanceMs / 1000} s (shares over the last 2 s ${c.providers.map((p) => fixed(shareOf(load.between(epochNow() - 2000, epochNow()), p) * 100)).join("/")} %): no baseline to slow a provider from`);
      const faultAt = epochNow();
      await slow.behave({ latencyMs: 500 });
      await delay(faultMs);
      const peakAtHeal = c.snapshot().map((p) => fixed(p.peakMs ?? Number.NaN, 1));
      const healAt = epochNow();
      await slow.behave({ latencyMs: 0 });

      // Recovery, reported and not asserted: the share over the last 2 s (calls issued 0.5 s ago at
      // the latest, so settled). The slow provider's peak EWMA fades with τ = 10 s from ~150 ms, so
      // it is tried again after τ × ln(its peak / the others' cost), 20 s to over 30 s in our runs.
      const band = { low: 1 / 3 - 0.1, high: 1 / 3 + 0.1 };
      const recoverySeries: number[] = [];
      const peaks: string[] = [];
      let backAt: number | undefined;
      for (let second = 1; second <= watchMs / 1000 && backAt === undefined; second++) {
        await delay(Math.max(0, healAt + second * 1000 - epochNow()));
        const now = epochNow();
        const share = shareOf(load.between(Math.max(healAt, now - 2500), now - 500), slow);
        recoverySeries.push(share * 100);
        if (second % 5 === 0) peaks.push(`+${second} s: ${fixed(c.snapshot()[1]?.peakMs ?? Number.NaN, 1)} ms`);
        if (second >= 3 && share >= band.low && share <= band.high) backAt = now;
      }
      await load.stop();

      const baseline = load.between(faultAt - 2000, faultAt);
      const fault = load.between(faultAt, healAt);
      const perSecond = Array.from({ length: faultMs / 1000 }, (_, i) => shareOf(load.between(faultAt + i * 1000, faultAt + (i + 1) * 1000), slow) * 100);
      const underTenAt = perSecond.findIndex((s) => s < 10);
      const late = load.between(faultAt + 10_000, healAt);
      const lateShare = shareOf(late, slow);
      const failed = load.records.filter((r) => r.code !== "");
      b.note(`load: ${load.paced.describe()}`);
      b.note(`baseline (2 s): ${baseline.length} calls, p50 ${fixed(quantile(latencies(baseline), 0.5), 2)} ms, p99 ${fixed(quantile(latencies(baseline), 0.99), 2)} ms, shares ${c.providers.map((p) => fixed(shareOf(baseline, p) * 100)).join("/")} %`);
      b.note(`slow provider's share per second after the fault (%): ${series(perSecond, 1)}`);
      b.note(`first second under 10 %: ${underTenAt < 0 ? "none" : `second ${underTenAt + 1} (ends ${underTenAt + 1} s after the fault)`}`);
      b.note(`share from fault + 10 s to the heal (${late.length} calls): ${fixed(lateShare * 100, 2)} %`);
      b.note(`during the fault (${fault.length} calls): p50 ${fixed(quantile(latencies(fault), 0.5), 2)} ms, p99 ${fixed(quantile(latencies(fault), 0.99), 2)} ms, max ${fixed(Math.max(...latencies(fault)), 1)} ms, calls ≥ 500 ms: ${fault.filter((r) => r.end - r.start >= 500).length}, to the slow provider: ${fault.filter((r) => r.pid === slow.pid).length}`);
      b.note(`whole run (${load.records.length} calls): p99 ${fixed(quantile(latencies(load.records), 0.99), 2)} ms`);
      b.note(`peak EWMA latency per provider at the heal (ms): ${peakAtHeal.join(" / ")}; slow provider's after the heal: ${peaks.join(", ") || "-"}`);
      b.note(`slow provider's share after the heal, 2 s windows each second (%): ${series(recoverySeries, 1)}`);
      b.note(`back within ±10 points of 1/3: ${backAt === undefined ? `not within ${watchMs / 1000} s` : `${fixed((backAt - healAt) / 1000, 1)} s after the heal`}`);

      b.check(failed.length === 0, `${failed.length} calls failed: ${load.paced.summary()}`);
      b.check(late.length >= 1000, `too few calls from fault + 10 s to measure a share: ${late.length}`);
      b.check(lateShare < 0.1, `slow provider's share from fault + 10 s: ${fixed(lateShare * 100, 2)} % (bar < 10 %)`);
      const faultP99 = quantile(latencies(fault), 0.99);
      b.check(faultP99 < 500, `p99 during the fault ${fixed(faultP99, 1)} ms (bar < 500 ms)`);
      b.done();
    }));

  it("T10: a provider failing every call is ejected after 5 consecutive failures and gets no call while ejected; ejections grow; 30 % failures are caught at a sweep; never more than one of three ejected", { timeout: 120_000 }, (t) => {
    const baseEjectionMs = 2000;
    const intervalMs = 1000;
    /**
     * p3's results as this consumer saw them, in order, each with p3's health in app.governance()
     * right after the detector recorded it (the interceptor runs after the attempt settled).
     */
    const seen: { at: number; failed: boolean; state: string; consecutive: number }[] = [];
    let watch: { address: string; pid: number; view: () => ProviderView | undefined } | undefined;
    const observe: Interceptor = (next) => (call) =>
      next(call).then(
        (reply) => {
          if (watch !== undefined && (reply.value as Served).pid === watch.pid) note(false);
          return reply;
        },
        (error: unknown) => {
          const e = FarcallError.from(error);
          if (watch !== undefined && e.sent && e.details["address"] === watch.address) note(true);
          throw error;
        },
      );
    const note = (failed: boolean): void => {
      const view = watch?.view();
      seen.push({ at: epochNow(), failed, state: view?.state ?? "?", consecutive: view?.consecutiveFailures ?? -1 });
    };
    return withGovernanceCase(
      { zk, providers: three, consumer: { outlierDetection: { intervalMs, baseEjectionMs } }, client: { attemptInterceptors: [observe] } },
      async (c) => {
        const b = bars(t);
        const [p1, p2, p3] = c.providers as [GovernanceProvider, GovernanceProvider, GovernanceProvider];
        watch = { address: p3.address, pid: p3.pid, view: () => c.snapshot()[2] };
        // The consumer's view every 20 ms: p3's ejections (by their end) and the most ejected at once.
        const ejections: { until: number; seenAt: number }[] = [];
        const statesSeen = new Map<string, number>();
        let mostEjected = 0;
        let polling = true;
        const poller = (async () => {
          for (let i = 0; polling && i < 10_000; i++) {
            const view = c.snapshot();
            mostEjected = Math.max(mostEjected, view.filter((p) => p.state === "ejected").length);
            const mine = view[2];
            if (mine !== undefined) {
              statesSeen.set(mine.state, (statesSeen.get(mine.state) ?? 0) + 1);
              if (mine.state === "ejected" && mine.ejectedUntil !== undefined && ejections.at(-1)?.until !== mine.ejectedUntil) ejections.push({ until: mine.ejectedUntil, seenAt: epochNow() });
            }
            await delay(20);
          }
        })();
        const load = c.load(300, 40_000, 64);
        try {
          await delay(1500);
          const failAllAt = epochNow();
          await p3.behave({ failure: "all" });
          const first = await until(() => ejections.length >= 1, 3000, 10);
          assert.ok(first !== undefined, "the provider failing every call was not ejected within 3 s");
          const second = await until(() => ejections.length >= 2, baseEjectionMs + 3000, 10);
          assert.ok(second !== undefined, `no second ejection within ${baseEjectionMs + 3000} ms of the first`);
          await delay(1000);
          const ratioAt = epochNow();
          await p3.behave({ failure: "ratio30" });
          const third = await until(() => ejections.length >= 3, 2 * baseEjectionMs + 6000, 10);
          assert.ok(third !== undefined, "the provider failing 30 % of its calls was not ejected within 6 s of its readmission");
          // All three failing while p3 is out: the cap keeps p1 and p2 in (some traffic beats none).
          const allBadAt = epochNow();
          await Promise.all([p1.behave({ failure: "all" }), p2.behave({ failure: "all" })]);
          await delay(2000);
          const allBadEnd = epochNow();
          await Promise.all([p1.behave({ failure: "none" }), p2.behave({ failure: "none" })]);
          await delay(300);
          await load.stop();
          polling = false;
          await poller;

          const [log1, log2, log3] = await Promise.all([p1.log(), p2.log(), p3.log()]);
          const [e1, e2, e3] = ejections as [(typeof ejections)[number], (typeof ejections)[number], (typeof ejections)[number]];
          // Each ejection on a failure, from the consumer's side: the failures of the episode seen up to
          // the first result showing p3 ejected (k), those seen after it while ejected (w: attempts
          // sent before the ejection), and the detector's count of failures since the ejection at
          // the episode's last result (c). Two results read in one chunk are recorded before either
          // interceptor runs, so the ejecting failure is the (k + w − c)th of the episode.
          const onFailure: { at: number; inARow: number; answeredWhileEjected: number; lastConsecutive: number }[] = [];
          let inARow = 0;
          let previous = { state: "healthy", consecutive: 0 };
          for (const r of seen) {
            if (r.state !== "ejected" && previous.state === "ejected") inARow = 0; // readmitted
            inARow = r.failed ? inARow + 1 : 0;
            const episode = onFailure.at(-1);
            if (r.state === "ejected" && previous.state !== "ejected") onFailure.push({ at: r.at, inARow, answeredWhileEjected: 0, lastConsecutive: r.consecutive });
            else if (r.state === "ejected" && r.failed && episode !== undefined) {
              episode.answeredWhileEjected++;
              episode.lastConsecutive = r.consecutive;
            }
            previous = r;
          }
          const ejectedOn = (f: (typeof onFailure)[number]): number => f.inARow + f.answeredWhileEjected - f.lastConsecutive;
          const failedIn = (from: number, to: number): number => log3.at.filter((at, i) => at >= from && at < to && log3.failed[i]).length;
          const arrivals = (log: typeof log3, from: number, to: number): number => log.at.filter((at) => at >= from && at < to).length;
          let maxInARow = 0;
          let run = 0;
          log3.at.forEach((at, i) => {
            if (at < ratioAt) return;
            run = log3.failed[i] ? run + 1 : 0;
            maxInARow = Math.max(maxInARow, run);
          });
          const [f1, f2] = onFailure as [(typeof onFailure)[number] | undefined, (typeof onFailure)[number] | undefined];
          assert.ok(f1 !== undefined && f2 !== undefined, `the consumer saw ${onFailure.length} ejections on a failure, expected 2`);
          const a1 = failedIn(failAllAt, e1.until);
          const a2 = failedIn(e1.until, e2.until);
          const lastBeforeRate = seen.filter((r) => r.at < e3.seenAt).at(-1);
          const whileEjected = [arrivals(log3, f1.at + 50, e1.until), arrivals(log3, f2.at + 50, e2.until), arrivals(log3, e3.seenAt + 50, allBadEnd)];
          b.note(`load: ${load.paced.describe()}`);
          b.note(`ejection 1: on failure ${ejectedOn(f1)} in a row; p3 answered ${a1} failures before readmission (the consumer read ${f1.inARow} before its snapshot showed p3 ejected, ${f1.answeredWhileEjected} after); lasted ${fixed(e1.until - f1.at, 0)} ms (base ${baseEjectionMs} ms)`);
          b.note(`ejection 2: on failure ${ejectedOn(f2)} in a row; p3 answered ${a2} failures (the consumer read ${f2.inARow} before its snapshot showed p3 ejected, ${f2.answeredWhileEjected} after); lasted ${fixed(e2.until - f2.at, 0)} ms`);
          b.note(`30 % mode (at most ${maxInARow} failures in a row at p3): ejected ${fixed(e3.seenAt - e2.until, 0)} ms after readmission (seen by a 20 ms poll), with ${lastBeforeRate?.consecutive ?? "?"} failures in a row; lasts ${fixed(e3.until - e3.seenAt, 0)} ms from when it was seen; sweep every ${intervalMs} ms`);
          b.note(`calls reaching p3 while ejected (from 50 ms after the ejection): ${whileEjected.join(", ")}`);
          b.note(`all three failing for 2 s: at most ${mostEjected} ejected at once over the run; p1 and p2 got ${arrivals(log1, allBadEnd - 1000, allBadEnd)} and ${arrivals(log2, allBadEnd - 1000, allBadEnd)} calls in its last second`);
          b.note(`p3 states seen in the snapshot (20 ms polls): ${[...statesSeen].map(([s, n]) => `${s} ×${n}`).join(", ")}`);

          b.check(ejectedOn(f1) === 5 && ejectedOn(f2) === 5, `ejected on failures ${ejectedOn(f1)} and ${ejectedOn(f2)} in a row (bar: the 5th)`);
          b.check(a1 === f1.inARow + f1.answeredWhileEjected && a2 === f2.inARow + f2.answeredWhileEjected, `p3 answered ${a1} and ${a2} failures, the consumer saw ${f1.inARow + f1.answeredWhileEjected} and ${f2.inARow + f2.answeredWhileEjected}`);
          b.check(a1 - f1.lastConsecutive === 5 && a2 - f2.lastConsecutive === 5, `p3 answered ${a1 - f1.lastConsecutive} and ${a2 - f2.lastConsecutive} failures before each ejection, beyond those sent before it (bar: 5)`);
          b.check(whileEjected.every((n) => n === 0), `calls reached p3 while it was ejected: ${whileEjected.join(", ")}`);
          b.check(Math.abs(e1.until - f1.at - baseEjectionMs) <= 100, `first ejection lasted ${fixed(e1.until - f1.at, 0)} ms (base ${baseEjectionMs} ms)`);
          b.check(Math.abs(e2.until - f2.at - 2 * baseEjectionMs) <= 100, `second ejection lasted ${fixed(e2.until - f2.at, 0)} ms (2 × base expected)`);
          b.check(Math.abs(e3.until - e3.seenAt - 3 * baseEjectionMs) <= 150, `third ejection lasts ${fixed(e3.until - e3.seenAt, 0)} ms from when it was seen (3 × base expected)`);
          b.check(maxInARow <= 3 && (lastBeforeRate?.consecutive ?? 5) < 5, "the 30 % ejection came from failures in a row, not from the failure-rate mode at a sweep");
          b.check(e3.seenAt - e2.until <= 2 * intervalMs + 100, `30 % failures caught ${fixed(e3.seenAt - e2.until, 0)} ms after readmission (bar: by the second sweep, ${2 * intervalMs} ms)`);
          b.check(mostEjected <= 1, `${mostEjected} providers ejected at once (cap: 1 of 3)`);
          b.check(arrivals(log1, allBadEnd - 1000, allBadEnd) > 0 && arrivals(log2, allBadEnd - 1000, allBadEnd) > 0, "with every provider failing, the ones not ejected stopped getting calls");
          b.check(statesSeen.has("ejected"), "app.governance() never showed p3 ejected");
          b.check(load.paced.failures.filter((f) => f.atMs < allBadAt - load.paced.startedAt).length === 0, `calls failed before every provider was failing: ${load.paced.summary()}`);
          b.done();
        } finally {
          polling = false;
          await poller;
        }
      },
    );
  });

  it("T11: a circuit breaker on a provider failing every call: no call reaches it while open, rejections under 1 ms, one probe per half-open, closes when it recovers", { timeout: 90_000 }, (t) => {
    const openMs = 1000;
    const breaker = { strategy: "errorRatio", threshold: 0.5, minCalls: 10, windowMs: 1000, openMs, halfOpenCalls: 1 } as const;
    return withGovernanceCase(
      {
        zk,
        providers: three,
        // The dependency is p3 alone (a route), so an open breaker leaves the call nowhere to go:
        // it is rejected locally. One attempt per call, no outlier ejection: only the breaker acts.
        consumer: (providers) => ({ circuitBreaker: breaker, outlierDetection: false, faultTolerance: "failfast", routes: [`=> port = ${providers[2]?.port}`] }),
        warm: [2],
      },
      async (c) => {
        const b = bars(t);
        const p3 = c.providers[2] as GovernanceProvider;
        // The breaker's state as app.governance() shows it, polled every 2 ms: its changes in order.
        const changes: { state: string; at: number }[] = [];
        let polling = true;
        const poller = (async () => {
          for (let i = 0; polling && i < 20_000; i++) {
            const state = c.snapshot()[2]?.breakers["whoami"];
            if (state !== undefined && changes.at(-1)?.state !== state) changes.push({ state, at: epochNow() });
            await delay(2);
          }
        })();
        const load = c.load(100, 20_000, 64);
        try {
          await delay(1500);
          const failAt = epochNow();
          await p3.behave({ failure: "all" });
          await delay(4500);
          const healAt = epochNow();
          await p3.behave({ failure: "none" });
          await delay(2500);
          await load.stop();
          polling = false;
          await poller;

          const log = await p3.log();
          const rejections = load.records.filter((r) => r.reason === "circuit_open");
          const firstOpen = rejections[0]?.start;
          assert.ok(firstOpen !== undefined, `the breaker never rejected a call: ${load.paced.summary()}`);
          // Arrivals at p3 after it opened (20 ms for requests already on their way) until the heal: the probes.
          const probes = log.at.filter((at) => at >= firstOpen + 20 && at < healAt);
          const gaps = probes.map((at, i) => at - (i === 0 ? firstOpen : (probes[i - 1] as number)));
          // The breaker's window at the opening began 900 to 1000 ms before it (10 sub-buckets of 100 ms).
          const beforeOpen = log.at.map((at, i) => ({ at, failed: log.failed[i] })).filter((e) => e.at >= firstOpen - 900 && e.at < firstOpen);
          const rejectMs = rejections.map((r) => r.end - r.start);
          const closedAt = changes.find((ch) => ch.state === "closed" && ch.at > healAt)?.at;
          const afterClose = load.between(healAt + openMs + 500, Number.POSITIVE_INFINITY);
          const order = changes.map((ch) => ch.state);
          const legal = new Set(["closed>open", "open>halfOpen", "halfOpen>open", "halfOpen>closed"]);
          const edges = order.slice(1).map((to, i) => `${order[i]}>${to}`);
          const missedHalfOpen = edges.filter((e) => e === "open>closed").length;
          b.note(`load: ${load.paced.describe()}`);
          b.note(`opened ${fixed(firstOpen - failAt, 0)} ms after the failures began; in the 900 ms before: ${beforeOpen.length} calls, ${beforeOpen.filter((e) => e.failed).length} failed`);
          b.note(`rejections: ${rejections.length}, latency median ${fixed(quantile(rejectMs, 0.5) * 1000, 0)} µs, p99 ${fixed(quantile(rejectMs, 0.99) * 1000, 0)} µs, max ${fixed(Math.max(...rejectMs) * 1000, 0)} µs; codes ${[...new Set(rejections.map((r) => r.code))].join(",")}`);
          b.note(`calls reaching p3 from the opening to the heal: ${probes.length}, gaps ${gaps.map((g) => fixed(g, 0)).join(", ")} ms (openMs ${openMs})`);
          b.note(`closed ${closedAt === undefined ? "never" : `${fixed(closedAt - healAt, 0)} ms`} after p3 recovered; then ${afterClose.filter((r) => r.pid === p3.pid).length} of ${afterClose.length} calls served by p3`);
          b.note(`breaker states seen in app.governance() (2 ms polls): ${order.join(" → ")}${missedHalfOpen > 0 ? ` (${missedHalfOpen} half-open spells between polls)` : ""}`);

          b.check(rejections.length >= 100, `too few rejections to measure: ${rejections.length}`);
          b.check(quantile(rejectMs, 0.5) < 1, `median rejection latency ${fixed(quantile(rejectMs, 0.5), 3)} ms (bar < 1 ms)`);
          b.check(rejections.every((r) => r.code === "unavailable"), "a rejection was not `unavailable` (`circuit_open`)");
          b.check(probes.length >= 3, `${probes.length} probes in ${fixed(healAt - firstOpen, 0)} ms open`);
          b.check(gaps.every((g) => g >= openMs - 20), `a call reached p3 less than openMs after the breaker (re)opened: gaps ${gaps.map((g) => fixed(g, 0)).join(", ")} ms`);
          b.check(gaps.every((g) => g < openMs + 200), `a half-open spell let no probe through for ${fixed(Math.max(...gaps), 0)} ms`);
          b.check(beforeOpen.filter((e) => e.failed).length * 2 >= beforeOpen.length && beforeOpen.length >= breaker.minCalls, "opened before the error ratio reached 50 % of at least minCalls calls");
          b.check(closedAt !== undefined && closedAt - healAt <= openMs + 200, `closed ${closedAt === undefined ? "never" : `${fixed(closedAt - healAt, 0)} ms`} after recovery (bar: at the first probe, ≤ openMs)`);
          b.check(afterClose.length > 0 && afterClose.every((r) => r.pid === p3.pid), "calls did not all succeed on p3 once the breaker closed");
          b.check(order[0] === "closed" && order.at(-1) === "closed" && order.includes("open"), `states not closed → open → … → closed: ${order.join(" → ")}`);
          b.check(edges.every((e) => legal.has(e) || e === "open>closed"), `an impossible transition was shown: ${edges.join(", ")}`);
          b.check(changes.filter((ch) => ch.state === "closed" && ch.at > firstOpen && ch.at < healAt).length === 0, "the breaker showed closed while p3 was failing");
          b.done();
        } finally {
          polling = false;
          await poller;
        }
      },
    );
  });
});
