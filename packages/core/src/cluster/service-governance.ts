import { FarcallError } from "../errors/farcall-error.js";
import { conditionRouter } from "../governance/routing/condition-router.js";
import type { ConditionRuleOptions } from "../governance/routing/condition-router.js";
import type { RouteContext, Router } from "../governance/routing/router.js";
import { tagRouter } from "../governance/routing/tag-router.js";
import type { BreakerState } from "../governance/limiter.js";
import { RetryBudget, type RetryBudgetOptions } from "../governance/retry-budget.js";
import type { ProviderLoad } from "../protocol/binary/provider-load.js";
import type { Endpoint } from "../registry/endpoint.js";
import { type GovernanceRules, parseGovernanceRules } from "../registry/governance-rules.js";
import type { Registry, Unwatch } from "../registry/registry.js";
import { Directory, type DirectoryOptions, type ProviderOverrides } from "./directory.js";
import { EndpointStatsTable } from "./endpoint-stats.js";
import { effectiveWeight } from "./load-balancers/load-balancer.js";
import type { OutlierDetectionOptions } from "./outlier-detector.js";
import { type HealthEvent, ServiceHealth } from "./provider-health.js";

/** `process.emitWarning` code when governance rules read from the registry are rejected. */
export const badRulesWarningCode = "FARCALL_BAD_RULES";
/** `process.emitWarning` code when a provider is ejected as an outlier or a breaker opens. */
export const healthWarningCode = "FARCALL_PROVIDER_HEALTH";

/** Options of {@link ServiceGovernance}. */
export interface ServiceGovernanceOptions extends DirectoryOptions {
  readonly outlierDetection: Required<OutlierDetectionOptions> | undefined;
  /** The retry budget shared by the service's failover clients; undefined: retries are unbudgeted. */
  readonly retryBudget: Required<RetryBudgetOptions> | undefined;
  /** Routing rules from the application's options, applied before the registry's. */
  readonly routes: readonly (string | ConditionRuleOptions)[];
  /** Tag routing falls back to untagged providers unless this is true. */
  readonly tagForce: boolean;
  readonly context: RouteContext;
  /** Whether a provider has a usable connection now (for the snapshot). */
  readonly connectionState: (endpoint: Endpoint, now: number) => "ready" | "unusable";
  /** The load record of a provider address, for the call statistics. */
  readonly loadOf?: (address: string) => ProviderLoad;
  /** Emit process warnings for ejections, breaker openings and rejected rules. Default true. */
  readonly warnings?: boolean;
}

/** How one provider looks to this consumer (see `Application.governance()`). */
export interface ProviderSnapshot {
  readonly address: string;
  readonly id: string;
  readonly tag: string;
  /** Weight as registered. */
  readonly registeredWeight: number;
  /** Weight after the registry's rules (override) and warm-up, as the balancers use it now. */
  readonly effectiveWeight: number;
  /** Taken out of rotation by a rule. */
  readonly disabled: boolean;
  /**
   * `healthy`; `degraded`: recent failures, or a circuit breaker of some method not closed;
   * `ejected`: out of rotation as an outlier until `ejectedUntil`.
   */
  readonly state: "healthy" | "degraded" | "ejected";
  readonly ejectedUntil: number | undefined;
  readonly consecutiveFailures: number;
  /** Connection as the pool sees it: `ready` (connected or connectable) or `unusable` (closing, dead or backing off). */
  readonly connection: "ready" | "unusable";
  /** Breaker state per method, for the methods that have breakers. */
  readonly breakers: Readonly<Record<string, BreakerState>>;
  /** Calls in flight, latencies: when the service's balancer keeps statistics. */
  readonly inFlight: number | undefined;
  readonly peakMs: number | undefined;
  readonly averageMs: number | undefined;
  /** The provider's last load report (event-loop utilisation and heap use, 0..1) and when it arrived, if any. */
  readonly reportedLoad: { readonly busy: number; readonly memory: number; readonly at: number } | undefined;
}

