import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { CommandSchema, CommandType, NetworkAction } from "../../../gen/spectra/v1/diagnostics_pb.js";
import { createHostAccess } from "../../host/index.js";
import { runCommand } from "../registry.js";
import { parseNetworkParams } from "./params.js";
import { classifyPingError, parseUnixPing, parseWindowsPing, rttStats } from "./ping-parse.js";
import { pingArgs, pingTimeoutMs, runPing, type PingRequest } from "./ping.js";
import { captured, fakeHost, neverAborts, readTestdata, silentLogger } from "./testing/fake-host.js";

const pingReq = (target: string, count = 0, timeoutMs = 0): PingRequest =>
  parseNetworkParams({ action: NetworkAction.PING, target, count, timeoutMs, maxHops: 0 } as never) as PingRequest;

describe("iputils ping output (captured)", () => {
  it("parses replies, TTLs and the summary", () => {
    const p = parseUnixPing(readTestdata("ping/ping-ok-ipv4.stdout"));
    expect(p.format).toBe("iputils");
    expect(p.echoes).toEqual([
      { seq: 1, success: true, response: "reply", peer: "127.0.0.1", rttNs: 190_000n, ttl: 64 },
      { seq: 2, success: true, response: "reply", peer: "127.0.0.1", rttNs: 43_000n, ttl: 64 },
      { seq: 3, success: true, response: "reply", peer: "127.0.0.1", rttNs: 49_000n, ttl: 64 },
    ]);
    expect(p.summary).toEqual({
      transmitted: 3,
      received: 3,
      lossPct: 0,
      errors: 0,
      rttMinNs: 43_000n,
      rttAvgNs: 94_000n,
      rttMaxNs: 190_000n,
      rttMdevNs: 67_000n,
    });
  });

  it("parses IPv6 peers", () => {
    const p = parseUnixPing(readTestdata("ping/ping-ok-ipv6.stdout"));
    expect(p.echoes.map((e) => [e.seq, e.peer, e.rttNs])).toEqual([
      [1, "::1", 44_000n],
      [2, "::1", 40_000n],
    ]);
    expect(p.summary?.rttMdevNs).toBe(2_000n);
  });

  it("turns ICMP errors into dest unreachable with the router and the ICMP code", () => {
    const p = parseUnixPing(readTestdata("ping/ping-unreachable.stdout"));
    expect(p.echoes).toEqual([
      { seq: 1, success: false, response: "dest unreachable", peer: "21.4.3.177", code: 3 },
      { seq: 2, success: false, response: "dest unreachable", peer: "21.4.3.177", code: 3 },
    ]);
    expect(p.summary).toMatchObject({ transmitted: 2, received: 0, errors: 2, lossPct: 100, rttAvgNs: 0n });

    const deadline = parseUnixPing(readTestdata("ping/ping-deadline.stdout"));
    expect(deadline.echoes.map((e) => [e.seq, e.response, e.peer, e.code])).toEqual([
      [1, "dest unreachable", "192.0.2.2", 1],
      [2, "dest unreachable", "192.0.2.2", 1],
    ]);
  });

  it("adds the silent timeouts that ping does not print", () => {
    const p = parseUnixPing(readTestdata("ping/ping-timeout.stdout"));
    expect(p.echoes).toEqual([
      { seq: 1, success: false, response: "timeout", peer: "" },
      { seq: 2, success: false, response: "timeout", peer: "" },
    ]);
    expect(p.summary).toMatchObject({ transmitted: 2, received: 0, lossPct: 100 });
  });

  it("classifies the unknown-host and no-privilege failures", () => {
    expect(classifyPingError(captured("ping/ping-unknown-host").stderr ?? "")).toEqual({
      kind: "unknown-host",
      detail: "ping: nonexistent.invalid: Name or service not known",
    });
    expect(classifyPingError(captured("ping/ping-no-capability").stderr ?? "")).toEqual({
      kind: "privilege",
      detail: "ping: socket: Operation not permitted",
    });
    expect(classifyPingError("ping: socket: Permission denied\n").kind).toBe("privilege");
  });

  it("handles hand-written variants: time exceeded, a duplicate, a hostname peer, a run killed before its summary", () => {
    const p = parseUnixPing(
      [
        "PING example.org (192.0.2.80) 56(84) bytes of data.",
        "64 bytes from host.example.org (192.0.2.80): icmp_seq=1 ttl=52 time=10.5 ms",
        "64 bytes from host.example.org (192.0.2.80): icmp_seq=1 ttl=52 time=11.0 ms (DUP!)",
        "From 198.51.100.1 icmp_seq=2 Time to live exceeded",
        "64 bytes from host.example.org (192.0.2.80): icmp_seq=4 ttl=52 time=12 ms",
      ].join("\n"),
    );
    expect(p.echoes.map((e) => [e.seq, e.response, e.peer, e.rttNs, e.code])).toEqual([
      [1, "reply", "192.0.2.80", 10_500_000n, undefined],
      [2, "ttl exceeded", "198.51.100.1", undefined, 0],
      [3, "timeout", "", undefined, undefined],
      [4, "reply", "192.0.2.80", 12_000_000n, undefined],
    ]);
    expect(p.summary).toMatchObject({ transmitted: 4, received: 2, lossPct: 50, rttMinNs: 10_500_000n, rttMaxNs: 12_000_000n });
  });
});

