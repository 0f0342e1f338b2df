import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  ConfigError,
  describeStore,
  loadServerConfig,
  parseDuration,
  parseListen,
  readClientTls,
  readTls,
  redactUrl,
  serverHelp,
} from "./config.js";

describe("server config", () => {
  it("has the documented defaults", () => {
    const c = loadServerConfig([], {});
    expect(c).toMatchObject({
      host: "0.0.0.0",
      port: 8080,
      dataDir: "./data",
      longPollMs: 30_000,
      commandTtlMs: 3_600_000,
      maxQueuedCommands: 10,
      retentionMs: { raw: 7 * 86_400_000, "1m": 90 * 86_400_000, "1h": 730 * 86_400_000 },
      flushIntervalMs: 60_000,
      help: false,
    });
    const r = loadServerConfig(["--retention-raw", "2d", "--flush-interval", "10s"], { SPECTRA_RETENTION_1H: "400d" });
    expect(r.retentionMs).toEqual({ raw: 2 * 86_400_000, "1m": 90 * 86_400_000, "1h": 400 * 86_400_000 });
    expect(r.flushIntervalMs).toBe(10_000);
    expect(c.tls).toBeUndefined();
    expect(c.store).toEqual({ kind: "sqlite", path: join("./data", "spectra.db") });
    expect(c.instanceId).toBe(`${hostname()}:8080`);
  });

  it("selects PostgreSQL for a postgres:// or postgresql:// store URL and SQLite for anything else", () => {
    const pgUrl = "postgres://spectra:s3cret@db.internal:5432/spectra";
    expect(loadServerConfig(["--store", pgUrl], {}).store).toEqual({ kind: "postgres", url: pgUrl });
    expect(loadServerConfig([], { SPECTRA_STORE: "postgresql://db/spectra" }).store).toEqual({
      kind: "postgres",
      url: "postgresql://db/spectra",
    });
    expect(loadServerConfig(["--store", "/var/lib/spectra/x.db"], { SPECTRA_STORE: pgUrl }).store).toEqual({
      kind: "sqlite",
      path: "/var/lib/spectra/x.db",
    });
    expect(loadServerConfig(["--data-dir", "/srv"], {}).store).toEqual({ kind: "sqlite", path: join("/srv", "spectra.db") });
    expect(() => loadServerConfig(["--store", "postgres://u:pw@[bad"], {})).toThrow(/^store: .* is not a valid PostgreSQL URL/);
    expect(() => loadServerConfig(["--store", "postgres://u:pw@[bad"], {})).not.toThrow(/pw/);
  });

  it("names the instance by flag, environment, or host and port", () => {
    expect(loadServerConfig(["--instance-id", "spectra-a"], { SPECTRA_INSTANCE_ID: "env" }).instanceId).toBe("spectra-a");
    expect(loadServerConfig([], { SPECTRA_INSTANCE_ID: "env" }).instanceId).toBe("env");
    expect(loadServerConfig(["--listen", "127.0.0.1:9000"], {}).instanceId).toBe(`${hostname()}:9000`);
    // A random port says nothing stable: the process id keeps two such servers apart.
    expect(loadServerConfig(["--listen", "127.0.0.1:0"], {}).instanceId).toBe(`${hostname()}:0:${process.pid}`);
    expect(() => loadServerConfig(["--instance-id", " "], {})).toThrow(/^instance-id:/);
  });

  it("never shows a store password", () => {
    expect(redactUrl("postgres://spectra:s3cret@db:5432/x?sslmode=require")).toBe("postgres://spectra:***@db:5432/x?sslmode=require");
    expect(redactUrl("postgresql://db/x?user=a&password=s3cret")).not.toContain("s3cret");
    expect(redactUrl("postgres://db/x")).toBe("postgres://db/x");
    expect(redactUrl("postgres://u:s3cret@[::1")).not.toContain("s3cret");
    expect(describeStore({ kind: "postgres", url: "postgres://u:s3cret@db/x" })).toBe("postgres://u:***@db/x");
    expect(describeStore({ kind: "sqlite", path: "/data/spectra.db" })).toBe("/data/spectra.db");
    expect(serverHelp).toContain("SPECTRA_STORE");
    expect(serverHelp).toContain("SPECTRA_INSTANCE_ID");
  });

  it("takes flags over environment", () => {
    const env = { SPECTRA_LISTEN: "127.0.0.1:9000", SPECTRA_DATA_DIR: "/env", SPECTRA_LONG_POLL: "5s" };
    expect(loadServerConfig([], env)).toMatchObject({ host: "127.0.0.1", port: 9000, dataDir: "/env", longPollMs: 5_000 });
    expect(loadServerConfig(["--listen", "[::1]:7000", "--data-dir", "/flag"], env)).toMatchObject({
      host: "::1",
      port: 7000,
      dataDir: "/flag",
    });
  });

  it("names the setting in every error", () => {
    const cases: [string[], RegExp][] = [
      [["--listen", "8080"], /^listen: "8080" is not host:port/],
      [["--listen", ":99999"], /^listen:/],
      [["--long-poll", "soon"], /^long-poll: "soon" is not a duration/],
      [["--command-ttl", "0"], /^command-ttl: must be greater than zero/],
      [["--max-body=-1"], /^max-body: "-1" is not a positive byte count/],
      [["--tls-cert", "a.pem"], /^tls-cert and tls-key/],
      [["--log-level", "loud"], /^log-level:/],
      [["--retention-raw", "forever"], /^retention-raw: "forever" is not a duration/],
      [["--retention-raw", "100d"], /^retention-raw, retention-1m, retention-1h: each tier must be kept at least as long/],
      [["--flush-interval", "2h"], /^flush-interval: at most 1h/],
      [["--bogus"], /bogus/],
    ];
    for (const [argv, msg] of cases) {
      expect(() => loadServerConfig(argv, {}), argv.join(" ")).toThrow(ConfigError);
      expect(() => loadServerConfig(argv, {}), argv.join(" ")).toThrow(msg);
    }
    const c = loadServerConfig(["--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"], {});
    expect(() => readTls(c)).toThrow(/^tls-cert: cannot read \/nonexistent\/c.pem: ENOENT/);
  });

  it("parses durations and listen addresses", () => {
    expect(parseDuration("x", "500ms")).toBe(500);
    expect(parseDuration("x", "1.5s")).toBe(1_500);
    expect(parseDuration("x", "7d")).toBe(604_800_000);
    expect(parseDuration("x", "250")).toBe(250);
    expect(parseListen(":8080")).toEqual({ host: "0.0.0.0", port: 8080 });
  });

  it("reads the security settings: legacy networks, self-signed TLS, key rotation grace", () => {
    const c = loadServerConfig([], {});
    expect(c).toMatchObject({ tlsSelfSigned: false, keyGraceMs: 600_000 });
    expect(c.legacyAllow.matches("127.0.0.1")).toBe(false);
    const f = loadServerConfig(["--legacy-allow", "10.0.0.0/8,::1", "--tls-self-signed", "--key-rotation-grace", "2m"], {});
    expect(f.legacyAllow.networks).toEqual(["10.0.0.0/8", "::1/128"]);
    expect(f.legacyAllow.matches("::ffff:10.9.8.7")).toBe(true);
    expect(f).toMatchObject({ tlsSelfSigned: true, keyGraceMs: 120_000 });
    const e = loadServerConfig([], { SPECTRA_LEGACY_ALLOW: "192.168.0.0/16", SPECTRA_TLS_SELF_SIGNED: "true", SPECTRA_KEY_ROTATION_GRACE: "30s" });
    expect(e.legacyAllow.matches("192.168.3.4")).toBe(true);
    expect(e).toMatchObject({ tlsSelfSigned: true, keyGraceMs: 30_000 });
    expect(() => loadServerConfig(["--legacy-allow", "10.0.0.0/40"], {})).toThrow(ConfigError);
    expect(() => loadServerConfig(["--legacy-allow", "nope"], {})).toThrow(/^legacy-allow: "nope" is not an IP address or CIDR$/);
    expect(() => loadServerConfig([], { SPECTRA_TLS_SELF_SIGNED: "maybe" })).toThrow(/tls-self-signed/);
    expect(() => loadServerConfig(["--tls-self-signed", "--tls-cert", "a", "--tls-key", "b"], {})).toThrow(/not both/);
    expect(serverHelp).toContain("SPECTRA_LEGACY_ALLOW");
    expect(serverHelp).toContain("spectra-server token revoke <name or id>");
  });

  it("reads the mutual-TLS settings: client CA, require by default, optional on request", () => {
    const dir = mkdtempSync(join(tmpdir(), "spectra-cfg-"));
    try {
      const ca = join(dir, "ca.pem");
      const notPem = join(dir, "ca.txt");
      writeFileSync(ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
      writeFileSync(notPem, "not a certificate\n");
      const tls = ["--tls-cert", ca, "--tls-key", ca];
      const r = loadServerConfig([...tls, "--tls-client-ca", ca], {});
      expect(r.tlsClient).toEqual({ caPath: ca, auth: "require" });
      expect(readTls(r)).toMatchObject({ clientAuth: "require", clientCa: readFileSync(ca) });
      const o = loadServerConfig(["--tls-self-signed"], { SPECTRA_TLS_CLIENT_CA: ca, SPECTRA_TLS_CLIENT_AUTH: "optional" });
      expect(o.tlsClient).toEqual({ caPath: ca, auth: "optional" });
      expect(readClientTls(o)).toEqual({ clientCa: readFileSync(ca), clientAuth: "optional" });
      expect(loadServerConfig(tls, {}).tlsClient).toBeUndefined();
      expect(readClientTls(loadServerConfig(tls, {}))).toEqual({});
      expect(() => loadServerConfig(["--tls-client-ca", ca], {})).toThrow(/^tls-client-ca: needs TLS/);
      expect(() => loadServerConfig([...tls, "--tls-client-auth", "optional"], {})).toThrow(/^tls-client-auth: needs tls-client-ca/);
      expect(() => loadServerConfig([...tls, "--tls-client-ca", ca, "--tls-client-auth", "maybe"], {})).toThrow(
        /^tls-client-auth: "maybe" is not optional or require/,
      );
      expect(() => readTls(loadServerConfig([...tls, "--tls-client-ca", notPem], {}))).toThrow(/^tls-client-ca: .* holds no PEM certificate/);
      expect(() => readTls(loadServerConfig([...tls, "--tls-client-ca", join(dir, "none.pem")], {}))).toThrow(/^tls-client-ca: cannot read .*ENOENT/);
      expect(serverHelp).toContain("SPECTRA_TLS_CLIENT_CA");
      expect(serverHelp).toContain("SPECTRA_TLS_CLIENT_AUTH");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reads the agent status thresholds, automatic cleanup and rate limits", () => {
    const c = loadServerConfig([], {});
    expect(c).toMatchObject({ agentStaleAfter: 3, agentOfflineAfter: 12, agentCleanupAfterMs: undefined, rateLimit: 50, rateBurst: 500 });
    const f = loadServerConfig(
      ["--agent-stale-after", "1.5", "--agent-offline-after", "4", "--agent-cleanup-after", "30d", "--rate-limit", "0", "--rate-burst", "10"],
      {},
    );
    expect(f).toMatchObject({ agentStaleAfter: 1.5, agentOfflineAfter: 4, agentCleanupAfterMs: 30 * 86_400_000, rateLimit: 0, rateBurst: 10 });
    const e = loadServerConfig([], {
      SPECTRA_AGENT_STALE_AFTER: "2",
      SPECTRA_AGENT_OFFLINE_AFTER: "6",
      SPECTRA_AGENT_CLEANUP_AFTER: "12h",
      SPECTRA_RATE_LIMIT: "5",
      SPECTRA_RATE_BURST: "20",
    });
    expect(e).toMatchObject({ agentStaleAfter: 2, agentOfflineAfter: 6, agentCleanupAfterMs: 43_200_000, rateLimit: 5, rateBurst: 20 });
    expect(loadServerConfig(["--agent-cleanup-after", "off"], {}).agentCleanupAfterMs).toBeUndefined();
    expect(() => loadServerConfig(["--agent-stale-after", "0"], {})).toThrow(/^agent-stale-after: "0" is not a positive number/);
    expect(() => loadServerConfig(["--agent-stale-after", "5", "--agent-offline-after", "5"], {})).toThrow(/^agent-offline-after: must be more/);
    expect(() => loadServerConfig(["--agent-cleanup-after", "soon"], {})).toThrow(/^agent-cleanup-after:/);
    expect(() => loadServerConfig(["--rate-limit=-3"], {})).toThrow(/^rate-limit: "-3" is not a whole number/);
    expect(() => loadServerConfig(["--rate-burst", "0"], {})).toThrow(/^rate-burst: at least 1/);
    for (const v of ["SPECTRA_AGENT_STALE_AFTER", "SPECTRA_AGENT_OFFLINE_AFTER", "SPECTRA_AGENT_CLEANUP_AFTER", "SPECTRA_RATE_LIMIT", "SPECTRA_RATE_BURST"]) {
      expect(serverHelp).toContain(v);
    }
  });
});
