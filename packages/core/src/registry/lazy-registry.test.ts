import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pluginRegistry } from "../config/registry-address.js";
import { FarcallError } from "../errors/farcall-error.js";
import { lazyRegistry } from "./lazy-registry.js";
import { createMemoryRegistryStore, memoryRegistry } from "./memory-registry.js";
import { sampleEndpoint } from "./sample-endpoint.js";

describe("lazyRegistry", () => {
  it("starts watches made before loading once the implementation is there, and honours unwatch", async () => {
    const store = createMemoryRegistryStore();
    let release: () => void = () => {};
    const loaded = new Promise<void>((resolve) => (release = resolve));
    const lazy = lazyRegistry("memory", async () => {
      await loaded;
      return memoryRegistry({ store });
    });
    const seen: number[] = [];
    lazy.watch("s", (list) => seen.push(list.length));
    const stopped: number[] = [];
    const unwatch = lazy.watch("s", (list) => stopped.push(list.length));
    unwatch();
    const registration = lazy.register(sampleEndpoint("s", 1000));
    release();
    await registration;
    for (let i = 0; i < 100 && !seen.includes(1); i++) await new Promise((r) => setTimeout(r, 5));
    assert.ok(seen.includes(1), `deliveries: ${JSON.stringify(seen)}`);
    assert.deepEqual(stopped, []);
    await lazy.close();
  });

  it("reports a missing plugin package when registering, and closes cleanly", async () => {
    // As if @farcall/registry-etcd were not installed (in this repository it is).
    const registry = pluginRegistry("etcd", "etcd://127.0.0.1:2379", (name) => Promise.reject(new Error(`Cannot find package '${name}'`)));
    assert.equal(registry.kind, "etcd");
    const unwatch = registry.watch("s", () => assert.fail("no delivery without an implementation"));
    const error = (await registry.register(sampleEndpoint("s", 1000)).catch((e: unknown) => e)) as FarcallError;
    assert.ok(error instanceof FarcallError);
    assert.equal(error.code, "invalid_argument");
    assert.equal(error.reason, "bad_option");
    assert.match(error.message, /@farcall\/registry-etcd/);
    unwatch();
    await registry.close();
  });

  it("passes governance rules through once loaded, and says none for a registry without them", async () => {
    const store = createMemoryRegistryStore();
    const lazy = lazyRegistry("memory", () => Promise.resolve(memoryRegistry({ store })));
    const seen: Array<string | undefined> = [];
    const unwatch = lazy.watchRules?.("s", (text) => seen.push(text));
    await lazy.publishRules?.("s", '{"tagForce":true}');
    for (let i = 0; i < 100 && !seen.includes('{"tagForce":true}'); i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(seen.at(-1), '{"tagForce":true}', `deliveries: ${JSON.stringify(seen)}`);
    unwatch?.();
    await lazy.close();

    const bare = memoryRegistry({ store });
    const plain = lazyRegistry("plain", () => Promise.resolve({ kind: "plain", register: bare.register.bind(bare), watch: bare.watch.bind(bare), close: () => bare.close() }));
    const none: Array<string | undefined> = [];
    plain.watchRules?.("s", (text) => none.push(text));
    for (let i = 0; i < 100 && none.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(none, [undefined]);
    const error = (await plain.publishRules?.("s", "{}").catch((e: unknown) => e)) as FarcallError;
    assert.equal(error.code, "unimplemented");
    await plain.close();
  });
});
