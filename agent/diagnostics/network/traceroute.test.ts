import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { CommandSchema, CommandType, NetworkAction } from "../../../gen/spectra/v1/diagnostics_pb.js";
import { createHostAccess } from "../../host/index.js";
import { runCommand } from "../registry.js";
import { parseNetworkParams } from "./params.js";
import { captured, fakeHost, neverAborts, readTestdata, silentLogger } from "./testing/fake-host.js";
import { RAW_OUTPUT_MAX, runTraceroute, tracepathArgs, tracerouteArgs, tracertArgs, type TracerouteRequest } from "./traceroute.js";
import { parseTracepath, parseTraceroute, parseTracert, type ParsedHop } from "./traceroute-parse.js";

const traceReq = (target: string, maxHops = 0, count = 0, timeoutMs = 0): TracerouteRequest =>
  parseNetworkParams({ action: NetworkAction.TRACEROUTE, target, count, timeoutMs, maxHops } as never) as TracerouteRequest;

/** Compact hops: [ttl, [address|"*", rtt ns?]…]. */
const compact = (hops: readonly ParsedHop[]) => hops.map((h) => [h.ttl, h.probes.map((p) => (p.rttNs === undefined ? (p.address === "" ? "*" : `${p.address} (no rtt)`) : `${p.address} ${p.rttNs}`))]);

describe("traceroute output", () => {
  it("parses traceroute 2.1 (captured)", () => {
    expect(compact(parseTraceroute(readTestdata("traceroute/traceroute-gateway.stdout")))).toEqual([[1, ["192.0.2.1 287000"]]]);
    expect(compact(parseTraceroute(readTestdata("traceroute/traceroute-multi.stdout")))).toEqual([
      [1, ["*", "*"]],
      [2, ["21.4.3.177 244000", "21.4.3.177 196000"]],
      [3, ["21.4.3.177 180000", "21.4.3.177 157000"]],
    ]);
    expect(parseTraceroute(readTestdata("traceroute/traceroute-unknown-host.stdout"))).toEqual([]);
  });

  it("parses busybox traceroute (captured on loopback and in a test namespace)", () => {
    expect(compact(parseTraceroute(readTestdata("traceroute/busybox-traceroute-lo.stdout")))).toEqual([[1, ["127.0.0.1 7000", "127.0.0.1 2000"]]]);
    expect(compact(parseTraceroute(readTestdata("traceroute/busybox-traceroute-lo6.stdout")))).toEqual([[1, ["::1 5000"]]]);
    expect(compact(parseTraceroute(readTestdata("traceroute/busybox-traceroute-timeout.stdout")))).toEqual([
      [1, ["*", "*"]],
      [2, ["*", "*"]],
      [3, ["*", "*"]],
    ]);
  });

  it("parses several routers per hop, annotations, names and IPv6 (hand-written)", () => {
    const hops = parseTraceroute(readTestdata("traceroute/traceroute-handwritten.txt"));
    expect(compact(hops)).toEqual([
      [1, ["192.0.2.1 412000", "192.0.2.1 380000", "192.0.2.1 371000"]],
      [2, ["*", "203.0.113.5 9874000", "*"]],
      [3, ["203.0.113.9 10100000", "203.0.113.13 10600000", "203.0.113.13 10900000"]],
      [4, ["198.51.100.20 11002000", "*", "198.51.100.20 11300000"]],
    ]);
    expect(hops[3]?.probes[0]).toEqual({ address: "198.51.100.20", hostname: "gw.example.net", rttNs: 11_002_000n });
    expect(compact(parseTraceroute(" 1   192.0.2.1  0.287ms  *  0.180ms\n"))).toEqual([[1, ["192.0.2.1 287000", "*", "192.0.2.1 180000"]]]);
    expect(compact(parseTraceroute(readTestdata("traceroute/traceroute-handwritten-ipv6.txt")))).toEqual([
      [1, ["2001:db8::1 512000", "2001:db8::1 430000", "2001:db8::1 401000"]],
      [2, ["2001:db8::20 1207000", "2001:db8::20 1180000", "2001:db8::20 1166000"]],
    ]);
  });
});

