// Keeps docs/errors.md and docs/configuration.md in step with the code they document: a code,
// reason, setting or default added or removed on either side fails this test.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { defaults } from "../src/application-options.js";
import { settings } from "../src/config/settings.js";
import { codeToStatus, codes } from "../src/errors/farcall-error.js";

// Compiled to packages/core/dist/test/docs-sync.test.js: four levels up is the repository root.
const root = fileURLToPath(new URL("../../../../", import.meta.url));
const sourceDir = join(root, "packages", "core", "src");

function readDoc(name: string): string {
  return readFileSync(join(root, "docs", name), "utf8");
}

/** The lines of the section that starts with `heading` (exact line), up to the next heading of the same or a higher level. */
function section(text: string, heading: string): string[] {
  const lines = text.split("\n");
  const start = lines.indexOf(heading);
  assert.ok(start >= 0, `heading ${JSON.stringify(heading)} is missing`);
  const level = /^#+/.exec(heading)?.[0].length ?? 0;
  const out: string[] = [];
  for (const line of lines.slice(start + 1)) {
    const hashes = /^(#+) /.exec(line)?.[1];
    if (hashes !== undefined && hashes.length <= level) break;
    out.push(line);
  }
  return out;
}

/** Table rows of `lines` whose first cell is one backticked word, as arrays of trimmed cells. */
function tableRows(lines: readonly string[]): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of lines) {
    if (!line.startsWith("|")) continue;
    const cells = line.split(/(?<!\\)\|/).slice(1, -1).map((cell) => cell.trim());
    const key = /^`([^`]+)`$/.exec(cells[0] ?? "")?.[1];
    if (key === undefined) continue;
    assert.ok(!rows.has(key), `${key} appears twice in one table`);
    rows.set(key, cells);
  }
  return rows;
}

/** Backticked words of a cell. */
function ticked(cell: string | undefined): string[] {
  return [...(cell ?? "").matchAll(/`([^`]+)`/g)].map((m) => m[1] ?? "");
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(path));
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts") && !entry.name.endsWith(".d.ts")) out.push(path);
  }
  return out;
}

/**
 * Every reason the sources raise: `reason: "x"` literals, plus the string literals passed as the
 * first argument of a local helper whose first parameter is `reason: string` (the frame decoder's
 * `malformed("bad_magic", …)`).
 */
function reasonsInSources(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  const add = (reason: string, file: string): void => {
    const files = found.get(reason) ?? [];
    files.push(file.slice(sourceDir.length + 1));
    found.set(reason, files);
  };
  for (const file of sourceFiles(sourceDir)) {
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/\breason:\s*["']([^"']+)["']/g)) add(m[1] ?? "", file);
    for (const helper of text.matchAll(/function\s+(\w+)\s*\(\s*reason:\s*string/g)) {
      const call = new RegExp(`\\b${helper[1] ?? ""}\\(\\s*["']([^"']+)["']`, "g");
      for (const m of text.matchAll(call)) add(m[1] ?? "", file);
    }
  }
  return found;
}

describe("docs/errors.md", () => {
  const doc = readDoc("errors.md");
  const codesSection = section(doc, "## Codes");
  const codeRows = tableRows(codesSection);

  it("lists every code of `codes` in the codes table with its wire status byte, and nothing else", () => {
    assert.deepEqual([...codeRows.keys()].sort(), [...codes].sort());
    for (const code of codes) {
      assert.equal(codeRows.get(code)?.[1], String(codeToStatus(code)), `status byte of ${code}`);
    }
  });

  it("has one heading per code, and no heading for a code that does not exist", () => {
    const headings = codesSection.flatMap((line) => {
      const m = /^### `([^`]+)`$/.exec(line);
      return m?.[1] === undefined ? [] : [m[1]];
    });
    assert.deepEqual([...headings].sort(), [...codes].sort());
  });

  it("lists every reason the sources raise, with a code that exists, and no reason the sources never use", () => {
    const reasonRows = tableRows(section(doc, "## Reasons"));
    const used = reasonsInSources();
    assert.ok(used.has("bad_option") && used.has("bad_magic"), "the source scan finds known reasons");
    for (const [reason, files] of used) {
      assert.ok(reasonRows.has(reason), `reason ${reason} (used in ${files.join(", ")}) is not documented`);
    }
    for (const [reason, cells] of reasonRows) {
      assert.ok(used.has(reason), `reason ${reason} is documented but no source raises it`);
      const named = ticked(cells[1]);
      assert.ok(named.length > 0, `reason ${reason} names no code`);
      for (const code of named) assert.ok((codes as readonly string[]).includes(code), `reason ${reason}: ${code} is not a code`);
    }
  });
});

describe("docs/configuration.md", () => {
  const doc = readDoc("configuration.md");
  const rows = tableRows(section(doc, "## Options"));
  const settingNames = Object.keys(settings);
  const defaultNames = Object.keys(defaults);

  it("has a row for exactly the settings and defaults", () => {
    const expected = [...new Set([...settingNames, ...defaultNames])].sort();
    const documented = [...rows.keys()].filter((name) => rows.get(name)?.length === 6).sort();
    assert.deepEqual(documented, expected);
  });

  it("gives every setting its environment variable and file key", () => {
    for (const [name, setting] of Object.entries(settings)) {
      const row = rows.get(name);
      assert.ok(row !== undefined, `${name} has no row`);
      assert.deepEqual(ticked(row[3]), [setting.env], `env var of ${name}`);
      assert.deepEqual(ticked(row[4]), [setting.file], `file key of ${name}`);
    }
  });

  it("marks options without a setting as code only", () => {
    for (const name of defaultNames.filter((n) => !settingNames.includes(n))) {
      const row = rows.get(name);
      assert.ok(row !== undefined, `${name} has no row`);
      assert.deepEqual([row[3], row[4]], ["—", "—"], `${name} has no env var or file key`);
    }
  });

  it("gives every default as written in `defaults`", () => {
    for (const [name, value] of Object.entries(defaults)) {
      const written = typeof value === "string" || (typeof value === "object" && value !== null) ? JSON.stringify(value) : String(value);
      assert.equal(ticked(rows.get(name)?.[2])[0], written, `default of ${name}`);
    }
  });
});