/** One service's governance as this consumer applies it (see `Application.governance()`). */
export interface ServiceGovernanceSnapshot {
  readonly service: string;
  readonly version: string;
  readonly group: string;
  readonly rules: {
    /** The rules in force (parsed), undefined when none were pushed. */
    readonly current: GovernanceRules | undefined;
    /** When they were applied, epoch ms. */
    readonly appliedAt: number | undefined;
    /** The last rules text refused, and why; the previous rules stayed in force. */
    readonly rejected: { readonly message: string; readonly at: number } | undefined;
  };
  readonly retryBudget: { readonly exhausted: number } | undefined;
  readonly providers: readonly ProviderSnapshot[];
}

const none: readonly Router[] = Object.freeze([]);

function routingOf(routers: Router[], context: RouteContext): { readonly routers: readonly Router[]; readonly context: RouteContext; readonly perCall: boolean } {
  return Object.freeze({ routers: Object.freeze(routers), context, perCall: routers.some((r) => r.perCall === true) });
}

/**
 * Everything one consumer keeps per service: the directory (with the operator's overrides), the
 * routing chain (static routes, tag routing, the registry's routes), the providers' health
 * (outlier ejection and breakers), call statistics when a balancer reads them, and the retry
 * budget. Rules pushed through the registry (`Registry.watchRules`) are validated and applied to
 * the next call; invalid ones are refused and the previous ones stay.
 */
export class ServiceGovernance {
  readonly directory: Directory;
  readonly health: ServiceHealth;
  readonly budget: RetryBudget | undefined;
  /** Read by the client on every attempt. */
  readonly routing: { current: { readonly routers: readonly Router[]; readonly context: RouteContext; readonly perCall: boolean } };
  readonly #options: ServiceGovernanceOptions;
  readonly #static: readonly Router[];
  readonly #tagRouter: Router;
  #stats: EndpointStatsTable | undefined;
  #rules: GovernanceRules | undefined;
  #appliedAt: number | undefined;
  #rejected: { message: string; at: number } | undefined;
  #rejectedText: string | undefined;
  readonly #unwatchRules: Unwatch | undefined;

