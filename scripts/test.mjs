// Runs every compiled test file (`*.test.js` under a workspace's dist/) with node's test runner.
// Node 20 has no glob support in `node --test`, so the list is built here. Files run two at a
// time, except `*.solo.test.js`: those measure throughput against a capacity measured in the same
// run (overload tests), so they run afterwards, one at a time, with no other test file taking the
// machine's CPU.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const roots = ["packages", "internal", "examples"];
const files = [];
function walk(dir) {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules") continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (name.endsWith(".test.js") && path.includes(`${"/"}dist${"/"}`)) files.push(path);
  }
}
for (const root of roots) {
  try {
    walk(root);
  } catch (error) {
    if (error.code !== "ENOENT") throw error;
  }
}
const filter = process.argv[2];
const selected = filter ? files.filter((f) => f.includes(filter)) : files;
if (selected.length === 0) {
  console.error("no test files found: run the build first");
  process.exit(1);
}
const solo = selected.filter((f) => f.endsWith(".solo.test.js")).sort();
const shared = selected.filter((f) => !f.endsWith(".solo.test.js")).sort();
let status = 0;
for (const [concurrency, batch] of [[2, shared], [1, solo]]) {
  if (batch.length === 0) continue;
  const result = spawnSync(process.execPath, ["--test", `--test-concurrency=${concurrency}`, "--test-timeout=120000", ...batch], { stdio: "inherit" });
  if (result.status !== 0) status = result.status ?? 1;
}
process.exit(status);
