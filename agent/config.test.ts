import { describe, expect, it } from "vitest";
import { ConfigError, DEFAULTS, isCollectorEnabled, loadConfig, parseByteSize, parseDuration, type LoadConfigInput } from "./config.js";

const known = ["cpu", "memory", "disk", "disk_io", "network", "system"];

function load(argv: string[], env: Record<string, string> = {}, files: Record<string, string> = {}) {
  const input: LoadConfigInput = {
    argv,
    env,
    knownCollectors: known,
    cwd: "/work",
    defaultHostname: () => "os-host",
    readFile: (p) => {
      const text = files[p];
      if (text === undefined) throw Object.assign(new Error(`ENOENT: ${p}`), { code: "ENOENT" });
      return text;
    },
  };
  return loadConfig(input);
}

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig", () => {
  it("uses the defaults", () => {
    const c = load([]);
    expect(c.server).toBe("http://127.0.0.1:8080");
    expect(c.hostname).toBe("os-host");
    expect(c.dataDir).toBe("/work/data/agent");
    expect(c.paths).toEqual({ procRoot: "/proc", sysRoot: "/sys", rootfs: "" });
    expect(c.debugPort).toBe(6060);
    expect(c.spool).toEqual({ maxBytes: 100 * 1024 * 1024, maxAgeMs: 7 * 86_400_000 });
    expect(c.logLevel).toBe("info");
    expect(c.once).toBe(false);
    expect(c.debug).toBe(false);
    expect(c.only).toBeUndefined();
    expect(c.configFile).toBeUndefined();
    expect(DEFAULTS.server).toBe(c.server);
  });

  it("applies flags over env over file over defaults", () => {
    const file = "server: http://file:1\nhostname: file-host\ndata_dir: /file\nproc_root: /file/proc\nlog_level: warn\n";
    const files = { "/etc/spectra.yaml": file };
    const fromFile = load(["--config", "/etc/spectra.yaml"], {}, files);
    expect(fromFile.server).toBe("http://file:1");
    expect(fromFile.hostname).toBe("file-host");
    expect(fromFile.dataDir).toBe("/file");
    expect(fromFile.paths.procRoot).toBe("/file/proc");
    expect(fromFile.logLevel).toBe("warn");
    expect(fromFile.configFile).toBe("/etc/spectra.yaml");

    const env = { SPECTRA_SERVER: "http://env:2", HOSTNAME: "env-host", SPECTRA_DATA_DIR: "/env", SPECTRA_CONFIG: "/etc/spectra.yaml" };
    const fromEnv = load([], env, files);
    expect(fromEnv.server).toBe("http://env:2");
    expect(fromEnv.hostname).toBe("env-host");
    expect(fromEnv.dataDir).toBe("/env");
    expect(fromEnv.paths.procRoot).toBe("/file/proc");

    const fromFlags = load(["--server", "https://flag:3/", "--hostname", "flag-host", "--data-dir", "rel"], env, files);
    expect(fromFlags.server).toBe("https://flag:3");
    expect(fromFlags.hostname).toBe("flag-host");
    expect(fromFlags.dataDir).toBe("/work/rel");
  });

  it("treats empty environment variables as unset", () => {
    expect(load([], { SPECTRA_SERVER: "", HOSTNAME: "" }).server).toBe(DEFAULTS.server);
    expect(load([], { HOSTNAME: "" }).hostname).toBe("os-host");
  });

  it("reads every flag", () => {
    const c = load([
      "--once",
      "--debug",
      "--debug-port",
      "0",
      "--proc-root",
      "/host/proc/",
      "--sys-root",
      "/host/sys",
      "--rootfs",
      "/host",
      "--spool-max-bytes",
      "10MiB",
      "--spool-max-age",
      "1d",
      "--collectors",
      "cpu, memory",
      "--log-level",
      "DEBUG",
    ]);
    expect(c.once).toBe(true);
    expect(c.debug).toBe(true);
    expect(c.debugPort).toBe(0);
    expect(c.paths).toEqual({ procRoot: "/host/proc", sysRoot: "/host/sys", rootfs: "/host" });
    expect(c.spool).toEqual({ maxBytes: 10 * 1024 * 1024, maxAgeMs: 86_400_000 });
    expect(c.only).toEqual(["cpu", "memory"]);
    expect(c.logLevel).toBe("debug");
    expect(isCollectorEnabled(c, "cpu")).toBe(true);
    expect(isCollectorEnabled(c, "disk")).toBe(false);
  });

  it("reads the env-only settings", () => {
    const c = load([], {
      SPECTRA_PROC_ROOT: "/h/proc",
      SPECTRA_SYS_ROOT: "/h/sys",
      SPECTRA_ROOTFS: "/h",
      SPECTRA_LOG_LEVEL: "error",
      SPECTRA_DEBUG_PORT: "7070",
      SPECTRA_SPOOL_MAX_BYTES: "1GiB",
      SPECTRA_SPOOL_MAX_AGE: "12h",
      SPECTRA_COLLECTORS: "disk",
    });
    expect(c.paths).toEqual({ procRoot: "/h/proc", sysRoot: "/h/sys", rootfs: "/h" });
    expect(c.logLevel).toBe("error");
    expect(c.debugPort).toBe(7070);
    expect(c.spool).toEqual({ maxBytes: 1024 ** 3, maxAgeMs: 12 * 3_600_000 });
    expect(c.only).toEqual(["disk"]);
  });

  it("reads per-collector settings from the file", () => {
    const yaml = [
      "collectors:",
      "  cpu: { enabled: true, interval: 5s, timeout: 2s }",
      "  memory:",
      "    interval: 1m",
      "  disk: false",
      "  network:",
      "    interval: 2500",
      "    options: { exclude: [lo] }",
      "spool:",
      "  max_bytes: 50MB",
      "  max_age: 2d",
    ].join("\n");
    const c = load(["-c", "/c.yaml"], {}, { "/c.yaml": yaml });
    expect(c.collectors["cpu"]).toEqual({ enabled: true, intervalMs: 5_000, timeoutMs: 2_000, options: {} });
    expect(c.collectors["memory"]?.intervalMs).toBe(60_000);
    expect(c.collectors["disk"]?.enabled).toBe(false);
    expect(c.collectors["network"]).toEqual({ enabled: undefined, intervalMs: 2_500, timeoutMs: undefined, options: { exclude: ["lo"] } });
    expect(isCollectorEnabled(c, "disk")).toBe(false);
    expect(isCollectorEnabled(c, "system")).toBe(true);
    expect(c.spool).toEqual({ maxBytes: 50_000_000, maxAgeMs: 2 * 86_400_000 });
  });

  it("accepts an empty file", () => {
    expect(load(["--config", "/e.yaml"], {}, { "/e.yaml": "# nothing\n" }).server).toBe(DEFAULTS.server);
  });

  it("returns help without validating the rest", () => {
    expect(load(["--help", "--server", "nope"]).help).toBe(true);
    expect(load(["-h"]).help).toBe(true);
  });
});