describe("tracepath output", () => {
  it("parses the captured run: the LOCALHOST pmtu line and Resume carry no probe", () => {
    expect(compact(parseTracepath(readTestdata("traceroute/tracepath-gateway.stdout")))).toEqual([[1, ["192.0.2.1 3067000", "192.0.2.1 150000"]]]);
  });

  it("parses no reply and asymm lines (hand-written)", () => {
    expect(compact(parseTracepath(readTestdata("traceroute/tracepath-handwritten.txt")))).toEqual([
      [1, ["192.0.2.1 512000", "192.0.2.1 388000"]],
      [2, ["*"]],
      [3, ["203.0.113.9 10117000"]],
      [4, ["198.51.100.20 11430000"]],
    ]);
  });
});

describe("tracert output (hand-written)", () => {
  it("parses English tracert -d by shape: <1 ms, lost probes, the trailing address", () => {
    expect(compact(parseTracert(readTestdata("traceroute/tracert-en.txt")))).toEqual([
      [1, ["192.168.1.1 500000", "192.168.1.1 500000", "192.168.1.1 500000"]],
      [2, ["10.10.0.1 7000000", "10.10.0.1 6000000", "10.10.0.1 8000000"]],
      [3, ["*", "*", "*"]],
      [4, ["192.0.2.10 12000000", "*", "192.0.2.10 11000000"]],
    ]);
  });

  it("parses German tracert the same way", () => {
    expect(compact(parseTracert(readTestdata("traceroute/tracert-de.txt")))).toEqual([
      [1, ["192.168.1.1 500000", "192.168.1.1 500000", "192.168.1.1 500000"]],
      [2, ["*", "*", "*"]],
      [3, ["192.0.2.10 14000000", "192.0.2.10 13000000", "192.0.2.10 15000000"]],
    ]);
  });

  it("reads 'name [address]' and a router reporting the destination unreachable", () => {
    const hops = parseTracert(readTestdata("traceroute/tracert-en-unreachable.txt"));
    expect(hops[0]?.probes[0]).toEqual({ address: "192.168.1.1", hostname: "router.lan", rttNs: 500_000n });
    expect(compact(hops)[1]).toEqual([2, ["192.168.1.1 (no rtt)"]]);
    expect(parseTracert(readTestdata("traceroute/tracert-en-unknown-host.txt"))).toEqual([]);
  });
});

