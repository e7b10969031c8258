// Runs the compiled demo (`npm start` without the build) as a child process: two providers, one
// consumer, provider 1 stopped with SIGTERM under load. Zero failed calls is the bar.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { it } from "node:test";

const demoTimeoutMs = 60_000;

function runDemo(): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
  const script = fileURLToPath(new URL("./demo.js", import.meta.url));
  const child = spawn(process.execPath, [script], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      // The demo kills its own children by PID in its `finally`; SIGINT lets it run that.
      if (child.pid !== undefined) process.kill(child.pid, "SIGINT");
      output += `\n[test] demo still running after ${demoTimeoutMs} ms: interrupted\n`;
    }, demoTimeoutMs);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, output });
    });
  });
}

it("runs the seed's demo across processes with zero failed calls through a provider's SIGTERM", { timeout: demoTimeoutMs + 10_000 }, async () => {
  const { code, signal, output } = await runDemo();
  assert.equal(signal, null, output);
  assert.equal(code, 0, output);
  const totals = /total calls: (\d+), failed calls: (\d+)/.exec(output);
  assert.ok(totals, `no totals line in:\n${output}`);
  assert.ok(Number(totals[1]) >= 1100, "the seed's 100 inserts and 1000 getAllUser calls at least");
  assert.equal(Number(totals[2]), 0, output);
  for (const name of ["info-user-provider-1", "info-user-provider-2"]) {
    const served = new RegExp(`${name} served (\\d+) / (\\d+) calls`).exec(output);
    assert.ok(served, `no served line for ${name} in:\n${output}`);
    assert.ok(Number(served[1]) > 0 && Number(served[2]) > 0, `${name} served no calls:\n${output}`);
  }
  assert.match(output, /info-user-provider-1 \(pid \d+\) got SIGTERM, drained and closed in \d+ ms, exited with code 0/);
  assert.match(output, /RESULT: PASS/);
});
