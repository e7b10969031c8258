// The README's example is this package's readme-example.ts, byte for byte, and it runs.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const root = new URL("../../../../", import.meta.url);

test("the README's example is readme-example.ts", async () => {
  const readme = await readFile(new URL("README.md", root), "utf8");
  const source = await readFile(new URL("examples/info-user/src/readme-example.ts", root), "utf8");
  const block = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.equal(block, source);
});

test("the README's example runs and prints the greeting", async () => {
  const script = fileURLToPath(new URL("./readme-example.js", import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, [script], { timeout: 30_000 });
  assert.equal(stdout.trim(), "hello Ada, from demo.Greeter");
});