describe("busybox ping output (captured)", () => {
  it("parses replies numbered from 0 and the round-trip line, computing the missing mdev", () => {
    const p = parseUnixPing(readTestdata("ping/busybox-ping-ok-ipv4.stdout"));
    expect(p.format).toBe("busybox");
    expect(p.echoes.map((e) => [e.seq, e.success, e.rttNs, e.ttl])).toEqual([
      [0, true, 52_000n, 64],
      [1, true, 66_000n, 64],
      [2, true, 73_000n, 64],
    ]);
    expect(p.summary).toMatchObject({ transmitted: 3, received: 3, lossPct: 0, rttMinNs: 52_000n, rttAvgNs: 63_000n, rttMaxNs: 73_000n });
    expect(p.summary?.rttMdevNs).toBe(rttStats([52_000n, 66_000n, 73_000n]).rttMdevNs);
    expect(parseUnixPing(readTestdata("ping/busybox-ping-ok-ipv6.stdout")).echoes.map((e) => e.peer)).toEqual(["::1", "::1"]);
  });

  it("adds timeouts from 0 when nothing answered", () => {
    const p = parseUnixPing(readTestdata("ping/busybox-ping-timeout.stdout"));
    expect(p.echoes.map((e) => [e.seq, e.response])).toEqual([
      [0, "timeout"],
      [1, "timeout"],
    ]);
    expect(p.summary).toMatchObject({ transmitted: 2, received: 0, lossPct: 100 });
  });

  it("recognises busybox's privilege error", () => {
    expect(classifyPingError(captured("ping/busybox-ping-noroot").stderr ?? "")).toEqual({
      kind: "privilege",
      detail: "ping: permission denied (are you root?)",
    });
  });
});

describe("Windows ping.exe output (hand-written)", () => {
  it("parses English replies, <1ms as 0.5 ms", () => {
    const p = parseWindowsPing(readTestdata("ping/windows-en-ok.txt"));
    expect(p.echoes.map((e) => [e.seq, e.success, e.response, e.peer, e.rttNs, e.ttl])).toEqual([
      [1, true, "reply", "127.0.0.1", 500_000n, 128],
      [2, true, "reply", "127.0.0.1", 500_000n, 128],
      [3, true, "reply", "127.0.0.1", 1_000_000n, 128],
      [4, true, "reply", "127.0.0.1", 500_000n, 128],
    ]);
    expect(p.summary).toMatchObject({ transmitted: 4, received: 4, lossPct: 0, rttMinNs: 500_000n, rttAvgNs: 625_000n, rttMaxNs: 1_000_000n });
  });

  it("does not count 'Destination host unreachable' as a reply, and reads timeouts, TTL expiry and failures", () => {
    const p = parseWindowsPing(readTestdata("ping/windows-en-mixed.txt"));
    expect(p.echoes).toEqual([
      { seq: 1, success: true, response: "reply", peer: "192.0.2.10", rttNs: 14_000_000n, ttl: 57 },
      { seq: 2, success: false, response: "timeout", peer: "" },
      { seq: 3, success: false, response: "dest unreachable", peer: "192.0.2.1", code: 1 },
      { seq: 4, success: false, response: "ttl exceeded", peer: "192.0.2.1", code: 0 },
      { seq: 5, success: false, response: "failed: PING: transmit failed. General failure.", peer: "" },
    ]);
    // Windows said "Received = 3"; only one echo came back.
    expect(p.summary).toMatchObject({ transmitted: 5, received: 1, lossPct: 80, errors: 3 });
  });

  it("parses German output by shape (Antwort von, Zeit<1ms, the wrapped loss line)", () => {
    const p = parseWindowsPing(readTestdata("ping/windows-de-mixed.txt"));
    expect(p.echoes.map((e) => [e.seq, e.response, e.peer, e.rttNs])).toEqual([
      [1, "reply", "192.0.2.10", 12_000_000n],
      [2, "reply", "192.0.2.10", 500_000n],
      [3, "timeout", "", undefined],
      [4, "dest unreachable", "192.0.2.1", undefined],
    ]);
    expect(p.summary).toMatchObject({ transmitted: 4, received: 2, lossPct: 50 });
  });

  it("parses IPv6 replies without TTL", () => {
    const p = parseWindowsPing(readTestdata("ping/windows-en-ipv6.txt"));
    expect(p.echoes.map((e) => [e.peer, e.rttNs, e.ttl])).toEqual([
      ["::1", 500_000n, undefined],
      ["::1", 2_000_000n, undefined],
    ]);
  });

  it("yields nothing for a DNS failure and classifies it in both languages", () => {
    for (const f of ["ping/windows-en-unknown-host.txt", "ping/windows-de-unknown-host.txt"]) {
      const text = readTestdata(f);
      expect(parseWindowsPing(text)).toEqual({ format: "windows", echoes: [] });
      expect(classifyPingError(text).kind).toBe("unknown-host");
    }
  });
});

