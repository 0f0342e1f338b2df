import { readFileSync } from "node:fs";
import { hostname as osHostname } from "node:os";
import { resolve as resolvePath } from "node:path";
import { createRequire } from "node:module";
import { parseArgs } from "node:util";
import { ALLOW_ALL, DIAGNOSTIC_KEYS, type DiagnosticPolicy } from "./diagnostics/policy.js";
import type { DiagnosticName } from "./diagnostics/registry.js";
import type { HostPaths } from "./host/host-access.js";
import { parseFingerprint, type ClientTls, type ServerPin } from "./transport/tls-pin.js";

/**
 * A bad setting found at start. The message names the setting as the user wrote it (`--server`, `SPECTRA_SERVER`,
 * `collectors.cpu.interval`); the CLI prints it without a stack trace and exits with {@link ConfigError.exitCode}.
 */
export class ConfigError extends Error {
  /** Exit code for bad settings (2, like a usage error). */
  readonly exitCode = 2;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConfigError";
  }
}

/** Settings of one collector (file key `collectors.<name>`). Unset values mean "the collector's default". */
export interface CollectorConfig {
  enabled: boolean | undefined;
  intervalMs: number | undefined;
  timeoutMs: number | undefined;
  /** `collectors.<name>.options`, passed to the collector as given. */
  options: Readonly<Record<string, unknown>>;
}

/** The agent's validated settings. */
export interface AgentConfig {
  /** Server base URL without trailing slash, http: or https:. */
  server: string;
  /** Name reported for this host. */
  hostname: string;
  /** Absolute path of the data directory (spool, session). */
  dataDir: string;
  logLevel: string;
  paths: HostPaths;
  once: boolean;
  debug: boolean;
  debugPort: number;
  help: boolean;
  /** The YAML file read, if any. */
  configFile: string | undefined;
  spool: { maxBytes: number; maxAgeMs: number };
  /** `--collectors`: when set, only these run. */
  only: readonly string[] | undefined;
  /** Per-collector settings from the file; only names that appear there. */
  collectors: Readonly<Record<string, CollectorConfig>>;
  /** Which diagnostics may run (file key `diagnostics`). */
  diagnostics: DiagnosticPolicy;
  /**
   * The enrollment token (`--enroll-token`, `SPECTRA_ENROLL_TOKEN`, `enroll_token`) and the setting it came from;
   * used only while `<data-dir>/agent.key` does not exist. A secret: never logged or printed.
   */
  enrollToken: { value: string; setting: string } | undefined;
  /** `--server-fingerprint`: the pinned server certificate (https:// servers only). */
  serverPin: ServerPin | undefined;
  /**
   * `--tls-cert`/`--tls-key` (a client certificate for a server with mutual TLS) and `--tls-ca` (a CA bundle that
   * verifies the server instead of the system's CAs), read at start; https:// servers only. Undefined when none is set.
   */
  clientTls: ClientTls | undefined;
}

/** Default values, also shown by `--help`. */
export const DEFAULTS = {
  server: "http://127.0.0.1:8080",
  dataDir: "./data/agent",
  logLevel: "info",
  procRoot: "/proc",
  sysRoot: "/sys",
  rootfs: "",
  debugPort: 6060,
  spoolMaxBytes: 100 * 1024 * 1024,
  spoolMaxAgeMs: 7 * 24 * 3_600_000,
} as const;

