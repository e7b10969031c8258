// The contract's compile-time promises (checked by tsc: each @ts-expect-error must be an error)
// and its run-time validation.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createApplication } from "../src/application.js";
import type { Stub } from "../src/client/stub.js";
import { withOptions } from "../src/client/stub.js";
import { defineService } from "../src/contract/define-service.js";
import { FarcallError } from "../src/errors/farcall-error.js";
import type { CallContext } from "../src/call/call-context.js";
import type { Implementation } from "../src/contract/implementation.js";
import { rpcService } from "../src/contract/rpc-service.js";
import { createMemoryRegistryStore, memoryRegistry } from "../src/registry/memory-registry.js";
import { memoryTransport } from "../src/transport/memory-transport.js";

interface Calc {
  add(a: number, b: number): number;
  name(): Promise<string>;
}

function rejects(fn: () => unknown, option: string): void {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof FarcallError);
    assert.equal(error.code, "invalid_argument");
    assert.equal(error.reason, "bad_option");
    assert.match(String(error.details["option"]), new RegExp(option));
    return;
  }
  assert.fail(`expected bad_option for ${option}`);
}

describe("contract", () => {
  it("requires every method and no other (compile-time)", () => {
    // @ts-expect-error a missing method is a compile error
    const missing = () => defineService<Calc>("t.Calc", { version: "1", methods: { add: {} } });
    // @ts-expect-error an extra method is a compile error
    const extra = () => defineService<Calc>("t.Calc", { version: "1", methods: { add: {}, name: {}, sub: {} } });
    const Calc = defineService<Calc>("t.Calc", { version: "1", methods: { add: { idempotent: true }, name: {} } });
    assert.equal(typeof missing, "function");
    assert.equal(typeof extra, "function");
    assert.deepEqual([...Calc.methods.keys()], ["add", "name"]);
  });

  it("types stubs and implementations from the interface (compile-time)", () => {
    const check = (stub: Stub<Calc>): void => {
      const sum: Promise<number> = stub.add(1, 2);
      const n: Promise<string> = stub.name();
      // @ts-expect-error arguments are typed
      void stub.add("1", 2);
      void sum;
      void n;
    };
    const impl: Implementation<Calc> = { add: (_ctx, a, b) => a + b, name: async (ctx) => ctx.service };
    // @ts-expect-error results are typed
    const wrong: Implementation<Calc> = { add: () => "3", name: () => "x" };
    assert.equal(typeof check, "function");
    assert.equal(typeof impl.add, "function");
    assert.ok(wrong);
  });

  it("rejects malformed names, versions and timeouts at definition", () => {
    rejects(() => defineService<Calc>("not a name", { version: "1", methods: { add: {}, name: {} } }), "name");
    rejects(() => defineService<Calc>("t.Calc", { version: "1 0", methods: { add: {}, name: {} } }), "version");
    rejects(() => defineService<Calc>("t.Calc", { version: "1", methods: { add: { timeoutMs: -1 }, name: {} } }), "methods.add.timeoutMs");
    rejects(() => defineService<{ then(): void }>("t.T", { version: "1", methods: { then: {} } }), "methods.then");
  });

  it("validates application options at construction, naming the option", () => {
    const base = { env: {}, registry: "memory", handleSignals: false } as const;
    rejects(() => createApplication({ ...base, serializer: "xml" as "json" }), "serializer");
    rejects(() => createApplication({ ...base, loadBalancer: "fastest" as "random" }), "loadBalancer");
    rejects(() => createApplication({ ...base, faultTolerance: "hedging" as "failover" }), "faultTolerance");
    rejects(() => createApplication({ ...base, port: 70000 }), "port");
    rejects(() => createApplication({ ...base, host: "bad host" }), "host");
    rejects(() => createApplication({ ...base, registry: "nosuch://x" }), "registry");
    rejects(() => withOptions({}, { timeoutMs: 5 }), "stub");
  });

  it("rejects an implementation missing a method", () => {
    const app = createApplication({ env: {}, registry: "memory", handleSignals: false });
    const Calc = defineService<Calc>("t.Calc", { version: "1", methods: { add: {}, name: {} } });
    rejects(() => app.provide(Calc, { add: (a: number, b: number) => a + b } as unknown as Implementation<Calc>), "implementation.name");
  });

  it("provides an instance of a class decorated with @rpcService (the seeds' annotation style)", async () => {
    const Calc = defineService<Calc>("t.Calc", { version: "1", methods: { add: { idempotent: true }, name: {} } });
    @rpcService(Calc)
    class CalcImpl implements Implementation<Calc> {
      add(_ctx: CallContext, a: number, b: number): number {
        return a + b;
      }
      async name(): Promise<string> {
        return "calc";
      }
    }
    class Undecorated {}
    const store = createMemoryRegistryStore();
    const transport = memoryTransport();
    const base = { env: {}, handleSignals: false, transport, warmupMs: 0 } as const;
    const provider = createApplication({ ...base, name: "p", registry: memoryRegistry({ store }) });
    const consumer = createApplication({ ...base, name: "c", registry: memoryRegistry({ store }) });
    try {
      rejects(() => provider.provide(new Undecorated()), "implementation");
      provider.provide(new CalcImpl());
      await provider.start();
      const calc = consumer.client(Calc);
      assert.equal(await calc.add(2, 3), 5);
      assert.equal(await calc.name(), "calc");
    } finally {
      await consumer.close();
      await provider.close();
    }
  });
});
