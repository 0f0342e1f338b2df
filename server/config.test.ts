import { describe, expect, it } from "vitest";
import { ConfigError, loadServerConfig, parseDuration, parseListen, readTls } from "./config.js";

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
      help: false,
    });
    expect(c.tls).toBeUndefined();
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
});
