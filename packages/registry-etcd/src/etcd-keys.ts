import { badOption } from "./errors.js";

/**
 * One key segment for an arbitrary string: `encodeURIComponent` (so it holds no `/`), plus `.`
 * as `%2E`, as the ZooKeeper registry names its nodes. Reversible with `decodeURIComponent`.
 */
export function encodeSegment(value: string): string {
  return encodeURIComponent(value).replace(/\./g, "%2E");
}

/** Checks the `prefix` option: starts with `/`, no trailing slash, no empty, `.` or `..` segment. */
export function checkPrefix(prefix: unknown): string {
  if (typeof prefix !== "string" || !prefix.startsWith("/") || prefix.length > 1024) {
    badOption("prefix", "expected a key prefix starting with '/', such as /farcall");
  }
  if (prefix === "/") return prefix;
  for (const segment of prefix.slice(1).split("/")) {
    if (segment === "" || segment === "." || segment === ".." || /[\u0000-\u001f\u007f]/.test(segment)) {
      badOption("prefix", "expected a key prefix with no empty, '.' or '..' segment and no trailing '/'");
    }
  }
  return prefix;
}

/** `<prefix>/<encoded service>`: the keys of one service start with this and a `/`. */
export function serviceKey(prefix: string, service: string): string {
  return `${prefix === "/" ? "" : prefix}/${encodeSegment(service)}`;
}

/** `<prefix>/<encoded service>/providers/`: every provider key of a service starts with this. */
export function providersPrefix(prefix: string, service: string): string {
  return `${serviceKey(prefix, service)}/providers/`;
}

/** `<prefix>/<encoded service>/consumers/`: every consumer key of a service starts with this. */
export function consumersPrefix(prefix: string, service: string): string {
  return `${serviceKey(prefix, service)}/consumers/`;
}

/** `<prefix>/<encoded service>/rules`: the key whose value is the service's governance rules text. */
export function rulesKey(prefix: string, service: string): string {
  return `${serviceKey(prefix, service)}/rules`;
}