describe("bad settings name the setting", () => {
  const cases: [string, () => unknown, string][] = [
    ["unknown flag", () => load(["--bogus"]), "--bogus: unknown flag (see --help)"],
    ["missing value", () => load(["--server"]), "--server: needs a value"],
    ["value on a boolean", () => load(["--once=yes"]), "--once: takes no value"],
    ["positional", () => load(["extra"]), 'unexpected argument "extra"'],
    ["bad URL flag", () => load(["--server", "not a url"]), '--server: "not a url" is not a URL'],
    ["bad scheme", () => load(["--server", "ftp://x"]), '--server: "ftp://x" must start with http:// or https://'],
    ["bad URL env", () => load([], { SPECTRA_SERVER: "::" }), 'SPECTRA_SERVER: "::" is not a URL'],
    ["URL with query", () => load(["--server", "http://x/?a=1"]), "--server: \"http://x/?a=1\" must not carry"],
    ["bad hostname", () => load(["--hostname", "a b"]), '--hostname: "a b" is not a host name'],
    ["bad port", () => load(["--debug-port", "70000"]), '--debug-port: "70000" is not a port'],
    ["bad port env", () => load([], { SPECTRA_DEBUG_PORT: "x" }), 'SPECTRA_DEBUG_PORT: "x" is not a port'],
    ["bad size", () => load(["--spool-max-bytes", "lots"]), '--spool-max-bytes: "lots" is not a size'],
    ["tiny size", () => load(["--spool-max-bytes", "10"]), '--spool-max-bytes: "10" is too small'],
    ["bad age", () => load(["--spool-max-age", "soon"]), '--spool-max-age: "soon" is not a duration'],
    ["short age", () => load(["--spool-max-age", "1s"]), '--spool-max-age: "1s" is out of range'],
    ["bad level", () => load([], { SPECTRA_LOG_LEVEL: "loud" }), 'SPECTRA_LOG_LEVEL: "loud" is not a log level'],
    ["unknown --collectors", () => load(["--collectors", "cpu,gpuz"]), '--collectors: unknown collector "gpuz" (known: cpu, memory'],
    ["empty --collectors", () => load(["--collectors", ","]), "--collectors: empty list"],
    ["empty data dir", () => load(["--data-dir", " "]), "--data-dir: must not be empty"],
    ["missing file", () => load(["--config", "/nope.yaml"]), '--config: cannot read "/nope.yaml": ENOENT'],
  ];
  it.each(cases)("%s", (_name, fn, message) => {
    expect(errorOf(fn).message).toContain(message);
    expect(errorOf(fn).exitCode).toBe(2);
  });

  const fileCases: [string, string, string][] = [
    ["bad interval", "collectors:\n  cpu:\n    interval: 5x\n", 'collectors.cpu.interval: "5x" is not a duration'],
    ["interval too small", "collectors:\n  cpu: { interval: 10ms }\n", 'collectors.cpu.interval: "10ms" is out of range'],
    ["bad timeout", "collectors:\n  cpu: { timeout: forever }\n", 'collectors.cpu.timeout: "forever" is not a duration'],
    ["bad enabled", "collectors:\n  cpu: { enabled: yes please }\n", 'collectors.cpu.enabled: "yes please" is not true or false'],
    ["unknown collector", "collectors:\n  gpuz: { enabled: true }\n", "collectors.gpuz: unknown collector (known: cpu"],
    ["unknown collector key", "collectors:\n  cpu: { intervall: 5s }\n", "collectors.cpu.intervall: unknown setting (known: enabled, interval, timeout, options)"],
    ["collector not a mapping", "collectors:\n  cpu: [1]\n", "collectors.cpu: must be a mapping"],
    ["unknown top key", "sever: http://x\n", "sever: unknown setting (known: server, hostname"],
    ["unknown spool key", "spool:\n  max: 1\n", "spool.max: unknown setting (known: max_bytes, max_age)"],
    ["bad spool size", "spool:\n  max_bytes: huge\n", 'spool.max_bytes: "huge" is not a size'],
    ["bad server in file", "server: gopher://x\n", 'server: "gopher://x" must start with http:// or https://'],
    ["list as scalar", "server: [a, b]\n", "server: must be a single value"],
    ["not a mapping", "- a\n- b\n", "must be a mapping of settings"],
    ["yaml syntax", "server: [unclosed\n", '--config: "/c.yaml" line'],
    ["duplicate key", "server: http://a\nserver: http://b\n", '--config: "/c.yaml" line'],
  ];
  it.each(fileCases)("file: %s", (_name, yaml, message) => {
    expect(errorOf(() => load(["--config", "/c.yaml"], {}, { "/c.yaml": yaml })).message).toContain(message);
  });
});

