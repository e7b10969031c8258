/*
 * Key layout (`<prefix>` is the `prefix` option, "farcall" by default; `<service>` is the service
 * name as is: core restricts it to [A-Za-z0-9_.:-/$], so it never holds the braces of a hash tag):
 *
 *   <prefix>:{<service>}:providers   ZSET   endpoint id → time of its last report (Redis TIME, ms)
 *   <prefix>:{<service>}:endpoints   HASH   endpoint id → endpoint JSON (≤ 8 KiB)
 *   <prefix>:{<service>}:version     STRING the global version of the service's last change
 *   <prefix>:{<service>}:consumers   ZSET   consumer JSON → time of its last report (informational)
 *   <prefix>:{<service>}:rules       STRING the service's governance rules text (≤ 64 KiB); a change
 *                                           takes a new version like a list change; never swept
 *   <prefix>:services                SET    services that have providers or consumers (the sweep's list)
 *   <prefix>:version                 STRING global version: INCR on every change of any list
 *   <prefix>:sweeper                 HASH   contact, graceUntil, sweptAt (ms): the sweepers' shared state
 *   <prefix>:changes                 pub/sub channel: the new global version, after every change
 */

/** The keys of one service. */
export interface ServiceKeys {
  readonly providers: string;
  readonly endpoints: string;
  readonly version: string;
  readonly consumers: string;
  readonly rules: string;
}

/** The keys of a service; the braces make them one hash tag (one slot). */
export function serviceKeys(prefix: string, service: string): ServiceKeys {
  const base = `${prefix}:{${service}}:`;
  return { providers: `${base}providers`, endpoints: `${base}endpoints`, version: `${base}version`, consumers: `${base}consumers`, rules: `${base}rules` };
}

/** The prefix-wide keys and the change channel. */
export interface GlobalKeys {
  readonly services: string;
  readonly version: string;
  readonly sweeper: string;
  readonly channel: string;
}

export function globalKeys(prefix: string): GlobalKeys {
  return { services: `${prefix}:services`, version: `${prefix}:version`, sweeper: `${prefix}:sweeper`, channel: `${prefix}:changes` };
}
