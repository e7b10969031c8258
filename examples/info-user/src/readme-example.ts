import { createApplication, defineService } from "@farcall/core";

interface Greeter {
  greet(name: string): string;
}
const Greeter = defineService<Greeter>("demo.Greeter", {
  version: "1.0.0",
  methods: { greet: { idempotent: true, timeoutMs: 500 } },
});

// Provider: usually its own process. The default registry is "local": no server needed.
const provider = createApplication({ name: "greeter" });
provider.provide(Greeter, { greet: (ctx, name) => `hello ${name}, from ${ctx.service}` });
await provider.start();

// Consumer: finds the provider through the registry and calls it like a local object.
const consumer = createApplication({ name: "caller" });
const greeter = consumer.client(Greeter);
const reply: string = await greeter.greet("Ada"); // "hello Ada, from demo.Greeter"
console.log(reply);

await consumer.close();
await provider.close();