/** Every environment variable the agent reads, with its meaning (for `--help`). */
export const ENV_VARS: readonly (readonly [string, string])[] = [
  ["SPECTRA_SERVER", "server URL (like --server)"],
  ["HOSTNAME", "reported host name (like --hostname)"],
  ["SPECTRA_DATA_DIR", "data directory (like --data-dir)"],
  ["SPECTRA_CONFIG", "YAML config file (like --config)"],
  ["SPECTRA_LOG_LEVEL", "fatal, error, warn, info, debug, trace or silent (default info)"],
  ["SPECTRA_PROC_ROOT", "procfs root (like --proc-root)"],
  ["SPECTRA_SYS_ROOT", "sysfs root (like --sys-root)"],
  ["SPECTRA_ROOTFS", "host root prefix (like --rootfs)"],
  ["SPECTRA_DEBUG_PORT", "profiling port (like --debug-port)"],
  ["SPECTRA_SPOOL_MAX_BYTES", "spool size bound (like --spool-max-bytes)"],
  ["SPECTRA_SPOOL_MAX_AGE", "spool age bound (like --spool-max-age)"],
  ["SPECTRA_COLLECTORS", "comma-separated collectors to run (like --collectors)"],
  ["SPECTRA_ENROLL_TOKEN", "enrollment token (like --enroll-token; preferred: not visible in the process list)"],
  ["SPECTRA_SERVER_FINGERPRINT", "pinned server certificate, sha256:<hex> (like --server-fingerprint)"],
  ["SPECTRA_TLS_CERT", "client certificate file, PEM, for mutual TLS (like --tls-cert)"],
  ["SPECTRA_TLS_KEY", "its private key file, PEM (like --tls-key)"],
  ["SPECTRA_TLS_CA", "CA bundle that verifies the server, PEM (like --tls-ca)"],
];

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
const FILE_KEYS = [
  "server",
  "hostname",
  "data_dir",
  "log_level",
  "proc_root",
  "sys_root",
  "rootfs",
  "debug_port",
  "spool",
  "collectors",
  "diagnostics",
  "enroll_token",
  "server_fingerprint",
  "tls_cert",
  "tls_key",
  "tls_ca",
];
const SPOOL_KEYS = ["max_bytes", "max_age"];
const COLLECTOR_KEYS = ["enabled", "interval", "timeout", "options"];

/** Bounds of a collector interval: a faster tick is a mistake, a slower one overflows Node timers (~24.8 days). */
export const INTERVAL_BOUNDS_MS = { min: 100, max: 7 * 24 * 3_600_000 } as const;

/** Flag definitions for node:util parseArgs; also the source of truth for `--help`. */
export const FLAGS = {
  server: { type: "string", help: "server URL, http:// (h2c) or https:// (TLS)", arg: "<url>" },
  hostname: { type: "string", help: "host name reported to the server (default: the OS host name)", arg: "<name>" },
  "data-dir": { type: "string", help: `data directory: spool, session, agent key (default ${DEFAULTS.dataDir})`, arg: "<dir>" },
  config: { type: "string", short: "c", help: "YAML config file", arg: "<file>" },
  once: { type: "boolean", help: "run every enabled collector once, print the envelopes as JSON, exit" },
  debug: { type: "boolean", help: "serve /debug/heap, /debug/profile?seconds=N and /debug/vars on 127.0.0.1" },
  "debug-port": { type: "string", help: `port of the --debug endpoint (default ${DEFAULTS.debugPort})`, arg: "<port>" },
  "proc-root": { type: "string", help: "procfs root, e.g. /host/proc in a container (default /proc)", arg: "<dir>" },
  "sys-root": { type: "string", help: "sysfs root, e.g. /host/sys (default /sys)", arg: "<dir>" },
  rootfs: { type: "string", help: "prefix of host mount points for statfs, e.g. /host (default none)", arg: "<dir>" },
  "spool-max-bytes": { type: "string", help: "spool size bound, e.g. 100MiB (default 100MiB)", arg: "<size>" },
  "spool-max-age": { type: "string", help: "spool age bound, e.g. 7d (default 7d)", arg: "<duration>" },
  collectors: { type: "string", help: "run only these collectors, e.g. cpu,memory", arg: "<list>" },
  "log-level": { type: "string", help: "fatal, error, warn, info, debug, trace or silent (default info)", arg: "<level>" },
  "enroll-token": {
    type: "string",
    help: "enrollment token from the server's admin; used only while <data-dir>/agent.key does not exist",
    arg: "<token>",
  },
  "server-fingerprint": {
    type: "string",
    help: "trust only the https:// server certificate with this SHA-256 (self-signed allowed)",
    arg: "sha256:<hex>",
  },
  "tls-cert": {
    type: "string",
    help: "client certificate (PEM) for a server with mutual TLS (--tls-client-ca); with --tls-key",
    arg: "<file>",
  },
  "tls-key": { type: "string", help: "private key (PEM) of --tls-cert; keep it mode 0600", arg: "<file>" },
  "tls-ca": { type: "string", help: "CA bundle (PEM) that verifies the https:// server instead of the system's CAs", arg: "<file>" },
  help: { type: "boolean", short: "h", help: "show this help" },
} as const satisfies Record<string, { type: "string" | "boolean"; short?: string; help: string; arg?: string }>;

/** What {@link loadConfig} reads; everything is injectable for tests. */
export interface LoadConfigInput {
  /** Arguments after the program name (process.argv.slice(2)). */
  argv: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  /** Names of the collectors this build knows (the registry's keys). */
  knownCollectors: readonly string[];
  readFile?: (path: string) => string;
  defaultHostname?: () => string;
  cwd?: string;
}

