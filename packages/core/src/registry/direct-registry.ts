import { FarcallError, badOption } from "../errors/farcall-error.js";
import { type Endpoint, parseEndpoint } from "./endpoint.js";
import { wildcard } from "./endpoint-matches.js";
import type { Registration, Registry, Unwatch } from "./registry.js";
import { registryClosedError } from "./check-endpoint.js";
import { WatchDelivery } from "./watch-delivery.js";

/** One provider address of a {@link directRegistry}. */
export interface DirectAddress {
  /** Host name or IP address; IPv6 without brackets. */
  readonly host: string;
  readonly port: number;
  /** Relative weight for balancing, 0..10000. Default 100. */
  readonly weight?: number;
}

/** Options of {@link directRegistry}. */
export interface DirectRegistryOptions {
  /** The static provider list, 1..1024 addresses. */
  readonly endpoints: readonly DirectAddress[];
  /** When set, only this service is served; a watch of any other service sees an empty list. */
  readonly service?: string;
}

const maxAddresses = 1024;
const noRegistration: Registration = Object.freeze({ async unregister() {} });

/**
 * A static {@link Registry}: consumers call fixed addresses, as with `direct://host:port,...`.
 * `watch(service)` delivers, once and asynchronously, one endpoint per address for whichever
 * service is asked, with version and group {@link wildcard} (`"*"`: matches any version and
 * group; see `endpointMatches`), protocol `farcall`, serializer `msgpack`, `pid` 0, no methods,
 * and id `<host>:<port>/<wildcard>/<service>:<wildcard>#direct`. The list never changes afterwards. `register` does
 * nothing (providers must be started at the listed addresses) and resolves to a no-op
 * registration. No timers, no I/O.
 * @throws FarcallError `invalid_argument`, reason `bad_option`, for an empty or oversized list,
 * a malformed host, port or weight, or a malformed service name.
 */
export function directRegistry(options: DirectRegistryOptions): Registry {
  const addresses = checkAddresses(options.endpoints);
  const only = options.service;
  if (only !== undefined && !validName(only)) {
    badOption("service", "not a valid service name");
  }
  const stops = new Set<() => void>();
  let closed = false;
  return {
    kind: "direct",
    async register(): Promise<Registration> {
      if (closed) throw registryClosedError("direct");
      return noRegistration;
    },
    watch(service: string, onChange: (endpoints: readonly Endpoint[]) => void): Unwatch {
      if (closed) return () => {};
      const delivery = new WatchDelivery(onChange);
      const stop = (): void => {
        delivery.stop();
        stops.delete(stop);
      };
      stops.add(stop);
      queueMicrotask(() => {
        delivery.deliver(only === undefined || only === service ? directEndpoints(service, addresses) : []);
      });
      return stop;
    },
    async close(): Promise<void> {
      closed = true;
      for (const stop of [...stops]) stop();
    },
  };
}

function checkAddresses(value: unknown): readonly DirectAddress[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > maxAddresses) {
    badOption("endpoints", `expected 1..${maxAddresses} addresses`);
  }
  return Object.freeze(
    value.map((item: unknown, index): DirectAddress => {
      const a = (typeof item === "object" && item !== null ? item : {}) as Record<string, unknown>;
      const host = a["host"];
      const port = a["port"];
      const weight = a["weight"] ?? 100;
      if (typeof host !== "string" || !validHost(host)) {
        badOption(`endpoints[${index}].host`, "not a host name or IP address");
      }
      if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
        badOption(`endpoints[${index}].port`, "expected an integer 1..65535");
      }
      if (typeof weight !== "number" || !Number.isInteger(weight) || weight < 0 || weight > 10000) {
        badOption(`endpoints[${index}].weight`, "expected an integer 0..10000");
      }
      return Object.freeze({ host, port, weight });
    }),
  );
}

/** Host and name rules are those of {@link parseEndpoint}, which owns them. */
function validHost(host: string): boolean {
  return parseEndpoint({ id: "-", service: "-", version: "", group: "", host, port: 1 }) !== undefined;
}

function validName(service: string): boolean {
  return parseEndpoint({ id: "-", service, version: "", group: "", host: "-", port: 1 }) !== undefined;
}

function directEndpoints(service: string, addresses: readonly DirectAddress[]): readonly Endpoint[] {
  const endpoints: Endpoint[] = [];
  for (const { host, port, weight } of addresses) {
    const endpoint = parseEndpoint({
      id: `${host}:${port}/${wildcard}/${service}:${wildcard}#direct`,
      service,
      version: wildcard,
      group: wildcard,
      host,
      port,
      weight: weight ?? 100,
    });
    if (endpoint !== undefined) endpoints.push(endpoint);
  }
  return endpoints;
}

const bracketed = /^\[([0-9A-Fa-f:.]{2,45})\]:(\d{1,5})$/;
const plain = /^([A-Za-z0-9_.-]{1,255}):(\d{1,5})$/;

/**
 * Parses `direct://host:port,host:port` (the `direct://` prefix is optional; IPv6 hosts in
 * brackets: `direct://[::1]:2000`) into addresses for {@link directRegistry}.
 * @throws FarcallError `invalid_argument`, reason `bad_address`, naming the first malformed item.
 */
export function parseDirectAddress(text: string): DirectAddress[] {
  const list = text.trim().replace(/^direct:\/\//i, "");
  const items = list.split(",").map((item) => item.trim());
  if (items.length > maxAddresses) throw badAddress(text, `more than ${maxAddresses} addresses`);
  return items.map((item) => {
    const match = bracketed.exec(item) ?? plain.exec(item);
    const host = match?.[1];
    const port = Number(match?.[2]);
    if (host === undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw badAddress(item, "expected host:port with a port 1..65535");
    }
    return { host, port };
  });
}

function badAddress(address: string, problem: string): FarcallError {
  return new FarcallError("invalid_argument", `address ${JSON.stringify(address.slice(0, 200))}: ${problem}`, {
    reason: "bad_address",
    details: { address: address.slice(0, 200) },
    sent: false,
  });
}
