import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { NO_ADDRESSES, parseAddressList, type AddressMatcher } from "./auth/address-matcher.js";

/** Thrown for a bad setting; the message names the setting and is printed without a stack trace. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Where the server keeps its data: embedded SQLite (a file path) or a PostgreSQL database (a URL). */
export type StoreSetting = { kind: "sqlite"; path: string } | { kind: "postgres"; url: string };

/** --tls-client-auth: see ServerConfig.tlsClient. */
export type ClientAuthMode = "optional" | "require";

/** Validated server settings. */
export interface ServerConfig {
  host: string;
  port: number;
  dataDir: string;
  store: StoreSetting;
  /** This process's name in a shared (PostgreSQL) store: its write-ahead-log rows are its own. */
  instanceId: string;
  tls?: { certPath: string; keyPath: string };
  /** Serve TLS with a self-signed certificate made once in <dataDir>/tls/ (trials). */
  tlsSelfSigned: boolean;
  /**
   * Mutual TLS: the PEM CA bundle client certificates must chain to, and whether every client needs one
   * ("require": the TLS handshake fails without one) or only agents that have one are held to it ("optional").
   */
  tlsClient?: { caPath: string; auth: ClientAuthMode };
  /** Networks whose legacy agents may use /api/v1 without a credential. */
  legacyAllow: AddressMatcher;
  /** How long an agent's old key stays valid after a rotated key was sent to it (unless the new one is used). */
  keyGraceMs: number;
  longPollMs: number;
  commandTtlMs: number;
  maxQueuedCommands: number;
  maxBodyBytes: number;
  maxInflatedBytes: number;
  /** How long raw samples, 1-minute and 1-hour rollups are kept. */
  retentionMs: { raw: number; "1m": number; "1h": number };
  /** How often the in-memory head is written to compressed chunks. */
  flushIntervalMs: number;
  /** Agent status: stale / offline after this many of the agent's report intervals without contact. */
  agentStaleAfter: number;
  agentOfflineAfter: number;
  /** Agents offline longer than this are removed (data kept); undefined: never. */
  agentCleanupAfterMs: number | undefined;
  /** Requests per second per agent, admin token or address (0: no limit), and the burst allowed. */
  rateLimit: number;
  rateBurst: number;
  logLevel: string;
  help: boolean;
}