describe("runTraceroute with a fake command runner", () => {
  it("runs traceroute with -n -q -w -m and the target after --, keeping the raw text", async () => {
    const { host, calls } = fakeHost("linux", (file) => (file === "/usr/bin/traceroute" ? captured("traceroute/traceroute-multi") : "ENOENT"));
    const result = await runTraceroute(traceReq("203.0.113.80", 3, 2, 1000), { host, signal: neverAborts });
    expect(calls.map((c) => c.file)).toEqual(["/usr/bin/traceroute"]);
    expect(calls[0]?.args).toEqual(["-n", "-q", "2", "-w", "1", "-m", "3", "--", "203.0.113.80"]);
    expect(calls[0]?.opts.timeoutMs).toBe(60_000);
    expect(result).toMatchObject({ action: "traceroute", target: "203.0.113.80", tool: "traceroute" });
    expect(result.rawOutput).toBe(readTestdata("traceroute/traceroute-multi.stdout").trimEnd());
    expect(result.hops.map((h) => [h.ttl, h.probes.map((p) => [p.address, p.rtt])])).toEqual([
      [1, [["", undefined], ["", undefined]]],
      [2, [["21.4.3.177", 244_000n], ["21.4.3.177", 196_000n]]],
      [3, [["21.4.3.177", 180_000n], ["21.4.3.177", 157_000n]]],
    ]);
  });

  it("builds the arguments with defaults and caps", () => {
    expect(tracerouteArgs(traceReq("example.org"))).toEqual(["-n", "-q", "3", "-w", "2", "-m", "30", "--", "example.org"]);
    expect(tracerouteArgs(traceReq("::1", 99, 9, 60_000))).toEqual(["-n", "-q", "5", "-w", "5", "-m", "30", "-6", "--", "::1"]);
    expect(tracepathArgs(traceReq("127.0.0.1", 5))).toEqual(["-n", "-m", "5", "--", "127.0.0.1"]);
    expect(tracertArgs(traceReq("127.0.0.1"))).toEqual(["-d", "-h", "30", "-w", "2000", "-4", "127.0.0.1"]);
    expect(tracertArgs(traceReq("example.org", 10, 0, 1000))).toEqual(["-d", "-h", "10", "-w", "1000", "example.org"]);
  });

  it("falls back to tracepath, then to busybox traceroute, skipping a busybox without the applet", async () => {
    const tp = fakeHost("linux", (file) => (file === "/usr/bin/tracepath" ? captured("traceroute/tracepath-gateway") : "ENOENT"));
    const viaTracepath = await runTraceroute(traceReq("192.0.2.1", 5), { host: tp.host, signal: neverAborts });
    expect(tp.calls.map((c) => c.file)).toEqual(["/usr/bin/traceroute", "/bin/traceroute", "/usr/sbin/traceroute", "/sbin/traceroute", "/usr/bin/tracepath"]);
    expect(tp.calls[4]?.args).toEqual(["-n", "-m", "5", "--", "192.0.2.1"]);
    expect(viaTracepath.tool).toBe("tracepath");
    expect(viaTracepath.hops).toHaveLength(1);
    expect(viaTracepath.rawOutput).toContain("Resume: pmtu 1400 hops 1 back 1");

    const bb = fakeHost("linux", (file) => {
      if (file === "/usr/bin/busybox") return { stderr: "traceroute: applet not found\n", exitCode: 127 };
      if (file === "/bin/busybox") return captured("traceroute/busybox-traceroute-lo");
      return "ENOENT";
    });
    const viaBusybox = await runTraceroute(traceReq("127.0.0.1", 3, 2, 1000), { host: bb.host, signal: neverAborts });
    expect(bb.calls.at(-1)?.args).toEqual(["traceroute", "-n", "-q", "2", "-w", "1", "-m", "3", "--", "127.0.0.1"]);
    expect(viaBusybox.tool).toBe("busybox traceroute");
    expect(viaBusybox.hops[0]?.probes).toHaveLength(2);

    await expect(runTraceroute(traceReq("127.0.0.1"), { host: fakeHost("linux").host, signal: neverAborts })).rejects.toThrow(
      "traceroute: none of traceroute, tracepath or busybox is installed",
    );
  });

  it("reports unknown hosts and failures without hops clearly", async () => {
    const tr = fakeHost("linux", (file) => (file === "/usr/bin/traceroute" ? captured("traceroute/traceroute-unknown-host") : "ENOENT")).host;
    await expect(runTraceroute(traceReq("nonexistent.invalid"), { host: tr, signal: neverAborts })).rejects.toThrow(
      'traceroute: unknown host "nonexistent.invalid" (nonexistent.invalid: Name or service not known)',
    );
    const tp = fakeHost("linux", (file) => (file === "/usr/bin/tracepath" ? captured("traceroute/tracepath-unknown-host") : "ENOENT")).host;
    await expect(runTraceroute(traceReq("nonexistent.invalid"), { host: tp, signal: neverAborts })).rejects.toThrow(
      'tracepath: unknown host "nonexistent.invalid"',
    );
    const noRoute = fakeHost("linux", (file) =>
      file === "/usr/bin/busybox" ? { stderr: "traceroute: can't connect to remote host (198.51.100.7): Network is unreachable\n", exitCode: 1 } : "ENOENT",
    ).host;
    await expect(runTraceroute(traceReq("198.51.100.7"), { host: noRoute, signal: neverAborts })).rejects.toThrow(
      "busybox traceroute 198.51.100.7: traceroute: can't connect to remote host (198.51.100.7): Network is unreachable",
    );
    const win = fakeHost("windows", () => ({ stdout: readTestdata("traceroute/tracert-en-unknown-host.txt"), exitCode: 1 })).host;
    await expect(runTraceroute(traceReq("nosuch.invalid"), { host: win, signal: neverAborts })).rejects.toThrow(
      'tracert: unknown host "nosuch.invalid" (Unable to resolve target system name nosuch.invalid.)',
    );
  });

  it("returns the hops printed before the 60 s bound, with a note, and caps raw_output", async () => {
    const partial = fakeHost("linux", (file) =>
      file === "/usr/bin/traceroute"
        ? { stdout: "traceroute to 192.0.2.9 (192.0.2.9), 30 hops max, 60 byte packets\n 1  192.0.2.1  0.5 ms\n 2  * * *\n", exitCode: null, signal: "SIGKILL", timedOut: true }
        : "ENOENT",
    ).host;
    const result = await runTraceroute(traceReq("192.0.2.9"), { host: partial, signal: neverAborts });
    expect(result.hops).toHaveLength(2);
    expect(result.rawOutput.split("\n").at(-1)).toBe("[spectra: stopped after 60 s]");

    const long = ` 1  192.0.2.1  0.5 ms\n${"x".repeat(RAW_OUTPUT_MAX)}`;
    const huge = fakeHost("linux", (file) => (file === "/usr/bin/traceroute" ? { stdout: long } : "ENOENT")).host;
    const capped = await runTraceroute(traceReq("192.0.2.9"), { host: huge, signal: neverAborts });
    expect(capped.rawOutput.length).toBeLessThan(RAW_OUTPUT_MAX + 100);
    expect(capped.rawOutput).toMatch(/\[spectra: output cut at 65536 characters\]$/);
  });

  it("runs System32\\TRACERT.EXE on Windows", async () => {
    const { host, calls } = fakeHost("windows", () => ({ stdout: readTestdata("traceroute/tracert-en.txt") }));
    const result = await runTraceroute(traceReq("192.0.2.10"), { host, signal: neverAborts });
    expect(calls[0]?.file).toMatch(/\\System32\\TRACERT\.EXE$/);
    expect(calls[0]?.args).toEqual(["-d", "-h", "30", "-w", "2000", "-4", "192.0.2.10"]);
    expect(result.tool).toBe("tracert");
    expect(result.hops).toHaveLength(4);
    expect(result.rawOutput).toContain("Trace complete.");
  });
});

