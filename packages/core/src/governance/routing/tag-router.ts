import type { Call } from "../../call/call.js";
import { badOption } from "../../errors/farcall-error.js";
import type { Endpoint } from "../../registry/endpoint.js";
import { noEndpoints, type RouteContext, type Router } from "./router.js";

/** The call metadata key naming the tag a call asks for (`withOptions(stub, { metadata: { "farcall-tag": "gray" } })`). */
export const tagMetadataKey = "farcall-tag";

/** Options of {@link tagRouter}. */
export interface TagRouterOptions {
  /**
   * When no provider carries the requested tag: `false` (default) sends the call to the untagged
   * providers instead, `true` leaves it with no provider.
   */
  readonly force?: boolean;
}

/** One snapshot's providers grouped by tag; a group equal to the whole snapshot is the snapshot itself. */
interface TagGroups {
  /** Where calls without a tag go: the untagged providers, or all of them when none is untagged. */
  readonly untagged: readonly Endpoint[];
  readonly byTag: ReadonlyMap<string, readonly Endpoint[]>;
}

/**
 * Tag routing (gray releases, canaries, per-tenant fleets): a call asking for tag T (its metadata
 * `farcall-tag`, a non-empty string) goes to the providers whose `tag` is T; when there are none,
 * to the untagged providers (`tag` `""`), or with `force` to none. A call asking for no tag goes to
 * the untagged providers, or to all providers when every one is tagged (a fleet that is entirely
 * tagged still serves untagged calls). Providers are grouped by tag once per snapshot (cached by
 * array identity), so a call costs two map lookups; the snapshot itself is returned when nothing
 * is filtered out.
 * @throws FarcallError `invalid_argument` (`bad_option`, `details.option` `force`) when `force` is not a boolean.
 */
export function tagRouter(options: TagRouterOptions = {}): Router {
  const force = options.force ?? false;
  if (typeof force !== "boolean") badOption("force", "must be a boolean");
  const groups = new WeakMap<readonly Endpoint[], TagGroups>();
  return {
    name: "tagRouter",
    route(endpoints: readonly Endpoint[], call: Call, _context: RouteContext): readonly Endpoint[] {
      if (endpoints.length === 0) return endpoints;
      let g = groups.get(endpoints);
      if (g === undefined) {
        g = groupByTag(endpoints);
        groups.set(endpoints, g);
      }
      const tag = call.metadata[tagMetadataKey];
      if (typeof tag !== "string" || tag === "") return g.untagged;
      return g.byTag.get(tag) ?? (force ? noEndpoints : g.byTag.get("") ?? noEndpoints);
    },
  };
}

function groupByTag(endpoints: readonly Endpoint[]): TagGroups {
  const lists = new Map<string, Endpoint[]>();
  for (const endpoint of endpoints) {
    const list = lists.get(endpoint.tag);
    if (list === undefined) lists.set(endpoint.tag, [endpoint]);
    else list.push(endpoint);
  }
  const byTag = new Map<string, readonly Endpoint[]>();
  for (const [tag, list] of lists) byTag.set(tag, list.length === endpoints.length ? endpoints : Object.freeze(list));
  return { untagged: byTag.get("") ?? endpoints, byTag };
}