export const serverHelp = `spectra-server: the Spectra monitoring server (Connect, gRPC, gRPC-Web and the legacy /api/v1 REST API on one port)

Usage: spectra-server [flags]
       spectra-server token create --name <name> --role viewer|operator|admin   [--store … | --data-dir …]
       spectra-server token list
       spectra-server token revoke <name or id>
       spectra-server enroll-token create [--name <name>] [--auto-approve] [--multi-use] [--ttl 24h] [--label k=v …]
       spectra-server enroll-token list
       spectra-server enroll-token revoke <id>

Every API call needs a credential (Authorization: Bearer …): admin tokens (spt_…) for people and scripts, each
agent's own key (spa_…) for agents, which get it by enrolling with an enrollment token (spe_…). On its first start
the server creates the admin token "initial-admin" and prints it once on stderr. The token subcommands work on the
configured database directly (same --store / --data-dir / environment as the server) and print a new token once.

Flags (environment variable in brackets):
  --listen <host:port>     address to listen on, default ":8080" (all interfaces)   [SPECTRA_LISTEN]
  --data-dir <dir>         where the SQLite database lives, default "./data"        [SPECTRA_DATA_DIR]
  --store <path|url>       the database: an SQLite file path (default               [SPECTRA_STORE]
                           "<data-dir>/spectra.db") or a postgres://user:pass@host/db
                           URL; several servers may share one PostgreSQL database
  --instance-id <name>     this server's name in a shared PostgreSQL database,      [SPECTRA_INSTANCE_ID]
                           unique per server and stable across its restarts; default
                           "<hostname>:<port>" ("<hostname>:0:<pid>" on port 0)
  --tls-cert <file>        PEM certificate; with --tls-key serves TLS (h2 + HTTP/1.1) [SPECTRA_TLS_CERT]
  --tls-key <file>         PEM private key                                          [SPECTRA_TLS_KEY]
  --tls-self-signed        serve TLS with a self-signed certificate made once and   [SPECTRA_TLS_SELF_SIGNED]
                           kept in <data-dir>/tls/; prints the fingerprint agents pin
                           (spectra-agent --server-fingerprint sha256:<hex>)
  --tls-client-ca <file>   mutual TLS: PEM CA bundle that signs agent certificates;  [SPECTRA_TLS_CLIENT_CA]
                           the server asks every client for a certificate, and an
                           agent's key is pinned to the first one it uses
  --tls-client-auth <mode> require (default with --tls-client-ca): the handshake    [SPECTRA_TLS_CLIENT_AUTH]
                           fails without a certificate from that CA, for every
                           client; optional: clients without one (admin tools,
                           agents not yet given one) still connect with a token
  --legacy-allow <cidrs>   networks (e.g. 10.0.0.0/8,fd00::/8) whose agents may use  [SPECTRA_LEGACY_ALLOW]
                           the legacy /api/v1 routes without a credential (unchanged
                           original agents); default none
  --key-rotation-grace <d> after a rotated key was sent, the agent's old key works   [SPECTRA_KEY_ROTATION_GRACE]
                           this long unless the new one is used first, default 10m
  --long-poll <duration>   legacy command long-poll timeout, default 30s            [SPECTRA_LONG_POLL]
  --command-ttl <duration> unfinished commands expire after this, default 1h        [SPECTRA_COMMAND_TTL]
  --max-body <bytes>       largest request body, default 16777216 (16 MiB)          [SPECTRA_MAX_BODY]
  --max-inflated <bytes>   largest body after gunzip, default 67108864 (64 MiB)     [SPECTRA_MAX_INFLATED]
  --retention-raw <dur>    keep raw samples this long, default 7d                   [SPECTRA_RETENTION_RAW]
  --retention-1m <dur>     keep 1-minute rollups (min/max/avg/count/last), 90d      [SPECTRA_RETENTION_1M]
  --retention-1h <dur>     keep 1-hour rollups, default 730d                        [SPECTRA_RETENTION_1H]
  --flush-interval <dur>   write the in-memory head to compressed chunks this       [SPECTRA_FLUSH_INTERVAL]
                           often, default 60s (received batches are on disk at once
                           in a write-ahead log; this only sets how long it grows)
  --agent-stale-after <n>  an agent is stale after n of its report intervals        [SPECTRA_AGENT_STALE_AFTER]
                           without contact (5 s when it reported none); default 3,
                           fractions allowed (1.5)
  --agent-offline-after <n>
                           offline after n intervals without contact, default 12    [SPECTRA_AGENT_OFFLINE_AFTER]
  --agent-cleanup-after <d>
                           remove agents offline longer than this (e.g. 30d;        [SPECTRA_AGENT_CLEANUP_AFTER]
                           their data is kept); default off
  --rate-limit <n>         requests per second each agent, admin token or           [SPECTRA_RATE_LIMIT]
                           (without a credential) address may make, default 50;
                           0 turns rate limits off
  --rate-burst <n>         requests each may make at once, default 500              [SPECTRA_RATE_BURST]
  --log-level <level>      trace, debug, info, warn, error; default info            [SPECTRA_LOG_LEVEL]
  -h, --help               print this help

Durations: 500ms, 30s, 5m, 1h, 7d, or a number of milliseconds.
`;

/** Parses "30s", "5m", "1h", "7d", "500ms" or plain milliseconds. */
export function parseDuration(setting: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(v.trim());
  if (!m) throw new ConfigError(`${setting}: ${JSON.stringify(v)} is not a duration (e.g. 30s, 5m, 1h)`);
  const unit = { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2] ?? "ms"]!;
  const ms = Math.round(Number(m[1]) * unit);
  if (ms <= 0) throw new ConfigError(`${setting}: must be greater than zero`);
  return ms;
}