/**
 * Reads flags, environment and the optional YAML file, applies precedence (flags > env > file > defaults) and
 * validates everything once. Throws {@link ConfigError} naming the first bad setting.
 */
export function loadConfig(input: LoadConfigInput): AgentConfig {
  const flags = parseFlags(input.argv);
  const env = input.env;
  const cwd = input.cwd ?? process.cwd();
  const known = input.knownCollectors;

  if (flags.help === true) {
    // --help must work even when other settings are broken.
    return { ...defaultConfig(input), help: true };
  }

  const configFile = pick(flags.config, "--config", env["SPECTRA_CONFIG"], "SPECTRA_CONFIG");
  const file = configFile ? readConfigFile(String(configFile.value), configFile.name, input.readFile, known) : emptyFile();

  const serverRaw = pick(flags.server, "--server", env["SPECTRA_SERVER"], "SPECTRA_SERVER") ?? file.server;
  const hostnameRaw = pick(flags.hostname, "--hostname", env["HOSTNAME"], "HOSTNAME") ?? file.hostname;
  const dataDirRaw = pick(flags["data-dir"], "--data-dir", env["SPECTRA_DATA_DIR"], "SPECTRA_DATA_DIR") ?? file.dataDir;
  const logLevelRaw = pick(flags["log-level"], "--log-level", env["SPECTRA_LOG_LEVEL"], "SPECTRA_LOG_LEVEL") ?? file.logLevel;
  const procRaw = pick(flags["proc-root"], "--proc-root", env["SPECTRA_PROC_ROOT"], "SPECTRA_PROC_ROOT") ?? file.procRoot;
  const sysRaw = pick(flags["sys-root"], "--sys-root", env["SPECTRA_SYS_ROOT"], "SPECTRA_SYS_ROOT") ?? file.sysRoot;
  // An empty SPECTRA_ROOTFS is meaningful ("no prefix"), so rootfs keeps empty values.
  const rootfsRaw = pickKeepEmpty(flags.rootfs, "--rootfs", env["SPECTRA_ROOTFS"], "SPECTRA_ROOTFS") ?? file.rootfs;
  const debugPortRaw = pick(flags["debug-port"], "--debug-port", env["SPECTRA_DEBUG_PORT"], "SPECTRA_DEBUG_PORT") ?? file.debugPort;
  const maxBytesRaw =
    pick(flags["spool-max-bytes"], "--spool-max-bytes", env["SPECTRA_SPOOL_MAX_BYTES"], "SPECTRA_SPOOL_MAX_BYTES") ?? file.spoolMaxBytes;
  const maxAgeRaw = pick(flags["spool-max-age"], "--spool-max-age", env["SPECTRA_SPOOL_MAX_AGE"], "SPECTRA_SPOOL_MAX_AGE") ?? file.spoolMaxAge;
  const onlyRaw = pick(flags.collectors, "--collectors", env["SPECTRA_COLLECTORS"], "SPECTRA_COLLECTORS");
  const tokenRaw = pick(flags["enroll-token"], "--enroll-token", env["SPECTRA_ENROLL_TOKEN"], "SPECTRA_ENROLL_TOKEN") ?? file.enrollToken;
  const pinRaw =
    pick(flags["server-fingerprint"], "--server-fingerprint", env["SPECTRA_SERVER_FINGERPRINT"], "SPECTRA_SERVER_FINGERPRINT") ??
    file.serverFingerprint;

  const server = serverRaw ? validateServer(serverRaw.value, serverRaw.name) : DEFAULTS.server;
  const hostname = hostnameRaw ? validateHostname(hostnameRaw.value, hostnameRaw.name) : (input.defaultHostname ?? osHostname)();
  const dataDir = resolvePath(cwd, dataDirRaw ? validatePath(dataDirRaw.value, dataDirRaw.name) : DEFAULTS.dataDir);
  const logLevel = logLevelRaw ? validateLogLevel(logLevelRaw.value, logLevelRaw.name) : DEFAULTS.logLevel;
  const paths: HostPaths = {
    procRoot: procRaw ? validatePath(procRaw.value, procRaw.name) : DEFAULTS.procRoot,
    sysRoot: sysRaw ? validatePath(sysRaw.value, sysRaw.name) : DEFAULTS.sysRoot,
    rootfs: rootfsRaw ? stripTrailingSlash(String(rootfsRaw.value)) : DEFAULTS.rootfs,
  };
  const debugPort = debugPortRaw ? validatePort(debugPortRaw.value, debugPortRaw.name) : DEFAULTS.debugPort;
  const maxBytes = maxBytesRaw ? validateByteSize(maxBytesRaw.value, maxBytesRaw.name) : DEFAULTS.spoolMaxBytes;
  const maxAgeMs = maxAgeRaw
    ? validateDurationIn(maxAgeRaw.value, maxAgeRaw.name, 60_000, 365 * 24 * 3_600_000)
    : DEFAULTS.spoolMaxAgeMs;
  const only = onlyRaw ? validateCollectorList(onlyRaw.value, onlyRaw.name, known) : undefined;
  const enrollToken = tokenRaw ? { value: validateToken(tokenRaw.value, tokenRaw.name), setting: tokenRaw.name } : undefined;
  const serverPin = pinRaw ? validatePin(pinRaw.value, pinRaw.name, server) : undefined;
  const clientTls = readClientTls(
    {
      cert: pick(flags["tls-cert"], "--tls-cert", env["SPECTRA_TLS_CERT"], "SPECTRA_TLS_CERT") ?? file.tlsCert,
      key: pick(flags["tls-key"], "--tls-key", env["SPECTRA_TLS_KEY"], "SPECTRA_TLS_KEY") ?? file.tlsKey,
      ca: pick(flags["tls-ca"], "--tls-ca", env["SPECTRA_TLS_CA"], "SPECTRA_TLS_CA") ?? file.tlsCa,
    },
    { server, pinned: serverPin !== undefined, cwd, readFile: input.readFile },
  );

  return {
    server,
    hostname,
    dataDir,
    logLevel,
    paths,
    once: flags.once === true,
    debug: flags.debug === true,
    debugPort,
    help: false,
    configFile: configFile ? resolvePath(cwd, String(configFile.value)) : undefined,
    spool: { maxBytes, maxAgeMs },
    only,
    collectors: file.collectors,
    diagnostics: file.diagnostics ?? ALLOW_ALL,
    enrollToken,
    serverPin,
    clientTls,
  };
}

