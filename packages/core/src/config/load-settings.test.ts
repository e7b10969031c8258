import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createApplication } from "../application.js";
import { loadSettings } from "./load-settings.js";
import { assertBadOption } from "../../test/assertions.js";

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "farcall-settings-"));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let fileCount = 0;
async function propertiesFile(text: string): Promise<string> {
  const path = join(dir, `app-${fileCount++}.properties`);
  await writeFile(path, text);
  return path;
}

describe("loadSettings", () => {
  it("reads the file named by configFile", async () => {
    const path = await propertiesFile("# provider\napplication.name = from-file\nserver.port: 20880\nserver.includeStack=true\n");
    assert.deepEqual(loadSettings({ env: {}, configFile: path }), { name: "from-file", port: 20880, includeStack: true });
  });

  it("lets the environment win over the file, key by key", async () => {
    const path = await propertiesFile("application.name=from-file\nserver.port=1\n");
    const values = loadSettings({ env: { FARCALL_NAME: "from-env" }, configFile: path });
    assert.deepEqual(values, { name: "from-env", port: 1 });
  });

  it("treats an empty environment variable as unset", async () => {
    const path = await propertiesFile("application.name=from-file\n");
    assert.deepEqual(loadSettings({ env: { FARCALL_NAME: "" }, configFile: path }), { name: "from-file" });
  });

  it("finds the file through FARCALL_CONFIG; configFile wins over it", async () => {
    const viaEnv = await propertiesFile("application.name=via-env\n");
    const viaOption = await propertiesFile("application.name=via-option\n");
    assert.deepEqual(loadSettings({ env: { FARCALL_CONFIG: viaEnv } }), { name: "via-env" });
    assert.deepEqual(loadSettings({ env: { FARCALL_CONFIG: viaEnv }, configFile: viaOption }), { name: "via-option" });
  });

  it("reads ./farcall.properties when no file is named, and nothing when it is absent", async () => {
    const cwd = process.cwd();
    const work = await mkdtemp(join(dir, "cwd-"));
    try {
      process.chdir(work);
      assert.deepEqual(loadSettings({ env: {} }), {});
      await writeFile(join(work, "farcall.properties"), "cluster.retries=4\n");
      assert.deepEqual(loadSettings({ env: {} }), { retries: 4 });
    } finally {
      process.chdir(cwd);
    }
  });

  it("fails when an explicitly named config file is missing", () => {
    const missing = join(dir, "missing.properties");
    const error = assertBadOption(() => loadSettings({ env: {}, configFile: missing }), "configFile");
    assert.ok(error.message.includes(missing));
    assertBadOption(() => loadSettings({ env: { FARCALL_CONFIG: missing } }), "configFile");
  });

  it("names the file key and the file's path for a bad value in the file", async () => {
    const path = await propertiesFile("server.port=eighty\n");
    const error = assertBadOption(() => loadSettings({ env: {}, configFile: path }), `server.port (${path})`);
    assert.ok(error.message.includes(`server.port (${path})`));
  });

  it("names the env var and the environment for a bad value there, even when the file is fine", async () => {
    const path = await propertiesFile("serializer=json\n");
    assertBadOption(() => loadSettings({ env: { FARCALL_SERIALIZER: "xml" }, configFile: path }), "FARCALL_SERIALIZER (environment)");
  });

  it("rejects a misspelt key in one of farcall's sections, naming it, and leaves other keys alone", async () => {
    const typo = await propertiesFile("server.prot=20880\n");
    assertBadOption(() => loadSettings({ env: {}, configFile: typo }), `server.prot (${typo})`);
    const foreign = await propertiesFile("myapp.feature=on\nserver.port=20880\n");
    assert.deepEqual(loadSettings({ env: {}, configFile: foreign }), { port: 20880 });
  });

  it("treats an empty FARCALL_CONFIG as unset", () => {
    assert.deepEqual(loadSettings({ env: { FARCALL_CONFIG: "" } }), {});
  });

  it("rejects an unknown oneOf value from the file", async () => {
    const path = await propertiesFile("cluster.faultTolerance=hedging\n");
    assertBadOption(() => loadSettings({ env: {}, configFile: path }), `cluster.faultTolerance (${path})`);
  });
});

describe("createApplication settings precedence", () => {
  const base = { registry: "memory", handleSignals: false } as const;

  it("takes code over environment over file over defaults", async () => {
    const path = await propertiesFile("application.name=from-file\nregistry.address=memory\n");
    const env = { FARCALL_NAME: "from-env" };
    const cases: Array<[string, Parameters<typeof createApplication>[0]]> = [
      ["from-code", { ...base, name: "from-code", env, configFile: path }],
      ["from-env", { ...base, env, configFile: path }],
      ["from-file", { ...base, env: {}, configFile: path }],
      ["farcall-app", { ...base, env: {}, configFile: await propertiesFile("# empty\n") }],
    ];
    for (const [expected, options] of cases) {
      const app = createApplication(options);
      try {
        assert.equal(app.name, expected);
      } finally {
        await app.close();
      }
    }
  });

  it("builds the registry named in the file when code names none", async () => {
    const path = await propertiesFile("registry.address=memory\n");
    const app = createApplication({ handleSignals: false, env: {}, configFile: path });
    try {
      assert.equal(app.registry.kind, "memory");
    } finally {
      await app.close();
    }
  });

  it("rejects a bad value from the environment, naming the variable", async () => {
    const path = await propertiesFile("server.port=1\n");
    assertBadOption(() => createApplication({ ...base, env: { FARCALL_PORT: "99999" }, configFile: path }), "FARCALL_PORT (environment)");
  });

  it("checks a bad file value even when code sets the option", async () => {
    const path = await propertiesFile("server.port=-5\n");
    assertBadOption(() => createApplication({ ...base, port: 0, env: {}, configFile: path }), `server.port (${path})`);
  });

  it("rejects a bad value from code, naming the option", async () => {
    const path = await propertiesFile("");
    assertBadOption(() => createApplication({ ...base, retries: 11, env: {}, configFile: path }), "retries");
  });

  it("rejects an emptyProtection from code that is not a boolean", async () => {
    const path = await propertiesFile("");
    const options = { ...base, emptyProtection: "false" as unknown as boolean, env: {}, configFile: path };
    assertBadOption(() => createApplication(options), "emptyProtection");
  });
});