/** A positive number (fractions allowed: "1.5" report intervals). */
function parsePositive(setting: string, v: string): number {
  const n = Number(v.trim());
  if (v.trim() === "" || !Number.isFinite(n) || n <= 0) throw new ConfigError(`${setting}: ${JSON.stringify(v)} is not a positive number`);
  return n;
}

/** A whole number, zero or more. */
function parseCount(setting: string, v: string): number {
  if (!/^\d+$/.test(v.trim())) throw new ConfigError(`${setting}: ${JSON.stringify(v)} is not a whole number`);
  return Number(v.trim());
}

function parseBytes(setting: string, v: string): number {
  if (!/^\d+$/.test(v) || Number(v) <= 0) throw new ConfigError(`${setting}: ${JSON.stringify(v)} is not a positive byte count`);
  return Number(v);
}

/** An on/off environment setting: 1/true/yes/on or 0/false/no/off (absent: off). */
function parseBool(setting: string, v: string | undefined): boolean {
  if (v === undefined || v === "") return false;
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new ConfigError(`${setting}: ${JSON.stringify(v)} is not true or false`);
}

/** Parses "host:port", ":port" or "[::1]:port". */
export function parseListen(v: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new ConfigError(`listen: ${JSON.stringify(v)} is not host:port (e.g. :8080 or 127.0.0.1:8080)`);
  return { host: m[1] ?? (m[2] || "0.0.0.0"), port };
}

/**
 * Parses the store setting: a `postgres://` or `postgresql://` URL selects PostgreSQL, anything else is an SQLite
 * file path; absent means `<dataDir>/spectra.db`.
 */
export function parseStore(v: string | undefined, dataDir: string): StoreSetting {
  if (v === undefined || v === "") return { kind: "sqlite", path: join(dataDir, "spectra.db") };
  if (/^postgres(ql)?:\/\//i.test(v)) {
    try {
      new URL(v);
    } catch {
      throw new ConfigError(`store: ${JSON.stringify(redactUrl(v))} is not a valid PostgreSQL URL`);
    }
    return { kind: "postgres", url: v };
  }
  return { kind: "sqlite", path: v };
}

/** The default instance id: host name and port; on port 0 (a random port) the process id stands in for the port. */
export function defaultInstanceId(port: number): string {
  return port === 0 ? `${hostname()}:0:${process.pid}` : `${hostname()}:${port}`;
}

/** A URL safe to log: the password (in the user info or a `password` parameter) replaced by "***". */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== "") u.password = "***";
    for (const k of [...u.searchParams.keys()]) if (/^password$/i.test(k)) u.searchParams.set(k, "***");
    return u.toString();
  } catch {
    return url.replace(/(\/\/[^:/@]*:)[^@]*@/, "$1***@").replace(/(password=)[^&]*/gi, "$1***");
  }
}

/** The store setting for logs: the SQLite path, or the PostgreSQL URL without its password. */
export function describeStore(store: StoreSetting): string {
  return store.kind === "sqlite" ? store.path : redactUrl(store.url);
}