  /** @throws FarcallError `invalid_argument` (reason `bad_rule`) when a route in the options does not parse. */
  constructor(registry: Registry, options: ServiceGovernanceOptions) {
    this.#options = options;
    this.#static = options.routes.length === 0 ? none : [conditionRouter(options.routes)];
    this.#tagRouter = tagRouter({ force: options.tagForce });
    this.routing = { current: routingOf([...this.#static, this.#tagRouter], options.context) };
    this.directory = new Directory(options);
    this.health = new ServiceHealth({
      outlierDetection: options.outlierDetection,
      hosts: () => this.directory.all().length,
      ...(options.warnings === false ? {} : { onEvent: (event: HealthEvent) => this.#warn(event) }),
    });
    this.budget = options.retryBudget === undefined ? undefined : new RetryBudget(options.retryBudget);
    this.#unwatchRules = registry.watchRules?.(options.service, (text) => this.applyRules(text));
  }

  /** The call statistics of the service, made on first use (for balancers that read them). */
  stats(): EndpointStatsTable {
    const loadOf = this.#options.loadOf;
    return (this.#stats ??= new EndpointStatsTable(loadOf === undefined ? {} : { loadOf }));
  }

  /**
   * Applies a rules text from the registry (undefined: no rules). An invalid text is refused with
   * one `FARCALL_BAD_RULES` warning per distinct text, and the rules in force stay.
   */
  applyRules(text: string | undefined): void {
    if (text === undefined) {
      this.#install(undefined, none);
      return;
    }
    let rules: GovernanceRules;
    let routers: readonly Router[];
    try {
      rules = parseGovernanceRules(text);
      const routes = rules.routes ?? [];
      routers = routes.length === 0 ? none : [conditionRouter(routes)];
    } catch (error) {
      const e = FarcallError.from(error, "invalid_argument");
      this.#rejected = { message: e.message, at: Date.now() };
      if (this.#rejectedText !== text && this.#options.warnings !== false) {
        process.emitWarning(`farcall: refused the governance rules of ${this.#name()} from the registry, keeping the previous ones: ${e.message}`, { code: badRulesWarningCode });
      }
      this.#rejectedText = text;
      return;
    }
    this.#install(rules, routers);
  }

  #install(rules: GovernanceRules | undefined, dynamic: readonly Router[]): void {
    this.#rules = rules;
    this.#appliedAt = Date.now();
    this.#rejected = undefined;
    this.#rejectedText = undefined;
    const overrides = new Map<string, { weight?: number; disabled?: boolean }>();
    for (const [address, o] of Object.entries(rules?.providers ?? {})) overrides.set(address, o);
    this.directory.setOverrides(overrides as ProviderOverrides);
    const tag = rules?.tagForce === undefined ? this.#tagRouter : tagRouter({ force: rules.tagForce });
    this.routing.current = routingOf([...this.#static, tag, ...dynamic], this.#options.context);
  }

  /** Periodic upkeep (outlier sweep), run by the application every outlier interval. */
  sweep(now: number): void {
    this.health.sweep(
      now,
      this.directory.all().map((e) => `${e.host}:${e.port}`),
    );
  }

  snapshot(now: number): ServiceGovernanceSnapshot {
    const overrides = this.#rules?.providers ?? {};
    const current = new Map(this.directory.current(now).map((e) => [`${e.host}:${e.port}`, e]));
    const providers = this.directory.all().map((registered): ProviderSnapshot => {
      const address = `${registered.host}:${registered.port}`;
      const override = overrides[address];
      const endpoint = current.get(address) ?? (override?.weight === undefined ? registered : { ...registered, weight: override.weight });
      const health = this.health.outliers?.health(address, now);
      const breakers: Record<string, BreakerState> = {};
      let breakerDegraded = false;
      for (const set of this.health.breakerSets()) {
        const breaker = set.peek(address);
        if (breaker === undefined) continue;
        const state = breaker.state(now);
        breakers[set.method] = state;
        if (state !== "closed") breakerDegraded = true;
      }
      const stats = this.#stats?.get(registered);
      const state = health?.state === "ejected" ? "ejected" : health?.state === "degraded" || breakerDegraded ? "degraded" : "healthy";
      return Object.freeze({
        address,
        id: registered.id,
        tag: registered.tag,
        registeredWeight: registered.weight,
        effectiveWeight: override?.disabled === true ? 0 : effectiveWeight(endpoint, now),
        disabled: override?.disabled === true,
        state,
        ejectedUntil: health?.ejectedUntil,
        consecutiveFailures: health?.consecutiveFailures ?? 0,
        connection: this.#options.connectionState(registered, now),
        breakers: Object.freeze(breakers),
        inFlight: stats?.inFlight,
        peakMs: stats?.peakMs(),
        averageMs: stats?.averageMs(),
        reportedLoad: this.#reportedLoad(address),
      });
    });
    const { service, version, group } = this.#options;
    return Object.freeze({
      service,
      version,
      group,
      rules: Object.freeze({ current: this.#rules, appliedAt: this.#appliedAt, rejected: this.#rejected }),
      retryBudget: this.budget === undefined ? undefined : Object.freeze({ exhausted: this.budget.exhausted }),
      providers: Object.freeze(providers),
    });
  }

  #reportedLoad(address: string): ProviderSnapshot["reportedLoad"] {
    const last = this.#options.loadOf?.(address).last;
    return last === undefined ? undefined : Object.freeze({ busy: last.sample.busy, memory: last.sample.memory, at: last.at });
  }

  close(): void {
    this.#unwatchRules?.();
    this.directory.close();
  }

  #name(): string {
    const { service, version, group } = this.#options;
    return `${service}:${version}${group === "" ? "" : ` (group ${group})`}`;
  }

  #warn(event: HealthEvent): void {
    if (event.kind === "ejection") {
      if (event.health.state !== "ejected") return;
      const seconds = Math.round(((event.health.ejectedUntil ?? event.at) - event.at) / 1000);
      process.emitWarning(`farcall: ejected provider ${event.address} of ${this.#name()} for ${seconds} s (outlier detection)`, { code: healthWarningCode });
    } else if (event.to === "open" && event.from === "closed") {
      process.emitWarning(`farcall: circuit breaker of ${this.#name()}#${event.method} at ${event.address} opened`, { code: healthWarningCode });
    }
  }
}
