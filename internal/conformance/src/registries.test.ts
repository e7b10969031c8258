import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createMemoryRegistryStore,
  directRegistry,
  type LocalRegistryOptions,
  localRegistry,
  memoryRegistry,
} from "@farcall/core/extension";
import { type RegistryPair, registryConformance, registryLifecycleConformance } from "./registry-conformance.js";

registryConformance("memory", async (): Promise<RegistryPair> => {
  const store = createMemoryRegistryStore();
  const a = memoryRegistry({ store });
  const b = memoryRegistry({ store });
  return {
    a,
    b,
    async cleanup() {
      await Promise.all([a.close(), b.close()]);
    },
  };
});

function localPair(options: LocalRegistryOptions): () => Promise<RegistryPair> {
  return async () => {
    const directory = await mkdtemp(join(tmpdir(), "farcall-conformance-"));
    const a = localRegistry({ ...options, directory });
    const b = localRegistry({ ...options, directory });
    return {
      a,
      b,
      async cleanup() {
        await Promise.all([a.close(), b.close()]);
        await rm(directory, { recursive: true, force: true });
      },
    };
  };
}

registryConformance("local", localPair({}));

// Heartbeats, expiry checks and polls all run many times within each case.
registryConformance("local, fast timings", localPair({ heartbeatIntervalMs: 25, expireAfterMs: 250, pollIntervalMs: 20 }));

// direct is static: it ignores registrations and serves its fixed list for every service, so
// only the lifecycle half of the contract applies.
registryLifecycleConformance("direct", async (): Promise<RegistryPair> => {
  const endpoints = [
    { host: "127.0.0.1", port: 2000 },
    { host: "127.0.0.1", port: 2001, weight: 50 },
  ];
  const a = directRegistry({ endpoints });
  const b = directRegistry({ endpoints });
  return {
    a,
    b,
    async cleanup() {
      await Promise.all([a.close(), b.close()]);
    },
  };
});