/**
 * Reads the --tls-cert / --tls-key / --tls-ca files (paths relative to the working directory). Both or neither of
 * cert and key; each must hold a PEM block of its kind; https:// servers only; --tls-ca and a pin exclude each other
 * (the pin replaces verification by CAs). Messages name the setting, never a key's contents.
 */
function readClientTls(
  raw: { cert: Sourced | undefined; key: Sourced | undefined; ca: Sourced | undefined },
  ctx: { server: string; pinned: boolean; cwd: string; readFile: ((path: string) => string) | undefined },
): ClientTls | undefined {
  const { cert, key, ca } = raw;
  if (!cert && !key && !ca) return undefined;
  if ((cert === undefined) !== (key === undefined)) {
    const given = (cert ?? key)!.name;
    throw new ConfigError(`${given}: a client certificate needs both --tls-cert and --tls-key (or their variables / keys)`);
  }
  const first = (cert ?? ca)!;
  if (!ctx.server.startsWith("https:")) throw new ConfigError(`${first.name}: TLS settings, but the server ${ctx.server} is not https://`);
  if (ca && ctx.pinned) throw new ConfigError(`${ca.name}: give it or a server fingerprint, not both (a pin replaces verification by CAs)`);
  const read = (s: Sourced, label: RegExp, what: string): Buffer => {
    const path = resolvePath(ctx.cwd, validatePath(s.value, s.name));
    let text: string;
    try {
      text = (ctx.readFile ?? ((p) => readFileSync(p, "utf8")))(path);
    } catch (cause) {
      const code = (cause as { code?: string }).code ?? (cause instanceof Error ? cause.message : String(cause));
      throw new ConfigError(`${s.name}: cannot read ${JSON.stringify(path)}: ${code}`, { cause });
    }
    if (!label.test(text)) throw new ConfigError(`${s.name}: ${JSON.stringify(path)} holds no PEM ${what}`);
    return Buffer.from(text);
  };
  const out: ClientTls = {};
  if (cert && key) {
    out.cert = read(cert, /-----BEGIN CERTIFICATE-----/, "certificate");
    out.key = read(key, /-----BEGIN [A-Z ]*PRIVATE KEY-----/, "private key");
  }
  if (ca) out.ca = read(ca, /-----BEGIN CERTIFICATE-----/, "certificate");
  return out;
}

