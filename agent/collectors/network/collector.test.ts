import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../../common/logger.js";
import type { NetworkMetrics } from "../../../gen/spectra/v1/metrics_pb.js";
import { createHostAccess, type HostPaths } from "../../host/index.js";
import type { PowerShellQuery } from "../../host/powershell.js";
import type { CollectorContext, Payload } from "../types.js";
import network from "./index.js";
import { createLinuxNetworkCollector } from "./linux.js";
import { ADAPTER_INFO_SCRIPT, ADAPTER_STATISTICS_SCRIPT, createWindowsNetworkCollector } from "./windows.js";

const testdata = path.join(import.meta.dirname, "testdata");
const signal = new AbortController().signal;
const ctxFor = (
  paths: Partial<HostPaths>,
  options: Record<string, unknown> = {},
  platform: "linux" | "windows" = "linux",
): CollectorContext => ({ host: createHostAccess(paths, { platform }), logger: silentLogger(), options });
const netOf = (p: Payload[] | symbol): Map<string, NetworkMetrics> => {
  expect(Array.isArray(p)).toBe(true);
  return new Map(
    (p as Payload[]).map((x) => {
      expect(x.case).toBe("network");
      const v = x.value as NetworkMetrics;
      return [v.interface, v];
    }),
  );
};

const tmp: string[] = [];
afterEach(() => {
  for (const d of tmp.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
function procDir(): string {
  const proc = fs.mkdtempSync(path.join(os.tmpdir(), "spectra-net-"));
  tmp.push(proc);
  fs.mkdirSync(path.join(proc, "net"));
  return proc;
}
const devLine = (name: string, rx: number, rxp: number, tx: number, txp: number): string =>
  `${name.padStart(6)}: ${rx} ${rxp} 0 0 0 0 0 0 ${tx} ${txp} 0 0 0 0 0 0`;
const HEADER = "Inter-|   Receive\n face |bytes    packets";

describe("linux network collector", () => {
  it("reports the captured t0 → t1 interval with sysfs details, skipping lo", async () => {
    const proc = procDir();
    fs.copyFileSync(path.join(testdata, "deltas/proc-net-dev.t0"), path.join(proc, "net/dev"));
    let now = 0;
    const c = createLinuxNetworkCollector(ctxFor({ procRoot: proc, sysRoot: path.join(testdata, "sys") }), { now: () => now });
    expect(await c.collect(signal)).toEqual([]);
    fs.writeFileSync(path.join(proc, "net/dev"), fs.readFileSync(path.join(testdata, "deltas/proc-net-dev.t1")));
    now = 1276;
    const net = netOf(await c.collect(signal));
    expect([...net.keys()]).toEqual(["ifb0", "ifb1", "eth0", "docker0", "veth481b5eb", "veth2c08747", "veth9a19502"]);
    expect(net.get("eth0")).toMatchObject({ macAddress: "02:fc:00:00:00:01", mtu: 1400, speed: 0n, rxBytes: 0, txBytes: 0 });
    // No traffic in the captured interval; veths have no sysfs entry in the fixture tree.
    expect(net.get("veth2c08747")).toMatchObject({ txBytes: 0, txPackets: 0, macAddress: "", mtu: 0, speed: 0n });
    await c.close?.();
  });

  it("drops a reset interface for one interval, baselines a new one, forgets a vanished one", async () => {
    const proc = procDir();
    const write = (lines: string[]): void => fs.writeFileSync(path.join(proc, "net/dev"), [HEADER, ...lines].join("\n") + "\n");
    let now = 0;
    const c = createLinuxNetworkCollector(ctxFor({ procRoot: proc, sysRoot: "/nonexistent" }, { exclude: ["lo", "veth*"] }), {
      now: () => now,
    });
    write([devLine("lo", 1, 1, 1, 1), devLine("eth0", 1000, 10, 500, 5), devLine("wg0", 100, 1, 100, 1), devLine("veth1", 1, 1, 1, 1)]);
    await c.collect(signal);
    write([devLine("eth0", 3000, 30, 1500, 15), devLine("wg0", 5, 1, 5, 1), devLine("tun0", 0, 0, 0, 0)]);
    now = 2000;
    let net = netOf(await c.collect(signal));
    expect([...net.keys()]).toEqual(["eth0"]); // wg0 was re-created (counters fell), tun0 is new
    expect(net.get("eth0")).toMatchObject({ rxBytes: 1000, rxPackets: 10, txBytes: 500, txPackets: 5 });
    write([devLine("wg0", 15, 2, 5, 1), devLine("tun0", 10, 1, 0, 0)]);
    now = 3000;
    net = netOf(await c.collect(signal));
    expect([...net.keys()]).toEqual(["wg0", "tun0"]);
    expect(net.get("wg0")!.rxBytes).toBe(10);
  });

  it("reports this machine's interfaces except lo", async () => {
    const c = await network.create(ctxFor({}));
    expect(await c.collect(signal)).toEqual([]);
    await new Promise((r) => setTimeout(r, 200));
    const net = netOf(await c.collect(signal));
    const expected = fs.readdirSync("/sys/class/net").filter((n) => n !== "lo").sort();
    expect([...net.keys()].sort()).toEqual(expected);
    for (const [name, v] of net) {
      expect(v.rxBytes).toBeGreaterThanOrEqual(0);
      expect(v.mtu).toBe(Number(fs.readFileSync(`/sys/class/net/${name}/mtu`, "utf8")));
      expect(v.macAddress).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$|^$/);
    }
    await c.close?.();
  });
});

describe("windows network collector", () => {
  it("reports adapter rates with MAC/MTU/speed; a reset adapter waits, a new one is a baseline", async () => {
    const file = (f: string): string => fs.readFileSync(path.join(testdata, "windows", f), "utf8");
    const stats = [file("net-adapter-statistics.t0.json"), file("net-adapter-statistics.t1.json")];
    const asked: string[] = [];
    const ps: PowerShellQuery = {
      query: async (script) => {
        asked.push(script === ADAPTER_INFO_SCRIPT ? "info" : script === ADAPTER_STATISTICS_SCRIPT ? "stats" : "?");
        return script === ADAPTER_INFO_SCRIPT ? file("net-adapter.json") : stats.shift()!;
      },
    };
    let now = 0;
    const c = createWindowsNetworkCollector(ctxFor({}, {}, "windows"), { ps, now: () => (now += 5000) });
    expect(await c.collect(signal)).toEqual([]);
    const net = netOf(await c.collect(signal));
    expect([...net.keys()]).toEqual(["Ethernet"]);
    expect(net.get("Ethernet")).toMatchObject({
      macAddress: "00:15:5d:01:02:03",
      mtu: 1500,
      speed: 1000n,
      rxBytes: 1_000_000,
      rxPackets: 812,
      rxDrops: 1,
      txBytes: 200_000,
      txPackets: 400,
    });
    // info at start, and again when "vEthernet (WSL)" appeared
    expect(asked).toEqual(["stats", "info", "stats", "info"]);
  });
});