describe("parseDuration", () => {
  it.each([
    ["500ms", 500],
    ["5s", 5_000],
    ["1m", 60_000],
    ["1h30m", 5_400_000],
    ["7d", 604_800_000],
    ["1.5s", 1_500],
    ["2500", 2_500],
    [2500, 2_500],
  ] as const)("%s", (input, ms) => expect(parseDuration(input)).toBe(ms));
  it.each(["5x", "", "s", "-1s", "5 s", true, null])("rejects %s", (input) => expect(parseDuration(input)).toBeUndefined());
});

describe("parseByteSize", () => {
  it.each([
    ["100MiB", 100 * 1024 ** 2],
    ["100MB", 100_000_000],
    ["100M", 100 * 1024 ** 2],
    ["512KiB", 512 * 1024],
    ["1GiB", 1024 ** 3],
    ["2048", 2048],
    [4096, 4096],
  ] as const)("%s", (input, bytes) => expect(parseByteSize(input)).toBe(bytes));
  it.each(["lots", "1XB", "-5", ""])("rejects %s", (input) => expect(parseByteSize(input)).toBeUndefined());
});

describe("enrollment token and server fingerprint", () => {
  const pin = `sha256:${"ab".repeat(32)}`;

  it("reads them from flags, environment and file, remembering where the token came from", () => {
    expect(load([]).enrollToken).toBeUndefined();
    expect(load([]).serverPin).toBeUndefined();
    expect(load(["--enroll-token", "tok-flag"], { SPECTRA_ENROLL_TOKEN: "tok-env" }).enrollToken).toEqual({ value: "tok-flag", setting: "--enroll-token" });
    expect(load([], { SPECTRA_ENROLL_TOKEN: "tok-env" }).enrollToken).toEqual({ value: "tok-env", setting: "SPECTRA_ENROLL_TOKEN" });
    const files = { "/a.yaml": `server: https://spectra.example:8443\nenroll_token: tok-file\nserver_fingerprint: "${pin}"\n` };
    const c = load(["--config", "/a.yaml"], {}, files);
    expect(c.enrollToken).toEqual({ value: "tok-file", setting: "enroll_token" });
    expect(c.serverPin).toEqual({ fingerprint: pin, setting: "server_fingerprint" });
    expect(load(["--server", "https://x:1"], { SPECTRA_SERVER_FINGERPRINT: pin.toUpperCase().replace("SHA256", "sha256") }).serverPin).toEqual({
      fingerprint: pin,
      setting: "SPECTRA_SERVER_FINGERPRINT",
    });
  });

  it("refuses a bad fingerprint, a pin for http://, and a bad token without printing the token", () => {
    expect(errorOf(() => load(["--server", "https://x:1", "--server-fingerprint", "ab:cd"])).message).toBe(
      '--server-fingerprint: "ab:cd" is not a certificate fingerprint (expected sha256: and 64 hex digits, as spectra-server --tls-self-signed prints it)',
    );
    expect(errorOf(() => load(["--server-fingerprint", pin])).message).toBe(
      "--server-fingerprint: pins a TLS certificate, but the server http://127.0.0.1:8080 is not https://",
    );
    const bad = errorOf(() => load([], { SPECTRA_ENROLL_TOKEN: "secret with spaces" }));
    expect(bad.message).toBe("SPECTRA_ENROLL_TOKEN: is not an enrollment token (up to 1024 printable characters, no spaces)");
    expect(bad.message).not.toContain("secret");
  });
});

