import { defineService } from "@farcall/core";

/** What a reply of {@link FaultsEcho} carries: the provider's pid, so tests see who served. */
export interface Served {
  readonly pid: number;
  readonly n: number;
}

/** The service the fault tests' provider processes offer. */
export interface FaultsEchoService {
  /** Idempotent: safe to retry on another provider. */
  whoami(n: number): Served;
  /** Not idempotent: a retry after the request was sent would be a second execution. */
  append(n: number): Served;
}

export const FaultsEcho = defineService<FaultsEchoService>("faults.Echo", {
  version: "1",
  methods: { whoami: { idempotent: true }, append: {} },
});
