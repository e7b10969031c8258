import type { Call } from "../../call/call.js";
import { badOption, FarcallError } from "../../errors/farcall-error.js";
import type { Endpoint } from "../../registry/endpoint.js";
import { type ConditionRule, matchesThen, matchesWhen, parseConditionRule } from "./condition-rule.js";
import { keepEndpoints, noEndpoints, type RouteContext, type Router } from "./router.js";

/** One rule of a {@link conditionRouter} with its flags. */
export interface ConditionRuleOptions {
  /** The rule text, `when => then` (grammar: {@link parseConditionRule}). */
  readonly rule: string;
  /**
   * When the rule matches a call but no provider matches its `then` side: `false` (default)
   * ignores the rule for that call (the list passes unchanged), `true` keeps the empty list (the
   * call fails as having no provider).
   */
  readonly force?: boolean;
  /** `false` turns the rule off; its text is still checked. Default `true`. */
  readonly enabled?: boolean;
}

/** Most methods whose result is cached per snapshot; calls to further methods are routed uncached. */
const maxCachedMethods = 1024;

interface ActiveRule {
  readonly rule: ConditionRule;
  readonly force: boolean;
  /** This rule's output per input list, for calls its `when` matches (input lists are snapshots or cached outputs). */
  readonly outputs: WeakMap<readonly Endpoint[], readonly Endpoint[]>;
}

/**
 * Condition routing (Dubbo's condition router): each enabled rule, in order and on the previous
 * rule's output, applies to the calls its `when` side matches and keeps the providers its `then`
 * side matches:
 * - `host = 10.0.0.5 =>` (empty `then`, a block rule): the consumer on 10.0.0.5 gets no provider,
 *   whatever `force` says (as in Dubbo);
 * - `method = find*,get* => host = 10.0.0.1,10.0.0.2`: reads go to two hosts (read/write split);
 * - `=> host != 10.0.0.3` (empty `when`): no call goes to 10.0.0.3.
 *
 * When a rule leaves no provider for a call it matches, it is ignored for that call unless its
 * `force` is true. Results are cached: per rule by input list identity, and, when no rule reads
 * `arguments[…]` or `metadata.…`, per (snapshot identity, method) for up to 1024 methods and the
 * current consumer context, so a call on a known snapshot costs two map lookups.
 * @param rules rule texts (`force` false, enabled) or {@link ConditionRuleOptions}.
 * @throws FarcallError `invalid_argument` with reason `bad_rule` (`details.rule`, the message
 *   naming `rules[i]`) for an invalid rule text, and with reason `bad_option` (`details.option`
 *   `rules`, `rules[i]`, `rules[i].force` or `rules[i].enabled`) for anything else malformed.
 */
export function conditionRouter(rules: readonly (string | ConditionRuleOptions)[]): Router {
  if (!Array.isArray(rules)) badOption("rules", "must be an array of rule texts or { rule, force?, enabled? }");
  const active: ActiveRule[] = [];
  rules.forEach((item: unknown, i) => {
    const options = (typeof item === "string" ? { rule: item } : item) as ConditionRuleOptions;
    if (typeof options !== "object" || options === null || typeof options.rule !== "string") {
      badOption(`rules[${i}]`, "must be a rule text or { rule: string, force?: boolean, enabled?: boolean }");
    }
    if (options.force !== undefined && typeof options.force !== "boolean") badOption(`rules[${i}].force`, "must be a boolean");
    if (options.enabled !== undefined && typeof options.enabled !== "boolean") badOption(`rules[${i}].enabled`, "must be a boolean");
    const rule = parseAt(options.rule, i);
    if (options.enabled === false) return;
    active.push({ rule, force: options.force ?? false, outputs: new WeakMap() });
  });
  const cacheable = active.every((r) => r.rule.when.every((c) => c.key !== "arguments" && c.key !== "metadata"));
  let cache = new WeakMap<readonly Endpoint[], Map<string, readonly Endpoint[]>>();
  let cachedFor: RouteContext = { application: "", host: "" };

  return {
    perCall: !cacheable,
    name: "conditionRouter",
    route(endpoints: readonly Endpoint[], call: Call, context: RouteContext): readonly Endpoint[] {
      if (active.length === 0 || endpoints.length === 0) return endpoints;
      if (!cacheable) return applyRules(active, endpoints, call, context);
      if (context.application !== cachedFor.application || context.host !== cachedFor.host) {
        // Rules may read the consumer's application and host: results for another context are stale.
        cache = new WeakMap();
        cachedFor = { application: context.application, host: context.host };
      }
      let byMethod = cache.get(endpoints);
      if (byMethod === undefined) {
        byMethod = new Map();
        cache.set(endpoints, byMethod);
      }
      const method = call.ref.method;
      let routed = byMethod.get(method);
      if (routed === undefined) {
        routed = applyRules(active, endpoints, call, context);
        if (byMethod.size < maxCachedMethods) byMethod.set(method, routed);
      }
      return routed;
    },
  };
}

function parseAt(text: string, index: number): ConditionRule {
  try {
    return parseConditionRule(text);
  } catch (error) {
    const e = FarcallError.from(error);
    throw new FarcallError(e.code, `rules[${index}]: ${e.message}`, { ...(e.reason === undefined ? {} : { reason: e.reason }), details: e.details, sent: false, cause: e });
  }
}

function applyRules(active: readonly ActiveRule[], endpoints: readonly Endpoint[], call: Call, context: RouteContext): readonly Endpoint[] {
  let list = endpoints;
  for (let i = 0; i < active.length && list.length > 0; i++) {
    const r = active[i] as ActiveRule;
    if (!matchesWhen(r.rule, call, context)) continue;
    let output = r.outputs.get(list);
    if (output === undefined) {
      output = narrow(r, list);
      r.outputs.set(list, output);
    }
    list = output;
  }
  return list;
}

function narrow(r: ActiveRule, list: readonly Endpoint[]): readonly Endpoint[] {
  const rule = r.rule;
  if (rule.then.length === 0) return noEndpoints;
  const kept = keepEndpoints(list, (endpoint) => matchesThen(rule, endpoint));
  return kept.length === 0 && !r.force ? list : kept;
}
