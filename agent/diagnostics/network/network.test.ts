import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { CommandSchema, CommandType, NetworkAction, NetworkDiagParamsSchema } from "../../../gen/spectra/v1/diagnostics_pb.js";
import { runCommand } from "../registry.js";
import { parseNetworkParams } from "./params.js";
import { captured, fakeHost, readTestdata, silentLogger } from "./testing/fake-host.js";

const params = (action: NetworkAction, target: string, extra: { count?: number; timeoutMs?: number; maxHops?: number } = {}) =>
  create(NetworkDiagParamsSchema, { action, target, ...extra });

const INJECTIONS = [
  "127.0.0.1; touch /tmp/pwned",
  "127.0.0.1;id",
  "$(touch /tmp/pwned)",
  "`touch /tmp/pwned`",
  "127.0.0.1\ntouch /tmp/pwned",
  "127.0.0.1\r\n",
  "-f",
  "--help",
  "-c 1000 127.0.0.1",
  "127.0.0.1 -f",
  "127.0.0.1|id",
  "127.0.0.1&&id",
  "127.0.0.1 & calc.exe",
  "'127.0.0.1'",
  "${IFS}id",
  "127.0.0.1\0",
  "%0aid",
];

describe("network_diag parameters", () => {
  it("fills defaults and caps numbers", () => {
    expect(parseNetworkParams(params(NetworkAction.PING, "example.org"))).toEqual({
      action: "ping",
      target: "example.org",
      host: "example.org",
      family: 0,
      count: 4,
      timeoutMs: 2000,
    });
    expect(parseNetworkParams(params(NetworkAction.PING, "[::1]", { count: 1_000_000, timeoutMs: 1 }))).toMatchObject({
      host: "::1",
      family: 6,
      count: 100,
      timeoutMs: 1000,
    });
    expect(parseNetworkParams(params(NetworkAction.CONNECT, "127.0.0.1:8080"))).toEqual({
      action: "connect",
      target: "127.0.0.1:8080",
      host: "127.0.0.1",
      family: 4,
      port: 8080,
      timeoutMs: 3000,
    });
    expect(parseNetworkParams(params(NetworkAction.CONNECT, "[::1]:22", { timeoutMs: 600_000 }))).toMatchObject({ timeoutMs: 10_000 });
    expect(parseNetworkParams(params(NetworkAction.TRACEROUTE, "192.0.2.1", { maxHops: 255 }))).toMatchObject({ maxHops: 30, probes: 3, waitMs: 2000 });
    expect(parseNetworkParams(params(NetworkAction.NETSTAT, ""))).toEqual({ action: "netstat", target: "Local System" });
    expect(parseNetworkParams(params(NetworkAction.NETSTAT, "Local System"))).toEqual({ action: "netstat", target: "Local System" });
  });

  it("requires a known action", () => {
    expect(() => parseNetworkParams(params(NetworkAction.UNSPECIFIED, "127.0.0.1"))).toThrow("action required (ping, connect, netstat or traceroute)");
    expect(() => parseNetworkParams(params(42 as NetworkAction, "127.0.0.1"))).toThrow('unknown action "42"');
  });

  for (const platform of ["linux", "windows"] as const) {
    it(`rejects injection attempts in every string parameter before anything runs (${platform})`, async () => {
      // The fake runner would answer a successful ping and traceroute: any call at all is a failure of this test.
      const { host, calls } = fakeHost(platform, (_file, args) =>
        args.includes("-q") || args.includes("-m") || args.includes("-h") ? captured("traceroute/traceroute-gateway") : captured("ping/ping-ok-ipv4"),
      );
      const cases: Array<[NetworkAction, string]> = [];
      for (const bad of INJECTIONS) {
        cases.push([NetworkAction.PING, bad], [NetworkAction.TRACEROUTE, bad], [NetworkAction.NETSTAT, bad]);
        cases.push([NetworkAction.CONNECT, bad], [NetworkAction.CONNECT, `${bad}:80`], [NetworkAction.CONNECT, `127.0.0.1:80${bad}`]);
      }
      for (const [action, target] of cases) {
        const outcome = await runCommand(
          create(CommandSchema, { id: "inj", type: CommandType.NETWORK_DIAG, params: { case: "networkDiag", value: params(action, target) } }),
          { host, logger: silentLogger, timeoutMs: 5_000 },
        );
        expect(outcome.error, `${NetworkAction[action]} ${JSON.stringify(target)}`).toMatch(/^invalid target|must be host:port|out of range/);
        expect(outcome.result.case).toBeUndefined();
      }
      expect(calls).toEqual([]);
    });
  }

  it("runs a valid ping through the registry with the fake runner (the same host that refused the injections)", async () => {
    const { host, calls } = fakeHost("linux", (file) => (file === "/usr/bin/ping" ? captured("ping/ping-ok-ipv4") : "ENOENT"));
    const outcome = await runCommand(
      create(CommandSchema, { id: "ok", type: CommandType.NETWORK_DIAG, params: { case: "networkDiag", value: params(NetworkAction.PING, "127.0.0.1", { count: 3 }) } }),
      { host, logger: silentLogger, timeoutMs: 5_000 },
    );
    expect(outcome.error).toBe("");
    expect(outcome.type).toBe(CommandType.NETWORK_DIAG);
    expect(outcome.result.case === "networkDiag" && outcome.result.value.pingResults.length).toBe(3);
    expect(calls).toHaveLength(1);
  });

  it("runs one network diagnostic at a time per agent", async () => {
    let release: (() => void) | undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { host } = fakeHost("linux");
    host.exec.run = async () => {
      await gate;
      return { stdout: readTestdata("traceroute/traceroute-gateway.stdout"), stderr: "", exitCode: 0, signal: null, timedOut: false, truncated: false };
    };
    const command = (id: string) =>
      create(CommandSchema, { id, type: CommandType.NETWORK_DIAG, params: { case: "networkDiag", value: params(NetworkAction.TRACEROUTE, "192.0.2.1") } });
    const first = runCommand(command("a"), { host, logger: silentLogger, timeoutMs: 5_000 });
    await new Promise((r) => setTimeout(r, 20));
    const second = await runCommand(command("b"), { host, logger: silentLogger, timeoutMs: 5_000 });
    expect(second.error).toBe("network_diag is already running on this agent");
    release?.();
    expect((await first).error).toBe("");
    expect((await runCommand(command("c"), { host, logger: silentLogger, timeoutMs: 5_000 })).error).toBe("");
  });

  it("answers a legacy command that carries only its type with 'action required'", async () => {
    const outcome = await runCommand(create(CommandSchema, { id: "legacy", type: CommandType.NETWORK_DIAG }), {
      host: fakeHost("linux").host,
      logger: silentLogger,
      timeoutMs: 5_000,
    });
    expect(outcome.error).toBe("action required (ping, connect, netstat or traceroute)");
  });
});