describe("runPing with a fake command runner", () => {
  it("runs iputils with an argument array, the target after --, and count × timeout + margin", async () => {
    const { host, calls } = fakeHost("linux", (file) => (file === "/usr/bin/ping" ? captured("ping/ping-ok-ipv4") : "ENOENT"));
    const result = await runPing(pingReq("127.0.0.1", 3, 1000), { host, signal: neverAborts });
    expect(calls).toHaveLength(1);
    expect(calls[0]?.file).toBe("/usr/bin/ping");
    expect(calls[0]?.args).toEqual(["-n", "-c", "3", "-W", "1", "-i", "0.2", "--", "127.0.0.1"]);
    expect(calls[0]?.opts.timeoutMs).toBe(3 * 1000 + 5000);
    expect(result).toMatchObject({ action: "ping", target: "127.0.0.1", tool: "ping" });
    expect(result.pingResults.map((r) => [r.seq, r.success, r.rtt, r.response, r.peer])).toEqual([
      [1, true, 190_000n, "reply", "127.0.0.1"],
      [2, true, 43_000n, "reply", "127.0.0.1"],
      [3, true, 49_000n, "reply", "127.0.0.1"],
    ]);
    expect(result.pingSummary).toMatchObject({ transmitted: 3, received: 3, lossPct: 0, rttMin: 43_000n, rttAvg: 94_000n, rttMax: 190_000n, rttMdev: 67_000n });
  });

  it("defaults to 4 echoes of 2 s, caps at 100, asks for IPv6 with -6 and unwraps [::1]", () => {
    expect(pingArgs(pingReq("::1"), "linux")).toEqual(["-n", "-c", "4", "-W", "2", "-i", "0.2", "-6", "--", "::1"]);
    expect(pingArgs(pingReq("[::1]", 500, 60_000), "linux")).toEqual(["-n", "-c", "100", "-W", "10", "-i", "0.2", "-6", "--", "::1"]);
    expect(pingTimeoutMs(pingReq("example.org"), "linux")).toBe(4 * 2000 + 5000);
    expect(pingArgs(pingReq("example.org", 2, 1500), "windows")).toEqual(["-n", "2", "-w", "1500", "example.org"]);
    expect(pingArgs(pingReq("127.0.0.1"), "windows")).toEqual(["-n", "4", "-w", "2000", "-4", "127.0.0.1"]);
  });

  it("falls back to busybox ping when iputils is not installed", async () => {
    const { host, calls } = fakeHost("linux", (file) => (file === "/usr/bin/busybox" ? captured("ping/busybox-ping-ok-ipv4") : "ENOENT"));
    const result = await runPing(pingReq("127.0.0.1", 3), { host, signal: neverAborts });
    expect(calls.map((c) => c.file)).toEqual(["/usr/bin/ping", "/bin/ping", "/usr/sbin/ping", "/sbin/ping", "/usr/bin/busybox"]);
    expect(calls[4]?.args.slice(0, 2)).toEqual(["ping", "-n"]);
    expect(result.tool).toBe("busybox ping");
    expect(result.pingResults.map((r) => r.seq)).toEqual([0, 1, 2]);
  });

  it("says so when no ping exists, and rethrows other start failures", async () => {
    await expect(runPing(pingReq("127.0.0.1"), { host: fakeHost("linux").host, signal: neverAborts })).rejects.toThrow(
      "ping: no ping program found",
    );
    await expect(runPing(pingReq("127.0.0.1"), { host: fakeHost("linux", () => "EACCES").host, signal: neverAborts })).rejects.toThrow(
      "run /usr/bin/ping",
    );
  });

  it("explains a missing ICMP privilege (iputils and busybox)", async () => {
    for (const name of ["ping/ping-no-capability", "ping/busybox-ping-noroot"]) {
      const { host } = fakeHost("linux", () => captured(name));
      const err = await runPing(pingReq("127.0.0.1"), { host, signal: neverAborts }).catch((e: Error) => e);
      expect((err as Error).message).toMatch(/^ping: the agent lacks the privilege to send ICMP echo requests \(ping: (socket: Operation not permitted|permission denied \(are you root\?\))\)/);
      expect((err as Error).message).toContain("CAP_NET_RAW");
      expect((err as Error).message).toContain("net.ipv4.ping_group_range");
    }
  });

  it("reports an unknown host and other failures clearly", async () => {
    const unknown = fakeHost("linux", () => captured("ping/ping-unknown-host")).host;
    await expect(runPing(pingReq("nonexistent.invalid"), { host: unknown, signal: neverAborts })).rejects.toThrow(
      'ping: unknown host "nonexistent.invalid" (ping: nonexistent.invalid: Name or service not known)',
    );
    const noRoute = fakeHost("linux", () => captured("ping/busybox-ping-noroute")).host;
    await expect(runPing(pingReq("203.0.113.9"), { host: noRoute, signal: neverAborts })).rejects.toThrow(
      "ping 203.0.113.9: ping: sendto: Network is unreachable",
    );
    const winUnknown = fakeHost("windows", () => ({ stdout: readTestdata("ping/windows-en-unknown-host.txt"), exitCode: 1 })).host;
    await expect(runPing(pingReq("nosuch.invalid"), { host: winUnknown, signal: neverAborts })).rejects.toThrow(
      'ping: unknown host "nosuch.invalid" (Ping request could not find host nosuch.invalid.',
    );
  });

  it("keeps what a run killed at its timeout printed", async () => {
    const { host } = fakeHost("linux", () => ({
      stdout: "PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.\n64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.1 ms\n",
      exitCode: null,
      signal: "SIGKILL",
      timedOut: true,
    }));
    const result = await runPing(pingReq("127.0.0.1"), { host, signal: neverAborts });
    expect(result.pingResults).toHaveLength(1);
    expect(result.pingSummary).toMatchObject({ transmitted: 1, received: 1 });
  });

  it("runs System32\\PING.EXE on Windows", async () => {
    const { host, calls } = fakeHost("windows", () => ({ stdout: readTestdata("ping/windows-en-ok.txt") }));
    const result = await runPing(pingReq("127.0.0.1"), { host, signal: neverAborts });
    expect(calls[0]?.file).toMatch(/\\System32\\PING\.EXE$/);
    expect(calls[0]?.opts.timeoutMs).toBe(4 * 2000 + 5000);
    expect(result.tool).toBe("ping");
    expect(result.pingResults).toHaveLength(4);
  });
});

