import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { FarcallError } from "../errors/farcall-error.js";
import { parseProperties, readSettings, settings } from "./settings.js";
import { assertBadOption } from "../../test/assertions.js";

/** Reads settings from a plain record keyed by env var (`useEnvNames`) or file key. */
function read(values: Record<string, string>, source: string, useEnvNames: boolean): ReturnType<typeof readSettings> {
  return readSettings((s) => values[useEnvNames ? s.env : s.file], source, useEnvNames);
}

/** Asserts `fn` throws `invalid_argument` / `bad_option` naming `option` (in details and message), `sent: false`. */
function assertNamesOption(fn: () => unknown, option: string): FarcallError {
  const caught = assertBadOption(fn, option);
  assert.ok(caught.message.includes(option), `message ${JSON.stringify(caught.message)} names ${option}`);
  assert.equal(caught.sent, false);
  return caught;
}

describe("parseProperties", () => {
  it("reads key=value and key: value lines, trimming whitespace around keys and values", () => {
    const props = parseProperties("application.name=demo\n  server.port :  20880  \nserver.host\t=\t0.0.0.0\t\n");
    assert.deepEqual(Object.fromEntries(props), { "application.name": "demo", "server.port": "20880", "server.host": "0.0.0.0" });
  });

  it("splits at the first separator, so values may contain = and :", () => {
    const props = parseProperties("registry.address=direct://127.0.0.1:2000,127.0.0.1:2001\na:b=c");
    assert.equal(props.get("registry.address"), "direct://127.0.0.1:2000,127.0.0.1:2001");
    assert.equal(props.get("a"), "b=c");
  });

  it("ignores blank lines, # and ! comments and lines without a key; handles CRLF", () => {
    const text = ["# a comment", "! another", "", "   ", "=no key", ": no key either", "  # indented comment", "k=v"].join("\r\n");
    assert.deepEqual(Object.fromEntries(parseProperties(text)), { k: "v" });
  });

  it("accepts whitespace as the separator, as Java properties do, and a lone key as empty", () => {
    const props = parseProperties("server.port 20880\nserver.host  =  ::1\nlonekey\n");
    assert.deepEqual(Object.fromEntries(props), { "server.port": "20880", "server.host": "::1", lonekey: "" });
  });

  it("keeps the last value of a repeated key and allows empty values", () => {
    const props = parseProperties("serializer=json\nserializer=msgpack\napplication.group=");
    assert.equal(props.get("serializer"), "msgpack");
    assert.equal(props.get("application.group"), "");
  });
});

describe("readSettings", () => {
  it("parses integers, booleans and strings by the setting's kind", () => {
    const values = read(
      { FARCALL_PORT: "20880", FARCALL_INCLUDE_STACK: "true", FARCALL_HANDLE_SIGNALS: "0", FARCALL_NAME: " demo ", FARCALL_LOAD_BALANCER: "roundRobin" },
      "environment",
      true,
    );
    assert.deepEqual(values, { port: 20880, includeStack: true, handleSignals: false, name: "demo", loadBalancer: "roundRobin" });
  });

  it("reads file keys when not using env names, and skips empty values", () => {
    const values = read({ "server.port": "1", "application.group": "", "cluster.retries": "3" }, "x.properties", false);
    assert.deepEqual(values, { port: 1, retries: 3 });
  });

  it("ignores env names when reading a file and file keys when reading the environment", () => {
    assert.deepEqual(read({ "server.port": "1" }, "environment", true), {});
    assert.deepEqual(read({ FARCALL_PORT: "1" }, "x.properties", false), {});
  });

  it("names the env var and the environment as the source of a bad value", () => {
    const error = assertNamesOption(() => read({ FARCALL_PORT: "http" }, "environment", true), "FARCALL_PORT (environment)");
    assert.match(error.message, /not an integer/);
  });

  it("names the file key and the file path as the source of a bad value", () => {
    const error = assertNamesOption(() => read({ "server.port": "70000" }, "/etc/app/farcall.properties", false), "server.port (/etc/app/farcall.properties)");
    assert.match(error.message, /0\.\.65535/);
  });

  it("rejects integers out of range, fractions and garbage", () => {
    assertNamesOption(() => read({ FARCALL_RETRIES: "11" }, "environment", true), "FARCALL_RETRIES (environment)");
    assertNamesOption(() => read({ FARCALL_TIMEOUT_MS: "-1" }, "environment", true), "FARCALL_TIMEOUT_MS (environment)");
    assertNamesOption(() => read({ FARCALL_MAX_FRAME_BYTES: "1023" }, "environment", true), "FARCALL_MAX_FRAME_BYTES (environment)");
    assertNamesOption(() => read({ FARCALL_GRACE_MS: "1.5" }, "environment", true), "FARCALL_GRACE_MS (environment)");
    assertNamesOption(() => read({ FARCALL_WEIGHT: "1e3" }, "environment", true), "FARCALL_WEIGHT (environment)");
  });

  it("rejects booleans other than true/false/1/0", () => {
    assertNamesOption(() => read({ "server.includeStack": "yes" }, "f", false), "server.includeStack (f)");
  });

  it("reads emptyProtection from FARCALL_EMPTY_PROTECTION and cluster.emptyProtection, as a boolean only", () => {
    assert.deepEqual(read({ FARCALL_EMPTY_PROTECTION: "false" }, "environment", true), { emptyProtection: false });
    assert.deepEqual(read({ "cluster.emptyProtection": "true" }, "f", false), { emptyProtection: true });
    assertNamesOption(() => read({ FARCALL_EMPTY_PROTECTION: "off" }, "environment", true), "FARCALL_EMPTY_PROTECTION (environment)");
    assertNamesOption(() => read({ "cluster.emptyProtection": "yes" }, "f", false), "cluster.emptyProtection (f)");
  });

  it("rejects values outside oneOf, for every setting that has one", () => {
    for (const [name, setting] of Object.entries(settings)) {
      if (!("oneOf" in setting)) continue;
      const error = assertNamesOption(() => read({ [setting.env]: "nope" }, "environment", true), `${setting.env} (environment)`);
      assert.match(error.message, /must be one of/, name);
    }
    assertNamesOption(() => read({ "cluster.loadBalancer": "RoundRobin" }, "f", false), "cluster.loadBalancer (f)");
  });

  it("accepts every oneOf value", () => {
    for (const setting of Object.values(settings)) {
      if (!("oneOf" in setting)) continue;
      for (const value of setting.oneOf) assert.doesNotThrow(() => read({ [setting.file]: value }, "f", false));
    }
  });

  it("has a distinct FARCALL_ env var and file key for every setting", () => {
    const envs = Object.values(settings).map((s) => s.env);
    const files = Object.values(settings).map((s) => s.file);
    assert.equal(new Set(envs).size, envs.length);
    assert.equal(new Set(files).size, files.length);
    for (const env of envs) assert.match(env, /^FARCALL_[A-Z_]+$/);
  });
});