/** Whether a collector runs under this config (file `enabled`, then `--collectors`; default on). */
export function isCollectorEnabled(config: AgentConfig, name: string): boolean {
  if (config.only && !config.only.includes(name)) return false;
  return config.collectors[name]?.enabled ?? true;
}

/**
 * Parses a duration: a number of milliseconds, or a string like "500ms", "5s", "1m", "1h30m", "7d".
 * Returns undefined when the value is not a duration.
 */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) && value >= 0 ? value : undefined;
  if (typeof value !== "string") return undefined;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(text)) return undefined;
  const unitMs: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  let total = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) total += Number(m[1]) * (unitMs[m[2] ?? ""] ?? NaN);
  return Number.isFinite(total) ? Math.round(total) : undefined;
}

/**
 * Parses a byte size: a number of bytes, or "512KiB", "100MiB", "1GiB" (binary), "100MB" (decimal), "100M" (binary).
 * Returns undefined when the value is not a size.
 */
export function parseByteSize(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value !== "string") return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?$/i.exec(value.trim());
  if (!m) return undefined;
  const unit = (m[2] ?? "b").toLowerCase();
  const powers: Record<string, number> = { k: 1, m: 2, g: 3, t: 4 };
  const power = powers[unit[0] ?? ""] ?? 0;
  // "MB" is decimal, "MiB" and a bare "M" are binary (what people mean when they write 100M for a disk budget).
  const base = unit.length === 2 && unit.endsWith("b") ? 1000 : 1024;
  const bytes = Math.round(Number(m[1]) * base ** power);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

// ---------------------------------------------------------------------------------------------------------------

type FlagValues = { [K in keyof typeof FLAGS]?: (typeof FLAGS)[K]["type"] extends "boolean" ? boolean : string };

function parseFlags(argv: readonly string[]): FlagValues {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const [name, def] of Object.entries(FLAGS)) {
    options[name] = "short" in def ? { type: def.type, short: def.short } : { type: def.type };
  }
  try {
    const { values } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false });
    return values as FlagValues;
  } catch (cause) {
    throw new ConfigError(describeParseArgsError(cause), { cause });
  }
}

function describeParseArgsError(err: unknown): string {
  const code = (err as { code?: string }).code;
  const message = err instanceof Error ? err.message : String(err);
  const option = /'(-{1,2}[^' ]+)/.exec(message)?.[1];
  switch (code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `${option ?? "flag"}: unknown flag (see --help)`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      return message.includes("does not take an argument")
        ? `${option ?? "flag"}: takes no value`
        : `${option ?? "flag"}: needs a value`;
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL": {
      const arg = /'([^']*)'/.exec(message)?.[1] ?? "";
      return `unexpected argument "${arg}" (flags look like --name value; see --help)`;
    }
    default:
      return `bad command line: ${message}`;
  }
}

/** A raw value and the name of the setting it came from. */
interface Sourced {
  value: unknown;
  name: string;
}

function pick(flag: string | undefined, flagName: string, env: string | undefined, envName: string): Sourced | undefined {
  if (flag !== undefined) return { value: flag, name: flagName };
  // Empty environment variables count as unset (shells and compose files leave them empty).
  if (env !== undefined && env !== "") return { value: env, name: envName };
  return undefined;
}

function pickKeepEmpty(flag: string | undefined, flagName: string, env: string | undefined, envName: string): Sourced | undefined {
  if (flag !== undefined) return { value: flag, name: flagName };
  if (env !== undefined) return { value: env, name: envName };
  return undefined;
}

interface FileSettings {
  server?: Sourced;
  hostname?: Sourced;
  dataDir?: Sourced;
  logLevel?: Sourced;
  procRoot?: Sourced;
  sysRoot?: Sourced;
  rootfs?: Sourced;
  debugPort?: Sourced;
  spoolMaxBytes?: Sourced;
  spoolMaxAge?: Sourced;
  enrollToken?: Sourced;
  serverFingerprint?: Sourced;
  tlsCert?: Sourced;
  tlsKey?: Sourced;
  tlsCa?: Sourced;
  collectors: Record<string, CollectorConfig>;
  diagnostics?: DiagnosticPolicy;
}

function emptyFile(): FileSettings {
  return { collectors: {} };
}

