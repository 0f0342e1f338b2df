import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CommandSchema, CommandType, NetworkAction, type NetstatEntry } from "../../../gen/spectra/v1/diagnostics_pb.js";
import { createHostAccess } from "../../host/index.js";
import { runCommand } from "../registry.js";
import { runNetstat } from "./netstat.js";
import { decodeProcAddress, formatIPv6, mapSocketOwners, netDirCandidates, parseProcNetTable, readLinuxNetstat, socketState } from "./netstat-linux.js";
import { NETSTAT_SCRIPT, parseNetConnectionsJson, parseNetstatAno } from "./netstat-windows.js";
import { fakeHost, neverAborts, readTestdata, silentLogger, testdata } from "./testing/fake-host.js";

/** Drops the protobuf type tag so rows compare as plain objects. */
const plain = (e: NetstatEntry | undefined): Record<string, unknown> => {
  const { $typeName: _t, ...rest } = e ?? ({} as NetstatEntry);
  return rest;
};

describe("procfs address decoding", () => {
  it("decodes IPv4 words in host order and IPv6 as four such words", () => {
    expect(decodeProcAddress("0100007F:B1F3")).toEqual({ addr: "127.0.0.1", port: 45555 });
    expect(decodeProcAddress("00000000:07E8")).toEqual({ addr: "0.0.0.0", port: 2024 });
    expect(decodeProcAddress("00000000000000000000000001000000:B1F4")).toEqual({ addr: "::1", port: 45556 });
    expect(decodeProcAddress("00000000000000000000000000000000:B1F6")).toEqual({ addr: "::", port: 45558 });
    expect(decodeProcAddress("0000000000000000FFFF00000100007F:0016")).toEqual({ addr: "::ffff:127.0.0.1", port: 22 });
    expect(decodeProcAddress("B80D0120000000000000000001000000:01BB")).toEqual({ addr: "2001:db8::1", port: 443 });
    expect(decodeProcAddress("0100007F")).toBeUndefined();
    expect(decodeProcAddress("zz00007F:0016")).toBeUndefined();
  });

  it("formats IPv6 per RFC 5952", () => {
    const bytes = (...groups: number[]) => new Uint8Array(groups.flatMap((g) => [g >> 8, g & 0xff]));
    expect(formatIPv6(bytes(0x2001, 0xdb8, 0, 0, 1, 0, 0, 1))).toBe("2001:db8::1:0:0:1");
    expect(formatIPv6(bytes(0x2001, 0xdb8, 0, 1, 1, 1, 1, 1))).toBe("2001:db8:0:1:1:1:1:1");
    expect(formatIPv6(bytes(0xfe80, 0, 0, 0, 0xabc, 0, 0, 0))).toBe("fe80::abc:0:0:0");
    expect(formatIPv6(bytes(0, 0, 0, 0, 0, 0, 0, 0))).toBe("::");
  });

  it("names kernel states, UDP's 7 as UNCONN", () => {
    expect(socketState("tcp", 0x0a)).toBe("LISTEN");
    expect(socketState("tcp6", 0x06)).toBe("TIME_WAIT");
    expect(socketState("udp", 0x07)).toBe("UNCONN");
    expect(socketState("udp6", 0x01)).toBe("ESTABLISHED");
    expect(socketState("tcp", 0x0d)).toBe("UNKNOWN_0D");
  });
});

