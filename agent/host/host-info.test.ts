import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { agentVersion, collectHostInfo, goArch, nonLoopbackIpv4, parseBootTime, parseOsRelease, type OsFacts } from "./host-info.js";

const fakeOs = (over: Partial<OsFacts> = {}): OsFacts => ({
  arch: () => "x64",
  release: () => "6.1.0-18-amd64",
  version: () => "#1 SMP Debian",
  cpus: () => [{ model: "Intel(R) Xeon(R) CPU @ 2.20GHz " }, { model: "Intel(R) Xeon(R) CPU @ 2.20GHz" }],
  totalmem: () => 1_000,
  uptime: () => 100,
  networkInterfaces: () => ({
    lo: [{ address: "127.0.0.1", family: "IPv4", internal: true, netmask: "255.0.0.0", mac: "00:00:00:00:00:00", cidr: null }],
    eth0: [
      { address: "192.168.1.10", family: "IPv4", internal: false, netmask: "255.255.255.0", mac: "52:54:00:12:34:56", cidr: null },
      { address: "fe80::1", family: "IPv6", internal: false, netmask: "ffff::", mac: "52:54:00:12:34:56", cidr: null, scopeid: 2 },
    ],
    docker0: [{ address: "172.17.0.1", family: "IPv4", internal: false, netmask: "255.255.0.0", mac: "02:42:00:00:00:01", cidr: null }],
  }),
  ...over,
});

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "spectra-hostinfo-"));
  mkdirSync(join(root, "etc"));
  mkdirSync(join(root, "proc"));
  writeFileSync(join(root, "etc/os-release"), 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n');
  writeFileSync(join(root, "proc/meminfo"), "MemTotal:       16384000 kB\nMemFree:         1000 kB\n");
  writeFileSync(join(root, "proc/stat"), "cpu  1 2 3 4\nbtime 1769990000\nprocesses 5\n");
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe("collectHostInfo", () => {
  it("builds the legacy register body on Linux from the configured roots", async () => {
    const info = await collectHostInfo({
      hostname: "web-01",
      platform: "linux",
      paths: { procRoot: join(root, "proc"), sysRoot: join(root, "sys"), rootfs: root },
      agentVersion: "0.1.0",
      os: fakeOs(),
    });
    expect(info).toMatchObject({
      hostname: "web-01",
      os: "linux",
      platform: "debian",
      platformVer: "12",
      kernel: "6.1.0-18-amd64",
      arch: "amd64",
      cpuModel: "Intel(R) Xeon(R) CPU @ 2.20GHz",
      cpuCores: 2,
      ramTotal: 16_384_000n * 1024n,
      agentVersion: "0.1.0",
      bootTime: 1_769_990_000n,
      ips: ["192.168.1.10", "172.17.0.1"],
    });
  });

  it("falls back to node:os when the files are missing", async () => {
    const info = await collectHostInfo({
      hostname: "h",
      platform: "linux",
      paths: { procRoot: "/nonexistent/proc", sysRoot: "/nonexistent/sys", rootfs: "/nonexistent" },
      os: fakeOs(),
      now: () => 1_000_000,
    });
    expect(info.platform).toBe("");
    expect(info.ramTotal).toBe(1_000n);
    expect(info.bootTime).toBe(900n);
    expect(info.agentVersion).toBe(agentVersion());
  });

  it("uses os.version() and os.release() on Windows", async () => {
    const info = await collectHostInfo({
      hostname: "win-01",
      platform: "windows",
      paths: { procRoot: "/proc", sysRoot: "/sys", rootfs: "" },
      agentVersion: "0.1.0",
      os: fakeOs({ version: () => "Windows 10 Pro", release: () => "10.0.19045", arch: () => "arm64" }),
    });
    expect(info).toMatchObject({ os: "windows", platform: "Windows 10 Pro", platformVer: "10.0.19045", kernel: "10.0.19045", arch: "arm64" });
  });
});

describe("helpers", () => {
  it("maps Node architectures to Go names", () => {
    expect(["x64", "arm64", "arm", "ia32"].map(goArch)).toEqual(["amd64", "arm64", "arm", "386"]);
  });
  it("parses os-release", () => {
    expect(parseOsRelease("ID=ubuntu\nVERSION_ID='22.04'\n")).toMatchObject({ id: "ubuntu", versionId: "22.04" });
  });
  it("parses btime", () => {
    expect(parseBootTime("btime 12345\n")).toBe(12345);
    expect(parseBootTime("")).toBeUndefined();
  });
  it("keeps non-loopback IPv4 only", () => {
    expect(nonLoopbackIpv4(fakeOs().networkInterfaces())).toEqual(["192.168.1.10", "172.17.0.1"]);
  });
  it("reads the version from package.json", () => {
    expect(agentVersion()).toMatch(/^\d+\.\d+\.\d+/);
    expect(agentVersion()).not.toBe("0.0.0-unknown");
  });
});