describe("ping LIVE on this machine (127.0.0.1 only)", () => {
  it("pings 127.0.0.1 through the registry, or explains the missing privilege", async (ctx) => {
    const outcome = await runCommand(
      create(CommandSchema, {
        id: "live-ping",
        type: CommandType.NETWORK_DIAG,
        params: { case: "networkDiag", value: { action: NetworkAction.PING, target: "127.0.0.1", count: 2, timeoutMs: 1000 } },
      }),
      { host: createHostAccess(), logger: silentLogger, timeoutMs: 20_000 },
    );
    if (outcome.error.includes("no ping program found")) ctx.skip("no ping (iputils or busybox) on this machine");
    if (outcome.error.includes("lacks the privilege")) {
      expect(outcome.error).toContain("CAP_NET_RAW");
      return;
    }
    expect(outcome.error).toBe("");
    const result = outcome.result.case === "networkDiag" ? outcome.result.value : undefined;
    expect(result?.action).toBe("ping");
    expect(result?.pingResults).toHaveLength(2);
    for (const r of result?.pingResults ?? []) {
      expect(r).toMatchObject({ success: true, response: "reply", peer: "127.0.0.1" });
      expect(r.rtt).toBeGreaterThan(0n);
    }
    expect(result?.pingSummary).toMatchObject({ transmitted: 2, received: 2, lossPct: 0 });
  });
});
