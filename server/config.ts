import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

/** Thrown for a bad setting; the message names the setting and is printed without a stack trace. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Where the server keeps its data: embedded SQLite (a file path) or a PostgreSQL database (a URL). */
export type StoreSetting = { kind: "sqlite"; path: string } | { kind: "postgres"; url: string };

/** Validated server settings. */
export interface ServerConfig {
  host: string;
  port: number;
  dataDir: string;
  store: StoreSetting;
  /** This process's name in a shared (PostgreSQL) store: its write-ahead-log rows are its own. */
  instanceId: string;
  tls?: { certPath: string; keyPath: string };
  longPollMs: number;
  commandTtlMs: number;
  maxQueuedCommands: number;
  maxBodyBytes: number;
  maxInflatedBytes: number;
  /** How long raw samples, 1-minute and 1-hour rollups are kept. */
  retentionMs: { raw: number; "1m": number; "1h": number };
  /** How often the in-memory head is written to compressed chunks. */
  flushIntervalMs: number;
  logLevel: string;
  help: boolean;
}

export const serverHelp = `spectra-server: the Spectra monitoring server (Connect, gRPC, gRPC-Web and the legacy /api/v1 REST API on one port)

Usage: spectra-server [flags]

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

function parseBytes(setting: string, v: string): number {
  if (!/^\d+$/.test(v) || Number(v) <= 0) throw new ConfigError(`${setting}: ${JSON.stringify(v)} is not a positive byte count`);
  return Number(v);
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
        "long-poll": { type: "string" },
        "command-ttl": { type: "string" },
        "max-body": { type: "string" },
        "max-inflated": { type: "string" },
        "log-level": { type: "string" },
        "retention-raw": { type: "string" },
        "retention-1m": { type: "string" },
        "retention-1h": { type: "string" },
        "flush-interval": { type: "string" },
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
    logLevel,
    help: values.help === true,
  };
  if (cfg.retentionMs["1m"] < cfg.retentionMs.raw || cfg.retentionMs["1h"] < cfg.retentionMs["1m"]) {
    throw new ConfigError("retention-raw, retention-1m, retention-1h: each tier must be kept at least as long as the finer one");
  }
  if (cfg.flushIntervalMs > 3_600_000) throw new ConfigError("flush-interval: at most 1h");
  if (certPath !== undefined && keyPath !== undefined) cfg.tls = { certPath, keyPath };
  return cfg;
}

/** Reads the TLS files named in the config; a missing file is a ConfigError naming the setting. */
export function readTls(cfg: ServerConfig): { cert: Buffer; key: Buffer } | undefined {
  if (!cfg.tls) return undefined;
  const read = (setting: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new ConfigError(`${setting}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  };
  return { cert: read("tls-cert", cfg.tls.certPath), key: read("tls-key", cfg.tls.keyPath) };
}
