import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { computeRates } from "../rate.js";
import { isExcludedInterface, parseLinkSpeed, parseMtu, parseNetDev } from "./parse.js";
import { parseNetAdapters, parseNetAdapterStatistics } from "./windows-parse.js";

const testdata = path.join(import.meta.dirname, "testdata");
const read = (p: string): string => fs.readFileSync(path.join(testdata, p), "utf8");

describe("parseNetDev", () => {
  it("reads the captured /proc/net/dev in file order", () => {
    const d = parseNetDev(read("proc/net/dev"));
    expect([...d.keys()]).toEqual(["lo", "ifb0", "ifb1", "eth0", "docker0", "veth481b5eb", "veth2c08747", "veth9a19502"]);
    // rx bytes packets errs drop, tx bytes packets errs drop
    expect(d.get("eth0")).toEqual([356748868, 12163, 0, 0, 962904, 8790, 0, 0]);
    expect(d.get("docker0")).toEqual([0, 0, 0, 0, 526, 5, 0, 2]);
  });

  it("splits a long name that runs into the first number at the first colon", () => {
    const text = "h1\nh2\nverylongifname0:1234 5 0 0 0 0 0 0 99 4 0 0 0 0 0 0\nbad line\n";
    expect(parseNetDev(text).get("verylongifname0")).toEqual([1234, 5, 0, 0, 99, 4, 0, 0]);
  });

  it("gives zero rates over the captured t0 → t1 pair (no traffic in those 1276 ms)", () => {
    const r = computeRates(parseNetDev(read("deltas/proc-net-dev.t0")), parseNetDev(read("deltas/proc-net-dev.t1")), 1276);
    expect(r.size).toBe(8);
    for (const v of r.values()) expect(v.perSecond).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it("gives rates between the earlier capture and t1 (veth2c08747 sent 70 bytes in one packet)", () => {
    const r = computeRates(parseNetDev(read("proc/net/dev")), parseNetDev(read("deltas/proc-net-dev.t1")), 1000);
    expect(r.get("veth2c08747")!.deltas).toEqual([0, 0, 0, 0, 70, 1, 0, 0]);
    expect(r.get("veth2c08747")!.perSecond[4]).toBe(70);
  });
});

describe("sysfs attributes", () => {
  it("turns unknown speeds into 0", () => {
    expect(parseLinkSpeed(read("sys/class/net/eth0/speed"))).toBe(0); // "-1" on virtio
    expect(parseLinkSpeed(read("sys/class/net/lo/speed"))).toBe(0); // EINVAL at capture: empty
    expect(parseLinkSpeed(undefined)).toBe(0);
    expect(parseLinkSpeed("1000\n")).toBe(1000);
    expect(parseMtu(read("sys/class/net/eth0/mtu"))).toBe(1400);
  });

  it("matches exclusion patterns", () => {
    expect(isExcludedInterface("lo", ["lo"])).toBe(true);
    expect(isExcludedInterface("lo0", ["lo"])).toBe(false);
    expect(isExcludedInterface("veth123", ["veth*"])).toBe(true);
    expect(isExcludedInterface("eth0", ["veth*", "lo"])).toBe(false);
  });
});

describe("Windows adapters", () => {
  it("parses Get-NetAdapterStatistics into the same vectors (packets = uni + multi + broadcast)", () => {
    const s = parseNetAdapterStatistics(read("windows/net-adapter-statistics.t0.json"));
    expect(s.get("Ethernet")).toEqual([1234567890, 1007000, 0, 10, 987654321, 800400, 0, 0]);
  });

  it("parses Get-NetAdapter, also as a single object after a BOM", () => {
    expect(parseNetAdapters(read("windows/net-adapter.json")).get("Wi-Fi")).toEqual({
      mac: "a4:c3:f0:11:22:33",
      mtu: 1500,
      speedMbps: 866.7,
    });
    expect(parseNetAdapters(read("windows/net-adapter-single-bom.json")).get("Ethernet")).toEqual({
      mac: "00:15:5d:01:02:03",
      mtu: 1500,
      speedMbps: 1000,
    });
  });
});
