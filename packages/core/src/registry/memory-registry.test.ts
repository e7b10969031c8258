import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Endpoint } from "./endpoint.js";
import { createMemoryRegistryStore, memoryRegistry } from "./memory-registry.js";
import { sampleEndpoint } from "./sample-endpoint.js";

function endpoint(service: string, port: number): Endpoint {
  return sampleEndpoint(service, port, { id: `127.0.0.1:${port}//${service}:1#m` });
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("memoryRegistry", () => {
  it("coalesces the changes of one tick into one delivery, asynchronously", async () => {
    const registry = memoryRegistry();
    const lists: (readonly Endpoint[])[] = [];
    registry.watch("s", (list) => lists.push(list));
    assert.equal(lists.length, 0, "never synchronous");
    await Promise.all([registry.register(endpoint("s", 1)), registry.register(endpoint("s", 2))]);
    await tick();
    assert.deepEqual(
      lists.map((l) => l.map((e) => e.port)),
      [[1, 2]],
    );
    await registry.close();
  });

  it("lets instances sharing a store see each other, and exposes the store's content", async () => {
    const store = createMemoryRegistryStore();
    const provider = memoryRegistry({ store });
    const consumer = memoryRegistry({ store });
    const registration = await provider.register(endpoint("s", 1));
    assert.deepEqual(store.services(), ["s"]);
    assert.deepEqual(
      store.endpoints("s").map((e) => e.port),
      [1],
    );
    const lists: (readonly Endpoint[])[] = [];
    consumer.watch("s", (list) => lists.push(list));
    await tick();
    await registration.unregister();
    await tick();
    assert.deepEqual(
      lists.map((l) => l.length),
      [1, 0],
    );
    assert.deepEqual(store.services(), []);
    await Promise.all([provider.close(), consumer.close()]);
  });

  it("keeps governance rules in the store, past the publisher's close, coalescing one tick's changes", async () => {
    const store = createMemoryRegistryStore();
    const publisher = memoryRegistry({ store });
    const consumer = memoryRegistry({ store });
    const seen: (string | undefined)[] = [];
    const unwatch = consumer.watchRules?.("s", (rules) => seen.push(rules));
    assert.deepEqual(seen, [], "never synchronous");
    await tick();
    await Promise.all([publisher.publishRules?.("s", "one"), publisher.publishRules?.("s", "two")]);
    await tick();
    assert.deepEqual(seen, [undefined, "two"]);
    await publisher.close();
    assert.equal(store.rules("s"), "two");
    await consumer.publishRules?.("s", undefined);
    await tick();
    assert.deepEqual(seen, [undefined, "two", undefined]);
    unwatch?.();
    await consumer.close();
  });

  it("rejects a store it did not make", () => {
    assert.throws(() => memoryRegistry({ store: { endpoints: () => [], services: () => [], rules: () => undefined } }), TypeError);
  });
});
