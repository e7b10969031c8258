import type { System } from "../system.js";

/** Benchmarked systems in table order; loaded lazily so a child only imports its own. */
export const systemNames = ["raw", "farcall", "farcall-direct", "farcall-governed", "http", "grpc"] as const;
export type SystemName = (typeof systemNames)[number];

export function isSystemName(value: string): value is SystemName {
  return (systemNames as readonly string[]).includes(value);
}

export async function loadSystem(name: SystemName): Promise<System> {
  switch (name) {
    case "raw":
      return (await import("./raw.js")).rawSystem;
    case "grpc":
      return (await import("./grpc.js")).grpcSystem;
    case "http":
      return (await import("./http.js")).httpSystem;
    case "farcall":
      return (await import("./farcall.js")).farcallSystem;
    case "farcall-direct":
      return (await import("./farcall.js")).farcallDirectSystem;
    case "farcall-governed":
      return (await import("./farcall.js")).farcallGovernedSystem;
  }
}