describe("/proc/net tables (captured)", () => {
  it("parses every row of the four tables", () => {
    const tcp = parseProcNetTable("tcp", readTestdata("proc/net/tcp"));
    expect(tcp).toHaveLength(29);
    expect(plain(tcp[0]?.entry)).toEqual({ proto: "tcp", localAddr: "0.0.0.0", localPort: 2024, remoteAddr: "0.0.0.0", remotePort: 0, state: "LISTEN", user: 0 });
    expect(tcp[6]).toMatchObject({ inode: "0", entry: { localPort: 45559, remotePort: 45686, state: "TIME_WAIT" } });
    expect(parseProcNetTable("tcp6", readTestdata("proc/net/tcp6")).map((r) => [r.entry.localAddr, r.entry.localPort, r.entry.remoteAddr, r.entry.remotePort, r.entry.state])).toEqual([
      ["::1", 45556, "::", 0, "LISTEN"],
      ["::1", 40018, "::1", 45556, "ESTABLISHED"],
      ["::1", 45556, "::1", 40018, "ESTABLISHED"],
    ]);
    expect(parseProcNetTable("udp", readTestdata("proc/net/udp"))[0]).toMatchObject({ inode: "48993", entry: { proto: "udp", localAddr: "0.0.0.0", localPort: 45557, state: "UNCONN" } });
    expect(parseProcNetTable("udp6", readTestdata("proc/net/udp6"))[0]).toMatchObject({ inode: "48994", entry: { proto: "udp6", localAddr: "::", localPort: 45558 } });
    expect(parseProcNetTable("tcp", readTestdata("proc/net/tcp"), 5)).toHaveLength(5);
    expect(parseProcNetTable("tcp", "garbage\n  1: nothing here at all 1 2 3 4 5 6\n")).toEqual([]);
  });

  describe("with the owning process's fd links (a proc tree built from the captures)", () => {
    let root: string;
    beforeAll(() => {
      root = mkdtempSync(join(tmpdir(), "spectra-netstat-"));
      cpSync(testdata("proc/net"), join(root, "net"), { recursive: true });
      mkdirSync(join(root, "21184", "fd"), { recursive: true });
      writeFileSync(join(root, "21184", "comm"), "node\n");
      for (const line of readTestdata("proc-pid-fd-readlink.txt").split("\n")) {
        const m = /^(\d+) -> (.+)$/.exec(line);
        if (m) symlinkSync(m[2] ?? "", join(root, "21184", "fd", m[1] ?? ""));
      }
      symlinkSync("/dev/null", join(root, "21184", "fd", "0"));
      mkdirSync(join(root, "99999")); // a process that exited: no fd directory
      mkdirSync(join(root, "self"));
    });
    afterAll(() => rmSync(root, { recursive: true, force: true }));

    it("maps the test sockets to pid 21184 (node) and leaves others without an owner", async () => {
      const listed = await readLinuxNetstat(root, neverAborts);
      expect(listed.entries).toHaveLength(34);
      expect(listed.total).toBe(34);
      const find = (proto: string, port: number, remotePort = 0) =>
        listed.entries.find((e) => e.proto === proto && e.localPort === port && e.remotePort === remotePort);
      expect(plain(find("tcp", 45555))).toEqual({
        proto: "tcp",
        localAddr: "127.0.0.1",
        localPort: 45555,
        remoteAddr: "0.0.0.0",
        remotePort: 0,
        state: "LISTEN",
        user: 0,
        pid: 21184,
        process: "node",
      });
      expect(find("tcp", 45555, 60342)).toMatchObject({ state: "ESTABLISHED", pid: 21184 });
      expect(find("tcp6", 45556)).toMatchObject({ localAddr: "::1", state: "LISTEN", pid: 21184, process: "node" });
      expect(find("tcp6", 40018, 45556)).toMatchObject({ remoteAddr: "::1", pid: 21184 });
      expect(find("udp", 45557)).toMatchObject({ state: "UNCONN", pid: 21184 });
      expect(find("udp6", 45558)).toMatchObject({ localAddr: "::", pid: 21184 });
      expect(find("tcp", 2024)?.pid).toBeUndefined(); // another process's socket
      expect(find("tcp", 45559, 45686)?.pid).toBeUndefined(); // TIME_WAIT: inode 0
      expect(listed.ownerScan).toMatchObject({ processesScanned: 2, incomplete: false });
    });

    it("agrees with ss -tunap captured at the same moment on every socket of the test process", async () => {
      const listed = await readLinuxNetstat(root, neverAborts);
      const ssRows = readTestdata("ss-tunap.txt")
        .split("\n")
        .flatMap((l) => {
          const m = /^(tcp|udp)\s+\S+\s+\d+\s+\d+\s+(\S+):(\d+)\s+(\S+):(\d+|\*)\s+users:\(\("node",pid=21184,/.exec(l);
          return m ? [{ local: Number(m[3]), remote: m[5] === "*" ? 0 : Number(m[5]) }] : [];
        });
      expect(ssRows).toHaveLength(9);
      for (const row of ssRows) {
        expect(listed.entries.some((e) => e.localPort === row.local && e.remotePort === row.remote && e.pid === 21184)).toBe(true);
      }
    });

    it("stops the owner scan at its bounds and says so", async () => {
      const scan = await mapSocketOwners(root, new Set(["48991"]), neverAborts, { maxProcesses: 0, maxFds: 10, budgetMs: 1000 });
      expect(scan).toMatchObject({ incomplete: true, processesScanned: 0 });
      expect(scan.owners.size).toBe(0);
      const { host } = fakeHost("linux", undefined, root);
      const result = await runNetstat({ host, signal: neverAborts, logger: silentLogger }, { scanLimits: { maxProcesses: 1, maxFds: 3, budgetMs: 1000 } });
      expect(result.netstat).toHaveLength(34);
      expect(result.rawOutput).toMatch(/owner scan stopped at a bound/);
    });

    it("answers target 'Local System' and tool 'proc'", async () => {
      const { host, calls } = fakeHost("linux", undefined, root);
      const result = await runNetstat({ host, signal: neverAborts, logger: silentLogger });
      expect(result).toMatchObject({ action: "netstat", target: "Local System", tool: "proc", rawOutput: "" });
      expect(calls).toEqual([]); // nothing spawned on Linux
    });
  });

  it("prefers the host's namespace (pid 1) under a non-default root", () => {
    expect(netDirCandidates("/proc")).toEqual(["/proc/net"]);
    expect(netDirCandidates("/host/proc")).toEqual(["/host/proc/1/net", "/host/proc/net"]);
  });

  it("fails with the files it tried when no table is readable", async () => {
    await expect(readLinuxNetstat("/nonexistent-proc")).rejects.toThrow("read socket tables: /nonexistent-proc/1/net/tcp: ENOENT");
  });
});

describe("Windows netstat (hand-written samples)", () => {
  it("parses the Get-NetTCPConnection / Get-NetUDPEndpoint answer", () => {
    const rows = parseNetConnectionsJson(readTestdata("windows/net-connections.json"));
    expect(rows.map((r) => [r.proto, r.localAddr, r.localPort, r.remoteAddr, r.remotePort, r.state, r.pid, r.process])).toEqual([
      ["tcp", "0.0.0.0", 22, "0.0.0.0", 0, "LISTEN", 2872, "sshd"],
      ["tcp6", "::", 135, "::", 0, "LISTEN", 1024, "svchost"],
      ["tcp", "192.168.1.50", 49731, "192.0.2.80", 443, "ESTABLISHED", 6120, "chrome"],
      ["tcp", "192.168.1.50", 49720, "192.0.2.80", 443, "TIME_WAIT", 0, "Idle"],
      ["tcp", "0.0.0.0", 49664, "0.0.0.0", 0, "BOUND", 4, "System"],
      ["tcp6", "fe80::1c2d:3e4f:5a6b:7c8d%12", 49800, "fe80::9:8:7:6%12", 445, "ESTABLISHED", 4, "System"],
      ["udp", "0.0.0.0", 5353, "0.0.0.0", 0, "UNCONN", 6120, "chrome"],
      ["udp6", "::", 5355, "::", 0, "UNCONN", 1024, "svchost"],
    ]);
    expect(rows[0]?.user).toBeUndefined();
  });

  it("accepts single objects instead of arrays and reports a PowerShell error", () => {
    const rows = parseNetConnectionsJson(readTestdata("windows/net-connections-single.json"));
    expect(rows.map((r) => [r.proto, r.localAddr, r.localPort, r.state, r.pid, r.process])).toEqual([["tcp", "127.0.0.1", 8080, "LISTEN", 3100, "spectra-server"]]);
    expect(() => parseNetConnectionsJson('{"error":"Access is denied"}')).toThrow("Get-NetTCPConnection: Access is denied");
  });

  it("parses netstat -ano in English", () => {
    const rows = parseNetstatAno(readTestdata("windows/netstat-ano-en.txt"));
    expect(rows.map((r) => [r.proto, r.localAddr, r.localPort, r.remoteAddr, r.remotePort, r.state, r.pid])).toEqual([
      ["tcp", "0.0.0.0", 135, "0.0.0.0", 0, "LISTEN", 1024],
      ["tcp", "0.0.0.0", 445, "0.0.0.0", 0, "LISTEN", 4],
      ["tcp", "192.168.1.50", 49731, "192.0.2.80", 443, "ESTABLISHED", 6120],
      ["tcp", "192.168.1.50", 49720, "192.0.2.80", 443, "TIME_WAIT", 0],
      ["tcp6", "::", 135, "::", 0, "LISTEN", 1024],
      ["tcp6", "fe80::1c2d:3e4f:5a6b:7c8d%12", 49800, "fe80::9:8:7:6%12", 445, "ESTABLISHED", 4],
      ["udp", "0.0.0.0", 5353, "0.0.0.0", 0, "UNCONN", 6120],
      ["udp6", "::", 5355, "::", 0, "UNCONN", 1024],
    ]);
  });

  it("parses German netstat -ano from its OEM code page, keeping unknown state words", () => {
    const rows = parseNetstatAno(readTestdata("windows/netstat-ano-de.txt"));
    expect(rows.map((r) => [r.localPort, r.state, r.pid])).toEqual([
      [135, "LISTEN", 1024],
      [49731, "ESTABLISHED", 6120],
      [49720, "TIME_WAIT", 0],
      [49740, "CLOSE_WAIT", 6120],
      [49741, "UNBEKANNT", 6120],
      [5353, "UNCONN", 6120],
    ]);
  });

  it("asks PowerShell with the constant script, and falls back to System32\\NETSTAT.EXE -ano", async () => {
    const scripts: string[] = [];
    const ok = {
      query: (script: string) => {
        scripts.push(script);
        return Promise.resolve(readTestdata("windows/net-connections.json"));
      },
    };
    const { host, calls } = fakeHost("windows", () => ({ stdout: readTestdata("windows/netstat-ano-en.txt") }));
    const viaPs = await runNetstat({ host, signal: neverAborts, logger: silentLogger }, { powershell: ok });
    expect(scripts).toEqual([NETSTAT_SCRIPT]);
    expect(viaPs).toMatchObject({ action: "netstat", target: "Local System", tool: "powershell" });
    expect(viaPs.netstat).toHaveLength(8);
    expect(calls).toEqual([]);

    const failing = { query: () => Promise.resolve('{"error":"The term \'Get-NetTCPConnection\' is not recognized"}') };
    const viaExe = await runNetstat({ host, signal: neverAborts, logger: silentLogger }, { powershell: failing });
    expect(calls.map((c) => [c.file.replace(/^.*\\/, ""), c.args])).toEqual([["NETSTAT.EXE", ["-ano"]]]);
    expect(viaExe).toMatchObject({ tool: "netstat" });
    expect(viaExe.netstat).toHaveLength(8);

    const nothing = fakeHost("windows", () => "ENOENT").host;
    await expect(runNetstat({ host: nothing, signal: neverAborts, logger: silentLogger }, { powershell: failing })).rejects.toThrow(
      /netstat: PowerShell failed \(Get-NetTCPConnection: The term .* and netstat -ano failed \(netstat.exe not found\)/,
    );
  });
});

describe("netstat LIVE on this machine", () => {
  let server: Server;
  let udp: UdpSocket;
  let tcpPort = 0;
  let udpPort = 0;
  beforeAll(async () => {
    server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    tcpPort = (server.address() as AddressInfo).port;
    udp = createSocket("udp4");
    await new Promise<void>((resolve) => udp.bind(0, "127.0.0.1", resolve));
    udpPort = udp.address().port;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await new Promise<void>((resolve) => udp.close(() => resolve()));
  });

  it("sees the sockets this test opened, owned by this process", async (ctx) => {
    const host = createHostAccess();
    if (host.platform !== "linux") ctx.skip("the live netstat test reads /proc");
    const outcome = await runCommand(
      create(CommandSchema, { id: "live-netstat", type: CommandType.NETWORK_DIAG, params: { case: "networkDiag", value: { action: NetworkAction.NETSTAT } } }),
      { host, logger: silentLogger, timeoutMs: 20_000 },
    );
    expect(outcome.error).toBe("");
    const result = outcome.result.case === "networkDiag" ? outcome.result.value : undefined;
    expect(result).toMatchObject({ action: "netstat", target: "Local System", tool: "proc" });
    const tcp = result?.netstat.find((e) => e.proto === "tcp" && e.localPort === tcpPort && e.state === "LISTEN");
    expect(tcp).toMatchObject({ localAddr: "127.0.0.1", pid: process.pid, user: process.getuid?.() });
    expect(tcp?.process).toBeTruthy();
    const u = result?.netstat.find((e) => e.proto === "udp" && e.localPort === udpPort);
    expect(u).toMatchObject({ localAddr: "127.0.0.1", state: "UNCONN", pid: process.pid });
  });
});