function readConfigFile(
  path: string,
  settingName: string,
  readFile: ((path: string) => string) | undefined,
  known: readonly string[],
): FileSettings {
  let text: string;
  try {
    text = (readFile ?? ((p) => readFileSync(p, "utf8")))(path);
  } catch (cause) {
    const code = (cause as { code?: string }).code ?? (cause instanceof Error ? cause.message : String(cause));
    throw new ConfigError(`${settingName}: cannot read ${JSON.stringify(path)}: ${code}`, { cause });
  }
  // Loaded only when a config file is used: the parser costs about 1 MB of RSS an agent without a file never needs.
  const { isMap, parseDocument } = createRequire(import.meta.url)("yaml") as typeof import("yaml");
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const first = doc.errors[0];
  if (first) {
    const line = first.linePos?.[0].line;
    const where = line === undefined ? "" : ` line ${line}`;
    throw new ConfigError(`${settingName}: ${JSON.stringify(path)}${where}: ${first.message.split("\n")[0]}`, { cause: first });
  }
  if (doc.contents !== null && !isMap(doc.contents)) {
    throw new ConfigError(`${settingName}: ${JSON.stringify(path)} must be a mapping of settings (key: value)`);
  }
  const raw: unknown = doc.toJS() ?? {};
  const obj = raw as Record<string, unknown>;
  checkKeys(obj, FILE_KEYS, "");

  const out: FileSettings = { collectors: {} };
  const scalar = (key: string): Sourced | undefined => {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v === "object") throw new ConfigError(`${key}: must be a single value, not a list or mapping`);
    return { value: v, name: key };
  };
  out.server = scalar("server");
  out.hostname = scalar("hostname");
  out.dataDir = scalar("data_dir");
  out.logLevel = scalar("log_level");
  out.procRoot = scalar("proc_root");
  out.sysRoot = scalar("sys_root");
  out.rootfs = scalar("rootfs");
  out.debugPort = scalar("debug_port");
  out.enrollToken = scalar("enroll_token");
  out.serverFingerprint = scalar("server_fingerprint");
  out.tlsCert = scalar("tls_cert");
  out.tlsKey = scalar("tls_key");
  out.tlsCa = scalar("tls_ca");

  const spool = obj["spool"];
  if (spool !== undefined && spool !== null) {
    const s = asMapping(spool, "spool");
    checkKeys(s, SPOOL_KEYS, "spool.");
    if (s["max_bytes"] !== undefined && s["max_bytes"] !== null) out.spoolMaxBytes = { value: s["max_bytes"], name: "spool.max_bytes" };
    if (s["max_age"] !== undefined && s["max_age"] !== null) out.spoolMaxAge = { value: s["max_age"], name: "spool.max_age" };
  }

  const collectors = obj["collectors"];
  if (collectors !== undefined && collectors !== null) {
    const c = asMapping(collectors, "collectors");
    for (const [name, value] of Object.entries(c)) {
      if (!known.includes(name)) {
        throw new ConfigError(`collectors.${name}: unknown collector (known: ${known.join(", ")})`);
      }
      out.collectors[name] = parseCollectorConfig(name, value);
    }
  }
  const diagnostics = obj["diagnostics"];
  if (diagnostics !== undefined && diagnostics !== null) out.diagnostics = parseDiagnostics(diagnostics);
  return out;
}

/**
 * `diagnostics: { <name>: { enabled: bool }, disk_usage: { allowed_paths: [abs, ...] }, fetch_logs: { allowed_units:
 * [unit, ...] } }`, names as in the proto.
 */