describe("client TLS (mutual TLS, custom CA)", () => {
  const CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  const KEY = "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n";
  const files = { "/work/a.crt": CERT, "/work/a.key": KEY, "/etc/ca.pem": CERT };
  const https = ["--server", "https://spectra.example:8443"];

  it("reads cert, key and CA from flags, environment or the file, relative to the working directory", () => {
    const f = load([...https, "--tls-cert", "a.crt", "--tls-key", "a.key", "--tls-ca", "/etc/ca.pem"], {}, files);
    expect(f.clientTls).toEqual({ cert: Buffer.from(CERT), key: Buffer.from(KEY), ca: Buffer.from(CERT) });
    const e = load(https, { SPECTRA_TLS_CERT: "/work/a.crt", SPECTRA_TLS_KEY: "a.key" }, files);
    expect(e.clientTls).toEqual({ cert: Buffer.from(CERT), key: Buffer.from(KEY) });
    const y = load(["-c", "/work/s.yaml"], {}, { ...files, "/work/s.yaml": "server: https://s:1\ntls_ca: /etc/ca.pem\n" });
    expect(y.clientTls).toEqual({ ca: Buffer.from(CERT) });
    expect(load([]).clientTls).toBeUndefined();
  });

  it("refuses half a pair, http://, a CA with a pin, unreadable and non-PEM files, naming the setting only", () => {
    expect(errorOf(() => load([...https, "--tls-cert", "a.crt"], {}, files)).message).toMatch(/^--tls-cert: a client certificate needs both/);
    expect(errorOf(() => load(https, { SPECTRA_TLS_KEY: "a.key" }, files)).message).toMatch(/^SPECTRA_TLS_KEY: a client certificate needs both/);
    expect(errorOf(() => load(["--tls-ca", "/etc/ca.pem"], {}, files)).message).toBe(
      "--tls-ca: TLS settings, but the server http://127.0.0.1:8080 is not https://",
    );
    const pin = `sha256:${"ab".repeat(32)}`;
    expect(errorOf(() => load([...https, "--server-fingerprint", pin, "--tls-ca", "/etc/ca.pem"], {}, files)).message).toMatch(
      /^--tls-ca: give it or a server fingerprint, not both/,
    );
    // A pin and a client certificate go together.
    expect(load([...https, "--server-fingerprint", pin, "--tls-cert", "a.crt", "--tls-key", "a.key"], {}, files).clientTls).toEqual({
      cert: Buffer.from(CERT),
      key: Buffer.from(KEY),
    });
    expect(errorOf(() => load([...https, "--tls-ca", "none.pem"], {}, files)).message).toBe('--tls-ca: cannot read "/work/none.pem": ENOENT');
    const swapped = errorOf(() => load([...https, "--tls-cert", "a.key", "--tls-key", "a.key"], {}, files)).message;
    expect(swapped).toBe('--tls-cert: "/work/a.key" holds no PEM certificate');
    const noKey = errorOf(() => load([...https, "--tls-cert", "a.crt", "--tls-key", "a.crt"], {}, files)).message;
    expect(noKey).toBe('--tls-key: "/work/a.crt" holds no PEM private key');
    expect(noKey).not.toContain("MIIB");
  });
});