describe("traceroute LIVE on this machine (127.0.0.1 only)", () => {
  it("traces to 127.0.0.1 with whichever tool is installed", async (ctx) => {
    const outcome = await runCommand(
      create(CommandSchema, {
        id: "live-trace",
        type: CommandType.NETWORK_DIAG,
        params: { case: "networkDiag", value: { action: NetworkAction.TRACEROUTE, target: "127.0.0.1", maxHops: 3, count: 1, timeoutMs: 1000 } },
      }),
      { host: createHostAccess(), logger: silentLogger, timeoutMs: 30_000 },
    );
    if (outcome.error.includes("none of traceroute, tracepath or busybox")) ctx.skip("no traceroute, tracepath or busybox on this machine");
    expect(outcome.error).toBe("");
    const result = outcome.result.case === "networkDiag" ? outcome.result.value : undefined;
    expect(["traceroute", "tracepath", "busybox traceroute"]).toContain(result?.tool);
    expect(result?.hops[0]?.ttl).toBe(1);
    expect(result?.hops[0]?.probes[0]?.address).toBe("127.0.0.1");
    expect(result?.hops[0]?.probes[0]?.rtt).toBeGreaterThanOrEqual(0n);
    expect(result?.rawOutput).toContain("127.0.0.1");
  });
});
