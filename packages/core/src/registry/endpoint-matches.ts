import type { Endpoint } from "./endpoint.js";

/**
 * The version or group of an endpoint that serves every version or group. Registries that know
 * nothing about versions and groups (the `direct` registry) report it; consumers honour it.
 */
export const wildcard = "*";

/**
 * Whether `endpoint` serves `version` in `group`: equal strings, or {@link wildcard} on the
 * endpoint's side. Consumers use it to filter a registry's full list.
 */
export function endpointMatches(endpoint: Endpoint, version: string, group: string): boolean {
  return (
    (endpoint.version === wildcard || endpoint.version === version) &&
    (endpoint.group === wildcard || endpoint.group === group)
  );
}
