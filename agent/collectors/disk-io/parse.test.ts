import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { computeRates } from "../rate.js";
import { diskIoFromRates, isVirtualDiskName, isWholeDisk, parseDiskstats } from "./parse.js";
import { parsePhysicalDiskRaw, windowsDiskIoFromRates } from "./windows-parse.js";

const testdata = path.join(import.meta.dirname, "testdata");
const read = (p: string): string => fs.readFileSync(path.join(testdata, p), "utf8");

describe("parseDiskstats", () => {
  it("reads the captured 17-counter diskstats", () => {
    const s = parseDiskstats(read("proc/diskstats"));
    expect([...s.counters.keys()]).toEqual(["loop0", "loop1", "loop2", "loop3", "loop4", "loop5", "loop6", "loop7", "vda", "zram0"]);
    // reads, sectors read, ms reading, writes, sectors written, ms writing, ms doing I/O, weighted ms
    expect(s.counters.get("vda")).toEqual([44550, 3236946, 172352, 13403, 5076152, 156679, 36660, 334087]);
    expect(s.inFlight.get("vda")).toBe(0);
  });

  it("accepts the 11-counter layout of old kernels and skips the 4-field partition lines of 2.6.25-", () => {
    const s = parseDiskstats("   8       0 sda 1 2 3 4 5 6 7 8 9 10 11\n   8       1 sda1 10 20 30 40\n");
    expect(s.counters.get("sda")).toEqual([1, 3, 4, 5, 7, 8, 10, 11]);
    expect(s.inFlight.get("sda")).toBe(9);
    expect(s.counters.has("sda1")).toBe(false);
  });
});

describe("disk I/O over the captured t0 → t1 pair (1276 ms)", () => {
  const rates = computeRates(
    parseDiskstats(read("deltas/proc-diskstats.t0")).counters,
    parseDiskstats(read("deltas/proc-diskstats.t1")).counters,
    1276,
  );

  it("matches the expected values of the fixtures README for vda", () => {
    const r = diskIoFromRates(rates.get("vda")!);
    expect(r.readLatencyMs).toBeCloseTo(0.761, 3); // 209 reads in 159 ms
    expect(r.writeLatencyMs).toBeCloseTo(0.388, 3); // 255 writes in 99 ms
    expect(r.awaitMs).toBeCloseTo(0.556, 3);
    expect(r.readBytesPerSec / 1e6).toBeCloseTo(164.4, 1);
    expect(r.writeBytesPerSec / 1e6).toBeCloseTo(165.3, 1);
    expect(r.utilPct).toBeCloseTo(19.4, 1);
    expect(r.readOpsPerSec).toBeCloseTo(209 / 1.276, 6);
    expect(r.writeOpsPerSec).toBeCloseTo(255 / 1.276, 6);
    expect(r.readTimeMs).toBe(159);
    expect(r.writeTimeMs).toBe(99);
  });

  it("gives idle devices zero latency instead of NaN", () => {
    const r = diskIoFromRates(rates.get("loop0")!);
    expect(r).toMatchObject({ readLatencyMs: 0, writeLatencyMs: 0, awaitMs: 0, readBytesPerSec: 0, utilPct: 0 });
  });
});

describe("device selection", () => {
  it("takes whole disks from /sys/block, or a partition pattern without sysfs", () => {
    const sysBlock = new Set(["sda", "nvme0n1", "dm-0"]);
    expect(isWholeDisk("sda", sysBlock)).toBe(true);
    expect(isWholeDisk("sda1", sysBlock)).toBe(false);
    for (const n of ["sda", "vda", "nvme0n1", "mmcblk0", "dm-0", "md0", "xvda"]) expect(isWholeDisk(n, undefined)).toBe(true);
    for (const n of ["sda1", "vda15", "nvme0n1p2", "mmcblk0p1", "xvda1", "md0p1"]) expect(isWholeDisk(n, undefined)).toBe(false);
  });

  it("knows the virtual devices", () => {
    for (const n of ["loop0", "ram1", "zram0", "fd0"]) expect(isVirtualDiskName(n)).toBe(true);
    for (const n of ["sda", "vda", "nvme0n1", "dm-0"]) expect(isVirtualDiskName(n)).toBe(false);
  });
});

describe("Windows PhysicalDisk raw counters (t0 → t1, 5 s)", () => {
  const t0 = parsePhysicalDiskRaw(read("windows/physical-disk-raw.t0.json"));
  const t1 = parsePhysicalDiskRaw(read("windows/physical-disk-raw.t1.json"));

  it("drops _Total and times the sample with the perf clock", () => {
    expect([...t1.counters.keys()]).toEqual(["0 C:", "1 D:"]);
    expect(t1.frequency).toBe(10_000_000);
    expect(t1.timestampMs! - t0.timestampMs!).toBeCloseTo(5000, 6);
    expect(t1.queue.get("0 C:")).toBe(2);
  });

  it("computes throughput, operations, latency (PERF_AVERAGE_TIMER) and utilisation", () => {
    const rates = computeRates(t0.counters, t1.counters, t1.timestampMs! - t0.timestampMs!);
    const c = windowsDiskIoFromRates(rates.get("0 C:")!, t1.frequency!);
    expect(c.readBytesPerSec).toBeCloseTo(10 * 1024 * 1024, 3);
    expect(c.writeBytesPerSec).toBeCloseTo(2 * 1024 * 1024, 3);
    expect(c.readOpsPerSec).toBeCloseTo(100, 6);
    expect(c.writeOpsPerSec).toBeCloseTo(50, 6);
    expect(c.readTimeMs).toBeCloseTo(1000, 6);
    expect(c.readLatencyMs).toBeCloseTo(2, 6);
    expect(c.writeLatencyMs).toBeCloseTo(4, 6);
    expect(c.utilPct).toBeCloseTo(20, 6);
    // "1 D:": the 32-bit AvgDisksecPerRead wrapped: no rate this interval rather than a negative one.
    expect(rates.has("1 D:")).toBe(false);
  });

  it("throws the error answer", () => {
    expect(() => parsePhysicalDiskRaw('{"error":"Invalid class"}')).toThrow(/Invalid class/);
  });
});
