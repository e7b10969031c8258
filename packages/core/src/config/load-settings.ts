import { existsSync, readFileSync } from "node:fs";
import { badOption, FarcallError } from "../errors/farcall-error.js";
import { parseProperties, readSettings, settings, type SettingValues } from "./settings.js";

/** Where settings come from besides code. */
export interface SettingSources {
  /** Default `process.env`. */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * Path of a properties file. Default: `FARCALL_CONFIG` from `env`, else `farcall.properties` in
   * the working directory when it exists.
   */
  readonly configFile?: string;
}

/** Largest config file read, in bytes. */
const maxConfigBytes = 1024 * 1024;

/**
 * Reads the environment and the config file; the environment wins over the file. Code options win
 * over both (the caller merges them last).
 * @throws FarcallError `invalid_argument` (`bad_option`) naming the bad key and its source, or when
 *   an explicitly named config file cannot be read.
 */
export function loadSettings(sources: SettingSources = {}): SettingValues {
  const env = sources.env ?? process.env;
  const configFromEnv = env["FARCALL_CONFIG"];
  const explicit = sources.configFile ?? (configFromEnv === "" ? undefined : configFromEnv);
  const path = explicit ?? (existsSync("farcall.properties") ? "farcall.properties" : undefined);
  let fromFile: SettingValues = {};
  if (path !== undefined) {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (error) {
      throw new FarcallError("invalid_argument", `config file ${path}: ${(error as Error).message}`, {
        reason: "bad_option",
        cause: error,
        details: { option: "configFile" },
        sent: false,
      });
    }
    if (text.length > maxConfigBytes) {
      throw new FarcallError("invalid_argument", `config file ${path} is larger than 1 MiB`, { reason: "bad_option", details: { option: "configFile" }, sent: false });
    }
    const props = parseProperties(text);
    rejectUnknownKeys(props, path);
    fromFile = readSettings((s) => props.get(s.file), path, false);
  }
  const fromEnv = readSettings((s) => env[s.env], "environment", true);
  return { ...fromFile, ...fromEnv };
}

/** Sections of the properties file that belong to farcall; a key in them that farcall does not know is a typo. */
const ownSections = ["application.", "registry.", "server.", "call.", "cluster.", "shutdown.", "connection.", "provider."];

function rejectUnknownKeys(props: ReadonlyMap<string, string>, path: string): void {
  const known = new Set<string>(Object.values(settings).map((s) => s.file));
  for (const key of props.keys()) {
    if (!known.has(key) && ownSections.some((section) => key.startsWith(section))) {
      badOption(`${key} (${path})`, `unknown setting; known ones: ${[...known].sort().join(", ")}`);
    }
  }
}