function parseDiagnostics(value: unknown): DiagnosticPolicy {
  const byKey = new Map(Object.entries(DIAGNOSTIC_KEYS).map(([name, key]) => [key, name as DiagnosticName]));
  const known = [...byKey.keys()];
  const m = asMapping(value, "diagnostics");
  const disabled = new Set<DiagnosticName>();
  let diskUsagePaths: string[] | undefined;
  let logUnits: string[] | undefined;
  for (const [key, v] of Object.entries(m)) {
    const name = byKey.get(key);
    if (name === undefined) throw new ConfigError(`diagnostics.${key}: unknown diagnostic (known: ${known.join(", ")})`);
    if (typeof v === "boolean") {
      if (!v) disabled.add(name);
      continue;
    }
    if (v === null) continue;
    const d = asMapping(v, `diagnostics.${key}`);
    const extra = name === "diskUsage" ? ["allowed_paths"] : name === "fetchLogs" ? ["allowed_units"] : [];
    checkKeys(d, ["enabled", ...extra], `diagnostics.${key}.`);
    if (d["enabled"] !== undefined && d["enabled"] !== null) {
      if (typeof d["enabled"] !== "boolean") {
        throw new ConfigError(`diagnostics.${key}.enabled: ${JSON.stringify(d["enabled"])} is not true or false`);
      }
      if (!d["enabled"]) disabled.add(name);
    }
    const units = d["allowed_units"];
    if (units !== undefined && units !== null) {
      const setting = `diagnostics.${key}.allowed_units`;
      if (!Array.isArray(units) || units.length === 0) throw new ConfigError(`${setting}: must be a non-empty list of unit names`);
      logUnits = units.map((u: unknown) => {
        if (typeof u !== "string" || u === "" || u.startsWith("-")) throw new ConfigError(`${setting}: ${JSON.stringify(u)} is not a unit name`);
        return u;
      });
    }
    const paths = d["allowed_paths"];
    if (paths !== undefined && paths !== null) {
      const setting = `diagnostics.${key}.allowed_paths`;
      if (!Array.isArray(paths) || paths.length === 0) throw new ConfigError(`${setting}: must be a non-empty list of absolute paths`);
      diskUsagePaths = paths.map((p: unknown) => {
        if (typeof p !== "string" || !(p.startsWith("/") || /^[A-Za-z]:[\\/]/.test(p))) {
          throw new ConfigError(`${setting}: ${JSON.stringify(p)} is not an absolute path`);
        }
        return p;
      });
    }
  }
  return { disabled, ...(diskUsagePaths ? { diskUsagePaths } : {}), ...(logUnits ? { logUnits } : {}) };
}

function parseCollectorConfig(name: string, value: unknown): CollectorConfig {
  const prefix = `collectors.${name}`;
  // `cpu: false` is shorthand for `cpu: { enabled: false }`.
  if (typeof value === "boolean") return { enabled: value, intervalMs: undefined, timeoutMs: undefined, options: {} };
  if (value === null) return { enabled: undefined, intervalMs: undefined, timeoutMs: undefined, options: {} };
  const m = asMapping(value, prefix);
  checkKeys(m, COLLECTOR_KEYS, `${prefix}.`);
  let enabled: boolean | undefined;
  if (m["enabled"] !== undefined && m["enabled"] !== null) {
    if (typeof m["enabled"] !== "boolean") {
      throw new ConfigError(`${prefix}.enabled: ${JSON.stringify(m["enabled"])} is not true or false`);
    }
    enabled = m["enabled"];
  }
  const intervalMs =
    m["interval"] === undefined || m["interval"] === null
      ? undefined
      : validateDurationIn(m["interval"], `${prefix}.interval`, INTERVAL_BOUNDS_MS.min, INTERVAL_BOUNDS_MS.max);
  const timeoutMs =
    m["timeout"] === undefined || m["timeout"] === null
      ? undefined
      : validateDurationIn(m["timeout"], `${prefix}.timeout`, 100, 10 * 60_000);
  const options = m["options"] === undefined || m["options"] === null ? {} : asMapping(m["options"], `${prefix}.options`);
  return { enabled, intervalMs, timeoutMs, options };
}

function asMapping(value: unknown, name: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ConfigError(`${name}: must be a mapping (key: value)`);
  }
  return value as Record<string, unknown>;
}

function checkKeys(obj: Record<string, unknown>, allowed: readonly string[], prefix: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      throw new ConfigError(`${prefix}${key}: unknown setting (known: ${allowed.join(", ")})`);
    }
  }
}

function validateServer(value: unknown, name: string): string {
  const text = String(value).trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch (cause) {
    throw new ConfigError(`${name}: ${JSON.stringify(text)} is not a URL (expected e.g. http://127.0.0.1:8080)`, { cause });
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(`${name}: ${JSON.stringify(text)} must start with http:// or https://`);
  }
  if (url.search !== "" || url.hash !== "" || url.username !== "" || url.password !== "") {
    throw new ConfigError(`${name}: ${JSON.stringify(text)} must not carry credentials, a query or a fragment`);
  }
  return stripTrailingSlash(url.href);
}

/** An enrollment token; the message never repeats the value (it is a secret). */
function validateToken(value: unknown, name: string): string {
  const text = String(value).trim();
  if (text === "") throw new ConfigError(`${name}: must not be empty`);
  if (text.length > 1024 || !/^[\x21-\x7e]+$/.test(text)) {
    throw new ConfigError(`${name}: is not an enrollment token (up to 1024 printable characters, no spaces)`);
  }
  return text;
}