/** Reads flags over environment over defaults, and validates everything once. */
export function loadServerConfig(argv: string[], env: NodeJS.ProcessEnv): ServerConfig {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        listen: { type: "string" },
        "data-dir": { type: "string" },
        store: { type: "string" },
        "instance-id": { type: "string" },
        "tls-cert": { type: "string" },
        "tls-key": { type: "string" },
        "tls-self-signed": { type: "boolean" },
        "tls-client-ca": { type: "string" },
        "tls-client-auth": { type: "string" },
        "legacy-allow": { type: "string" },
        "key-rotation-grace": { type: "string" },
        "long-poll": { type: "string" },
        "command-ttl": { type: "string" },
        "max-body": { type: "string" },
        "max-inflated": { type: "string" },
        "log-level": { type: "string" },
        "retention-raw": { type: "string" },
        "retention-1m": { type: "string" },
        "retention-1h": { type: "string" },
        "flush-interval": { type: "string" },
        "agent-stale-after": { type: "string" },
        "agent-offline-after": { type: "string" },
        "agent-cleanup-after": { type: "string" },
        "rate-limit": { type: "string" },
        "rate-burst": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const pick = (flag: keyof typeof values, envName: string): string | undefined =>
    (values[flag] as string | undefined) ?? env[envName];
  const { host, port } = parseListen(pick("listen", "SPECTRA_LISTEN") ?? ":8080");
  const certPath = pick("tls-cert", "SPECTRA_TLS_CERT");
  const keyPath = pick("tls-key", "SPECTRA_TLS_KEY");
  if ((certPath === undefined) !== (keyPath === undefined)) {
    throw new ConfigError("tls-cert and tls-key: give both or neither");
  }
  const tlsSelfSigned = values["tls-self-signed"] === true || parseBool("tls-self-signed", env["SPECTRA_TLS_SELF_SIGNED"]);
  if (tlsSelfSigned && certPath !== undefined) throw new ConfigError("tls-self-signed: give it or tls-cert/tls-key, not both");
  const clientCa = pick("tls-client-ca", "SPECTRA_TLS_CLIENT_CA");
  const clientAuth = pick("tls-client-auth", "SPECTRA_TLS_CLIENT_AUTH");
  if (clientAuth !== undefined && clientAuth !== "optional" && clientAuth !== "require") {
    throw new ConfigError(`tls-client-auth: ${JSON.stringify(clientAuth)} is not optional or require`);
  }
  if (clientCa !== undefined && certPath === undefined && !tlsSelfSigned) {
    throw new ConfigError("tls-client-ca: needs TLS (tls-cert and tls-key, or tls-self-signed)");
  }
  if (clientAuth !== undefined && clientCa === undefined) throw new ConfigError("tls-client-auth: needs tls-client-ca");
  const allowText = pick("legacy-allow", "SPECTRA_LEGACY_ALLOW");
  let legacyAllow = NO_ADDRESSES;
  if (allowText !== undefined && allowText.trim() !== "") {
    try {
      legacyAllow = parseAddressList(allowText);
    } catch (err) {
      throw new ConfigError(`legacy-allow: ${(err as Error).message}`);
    }
  }
  const logLevel = pick("log-level", "SPECTRA_LOG_LEVEL") ?? "info";
  if (!["trace", "debug", "info", "warn", "error", "fatal", "silent"].includes(logLevel)) {
    throw new ConfigError(`log-level: ${JSON.stringify(logLevel)} is not one of trace, debug, info, warn, error`);
  }
  const dataDir = pick("data-dir", "SPECTRA_DATA_DIR") ?? "./data";
  const instanceId = pick("instance-id", "SPECTRA_INSTANCE_ID") ?? defaultInstanceId(port);
  if (instanceId.trim() === "") throw new ConfigError("instance-id: must not be empty");
  const cfg: ServerConfig = {
    host,
    port,
    dataDir,
    store: parseStore(pick("store", "SPECTRA_STORE"), dataDir),
    instanceId,
    tlsSelfSigned,
    legacyAllow,
    keyGraceMs: parseDuration("key-rotation-grace", pick("key-rotation-grace", "SPECTRA_KEY_ROTATION_GRACE") ?? "10m"),
    longPollMs: parseDuration("long-poll", pick("long-poll", "SPECTRA_LONG_POLL") ?? "30s"),
    commandTtlMs: parseDuration("command-ttl", pick("command-ttl", "SPECTRA_COMMAND_TTL") ?? "1h"),
    maxQueuedCommands: 10,
    maxBodyBytes: parseBytes("max-body", pick("max-body", "SPECTRA_MAX_BODY") ?? String(16 * 1024 * 1024)),
    maxInflatedBytes: parseBytes("max-inflated", pick("max-inflated", "SPECTRA_MAX_INFLATED") ?? String(64 * 1024 * 1024)),
    retentionMs: {
      raw: parseDuration("retention-raw", pick("retention-raw", "SPECTRA_RETENTION_RAW") ?? "7d"),
      "1m": parseDuration("retention-1m", pick("retention-1m", "SPECTRA_RETENTION_1M") ?? "90d"),
      "1h": parseDuration("retention-1h", pick("retention-1h", "SPECTRA_RETENTION_1H") ?? "730d"),
    },
    flushIntervalMs: parseDuration("flush-interval", pick("flush-interval", "SPECTRA_FLUSH_INTERVAL") ?? "60s"),
    agentStaleAfter: parsePositive("agent-stale-after", pick("agent-stale-after", "SPECTRA_AGENT_STALE_AFTER") ?? "3"),
    agentOfflineAfter: parsePositive("agent-offline-after", pick("agent-offline-after", "SPECTRA_AGENT_OFFLINE_AFTER") ?? "12"),
    agentCleanupAfterMs: undefined,
    rateLimit: parseCount("rate-limit", pick("rate-limit", "SPECTRA_RATE_LIMIT") ?? "50"),
    rateBurst: parseCount("rate-burst", pick("rate-burst", "SPECTRA_RATE_BURST") ?? "500"),
    logLevel,
    help: values.help === true,
  };
  if (cfg.retentionMs["1m"] < cfg.retentionMs.raw || cfg.retentionMs["1h"] < cfg.retentionMs["1m"]) {
    throw new ConfigError("retention-raw, retention-1m, retention-1h: each tier must be kept at least as long as the finer one");
  }
  if (cfg.flushIntervalMs > 3_600_000) throw new ConfigError("flush-interval: at most 1h");
  if (cfg.agentOfflineAfter <= cfg.agentStaleAfter) {
    throw new ConfigError("agent-offline-after: must be more intervals than agent-stale-after");
  }
  const cleanup = pick("agent-cleanup-after", "SPECTRA_AGENT_CLEANUP_AFTER");
  if (cleanup !== undefined && cleanup.trim() !== "" && !/^(0|off)$/i.test(cleanup.trim())) {
    cfg.agentCleanupAfterMs = parseDuration("agent-cleanup-after", cleanup);
  }
  if (cfg.rateLimit > 0 && cfg.rateBurst < 1) throw new ConfigError("rate-burst: at least 1 (or turn limits off with --rate-limit 0)");
  if (certPath !== undefined && keyPath !== undefined) cfg.tls = { certPath, keyPath };
  if (clientCa !== undefined) cfg.tlsClient = { caPath: clientCa, auth: (clientAuth as ClientAuthMode | undefined) ?? "require" };
  return cfg;
}

