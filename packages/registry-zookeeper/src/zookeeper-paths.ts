import { badOption } from "./errors.js";

/**
 * One path segment for an arbitrary string: `encodeURIComponent`, plus `.` as `%2E` so that the
 * segments `.` and `..` (invalid in ZooKeeper) cannot occur. Reversible with `decodeURIComponent`.
 */
export function encodeSegment(value: string): string {
  return encodeURIComponent(value).replace(/\./g, "%2E");
}

/** Checks the `root` option: absolute, no trailing slash, no empty, `.` or `..` segment. */
export function checkRoot(root: unknown): string {
  if (typeof root !== "string" || !root.startsWith("/") || root.length > 1024) {
    badOption("root", "expected an absolute ZooKeeper path such as /farcall");
  }
  if (root === "/") return root;
  for (const segment of root.slice(1).split("/")) {
    if (segment === "" || segment === "." || segment === ".." || /[\u0000-\u001f\u007f]/.test(segment)) {
      badOption("root", "expected an absolute ZooKeeper path with no empty, '.' or '..' segment and no trailing '/'");
    }
  }
  return root;
}

/** `<root>/<encoded service>`: the node of one service. */
export function servicePath(root: string, service: string): string {
  return `${root === "/" ? "" : root}/${encodeSegment(service)}`;
}

/** `<root>/<encoded service>/providers`: the parent of a service's provider nodes. */
export function providersPath(root: string, service: string): string {
  return `${servicePath(root, service)}/providers`;
}

/** `<root>/<encoded service>/consumers`: the parent of a service's consumer nodes. */
export function consumersPath(root: string, service: string): string {
  return `${servicePath(root, service)}/consumers`;
}

/** `<root>/<encoded service>/rules`: the node whose data is the service's governance rules text. */
export function rulesPath(root: string, service: string): string {
  return `${servicePath(root, service)}/rules`;
}