function validatePin(value: unknown, name: string, server: string): ServerPin {
  const fingerprint = parseFingerprint(String(value));
  if (fingerprint === undefined) {
    throw new ConfigError(
      `${name}: ${JSON.stringify(String(value))} is not a certificate fingerprint ` +
        "(expected sha256: and 64 hex digits, as spectra-server --tls-self-signed prints it)",
    );
  }
  if (!server.startsWith("https:")) {
    throw new ConfigError(`${name}: pins a TLS certificate, but the server ${server} is not https://`);
  }
  return { fingerprint, setting: name };
}

function validateHostname(value: unknown, name: string): string {
  const text = String(value).trim();
  if (!/^[^\s/\\]{1,253}$/.test(text)) {
    throw new ConfigError(`${name}: ${JSON.stringify(String(value))} is not a host name (1-253 characters, no spaces or slashes)`);
  }
  return text;
}

function validatePath(value: unknown, name: string): string {
  const text = String(value);
  if (text.trim() === "") throw new ConfigError(`${name}: must not be empty`);
  return text.length > 1 ? stripTrailingSlash(text) : text;
}

function validateLogLevel(value: unknown, name: string): string {
  const text = String(value).trim().toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(text)) {
    throw new ConfigError(`${name}: ${JSON.stringify(String(value))} is not a log level (${LOG_LEVELS.join(", ")})`);
  }
  return text;
}

function validatePort(value: unknown, name: string): number {
  const text = String(value).trim();
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isInteger(n) || n < 0 || n > 65_535) {
    throw new ConfigError(`${name}: ${JSON.stringify(String(value))} is not a port (0-65535)`);
  }
  return n;
}

function validateByteSize(value: unknown, name: string): number {
  const bytes = parseByteSize(value);
  if (bytes === undefined) {
    throw new ConfigError(`${name}: ${JSON.stringify(value)} is not a size (use e.g. 100MiB, 500MB, 1GiB or bytes)`);
  }
  if (bytes < 64 * 1024) throw new ConfigError(`${name}: ${JSON.stringify(value)} is too small (at least 64KiB)`);
  return bytes;
}

function validateDurationIn(value: unknown, name: string, minMs: number, maxMs: number): number {
  const ms = parseDuration(value);
  if (ms === undefined) {
    throw new ConfigError(`${name}: ${JSON.stringify(value)} is not a duration (use e.g. 500ms, 5s, 1m, 1h, 7d or milliseconds)`);
  }
  if (ms < minMs || ms > maxMs) {
    throw new ConfigError(`${name}: ${JSON.stringify(value)} is out of range (${formatMs(minMs)} to ${formatMs(maxMs)})`);
  }
  return ms;
}

function validateCollectorList(value: unknown, name: string, known: readonly string[]): string[] {
  const names = String(value)
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (names.length === 0) throw new ConfigError(`${name}: empty list (known: ${known.join(", ")})`);
  for (const n of names) {
    if (!known.includes(n)) throw new ConfigError(`${name}: unknown collector ${JSON.stringify(n)} (known: ${known.join(", ")})`);
  }
  return [...new Set(names)];
}

function formatMs(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1_000 === 0) return `${ms / 1_000}s`;
  return `${ms}ms`;
}

function stripTrailingSlash(text: string): string {
  return text.replace(/\/+$/, "");
}

function defaultConfig(input: LoadConfigInput): AgentConfig {
  return {
    server: DEFAULTS.server,
    hostname: (input.defaultHostname ?? osHostname)(),
    dataDir: resolvePath(input.cwd ?? process.cwd(), DEFAULTS.dataDir),
    logLevel: DEFAULTS.logLevel,
    paths: { procRoot: DEFAULTS.procRoot, sysRoot: DEFAULTS.sysRoot, rootfs: DEFAULTS.rootfs },
    once: false,
    debug: false,
    debugPort: DEFAULTS.debugPort,
    help: false,
    configFile: undefined,
    spool: { maxBytes: DEFAULTS.spoolMaxBytes, maxAgeMs: DEFAULTS.spoolMaxAgeMs },
    only: undefined,
    collectors: {},
    diagnostics: ALLOW_ALL,
    enrollToken: undefined,
    serverPin: undefined,
    clientTls: undefined,
  };
}