function readSetting(setting: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`${setting}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

/**
 * Reads the TLS files named in the config; a missing file is a ConfigError naming the setting. With
 * --tls-client-ca the result carries the client CA too (see {@link readClientTls}).
 */
export function readTls(cfg: ServerConfig): TlsFiles | undefined {
  if (!cfg.tls) return undefined;
  return { cert: readSetting("tls-cert", cfg.tls.certPath), key: readSetting("tls-key", cfg.tls.keyPath), ...readClientTls(cfg) };
}

/** The certificate and key the listener serves, and the mutual-TLS settings when configured. */
export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  clientCa?: Buffer;
  clientAuth?: ClientAuthMode;
}

/**
 * The mutual-TLS part of the listener's TLS settings (empty without --tls-client-ca), to merge with a certificate
 * from --tls-cert or --tls-self-signed. The CA file must hold at least one PEM certificate.
 */
export function readClientTls(cfg: ServerConfig): { clientCa?: Buffer; clientAuth?: ClientAuthMode } {
  if (!cfg.tlsClient) return {};
  const ca = readSetting("tls-client-ca", cfg.tlsClient.caPath);
  if (!ca.toString("latin1").includes("-----BEGIN CERTIFICATE-----")) {
    throw new ConfigError(`tls-client-ca: ${cfg.tlsClient.caPath} holds no PEM certificate`);
  }
  return { clientCa: ca, clientAuth: cfg.tlsClient.auth };
}
