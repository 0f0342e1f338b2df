import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../../common/logger.js";
import type { DiskIoMetrics } from "../../../gen/spectra/v1/metrics_pb.js";
import { createHostAccess, type HostPaths } from "../../host/index.js";
import type { PowerShellQuery } from "../../host/powershell.js";
import type { CollectorContext, Payload } from "../types.js";
import diskIo from "./index.js";
import { createLinuxDiskIoCollector } from "./linux.js";
import { createWindowsDiskIoCollector, PHYSICAL_DISK_SCRIPT } from "./windows.js";

const testdata = path.join(import.meta.dirname, "testdata");
const signal = new AbortController().signal;
const ctxFor = (paths: Partial<HostPaths>, platform: "linux" | "windows" = "linux"): CollectorContext => ({
  host: createHostAccess(paths, { platform }),
  logger: silentLogger(),
  options: {},
});
const ioOf = (p: Payload[] | symbol): Map<string, DiskIoMetrics> => {
  expect(Array.isArray(p)).toBe(true);
  return new Map(
    (p as Payload[]).map((x) => {
      expect(x.case).toBe("diskIo");
      const v = x.value as DiskIoMetrics;
      return [v.device, v];
    }),
  );
};

const tmp: string[] = [];
afterEach(() => {
  for (const d of tmp.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
function tree(sysBlock: string[]): { proc: string; sys: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "spectra-diskio-"));
  tmp.push(root);
  const proc = path.join(root, "proc");
  const sys = path.join(root, "sys");
  fs.mkdirSync(proc);
  for (const d of sysBlock) fs.mkdirSync(path.join(sys, "block", d), { recursive: true });
  return { proc, sys };
}
const line = (name: string, c: number[]): string => `   8       0 ${name} ${c.join(" ")} 0 0 0 0 0 0`;

describe("linux disk I/O collector", () => {
  it("reports the captured vda interval from a fixture tree (loop and zram are not in /sys/block)", async () => {
    const { proc } = tree([]);
    fs.copyFileSync(path.join(testdata, "deltas/proc-diskstats.t0"), path.join(proc, "diskstats"));
    let now = 0;
    const c = createLinuxDiskIoCollector(ctxFor({ procRoot: proc, sysRoot: path.join(testdata, "sys") }), { now: () => now });
    expect(await c.collect(signal)).toEqual([]);
    fs.writeFileSync(path.join(proc, "diskstats"), fs.readFileSync(path.join(testdata, "deltas/proc-diskstats.t1")));
    now = 1276;
    const io = ioOf(await c.collect(signal));
    expect([...io.keys()]).toEqual(["vda"]);
    const vda = io.get("vda")!;
    expect(vda.readLatencyMs).toBe(0.76); // 159 ms / 209 reads, sent with two decimals
    expect(vda.writeLatencyMs).toBe(0.39); // 99 ms / 255 writes
    expect(Number.isInteger(vda.readBytes) && Number.isInteger(vda.writeBytes)).toBe(true); // whole bytes per second
    expect(vda.readBytes / 1e6).toBeCloseTo(164.4, 1);
    expect(vda.writeBytes / 1e6).toBeCloseTo(165.3, 1);
    expect(vda.readTimeMs).toBe(159);
    expect(vda.ioInProgress).toBe(0n);
    await c.close?.();
  });

  it("skips partitions, shows virtual devices only when busy, handles resets and new disks", async () => {
    const { proc, sys } = tree(["sda", "loop0", "zram0"]);
    const write = (lines: string[]): void => fs.writeFileSync(path.join(proc, "diskstats"), lines.join("\n") + "\n");
    // 11 counters: reads merged sectors ms | writes merged sectors ms | inflight io_ms weighted
    write([
      line("sda", [100, 0, 800, 50, 10, 0, 80, 20, 0, 60, 70]),
      line("sda1", [100, 0, 800, 50, 10, 0, 80, 20, 0, 60, 70]),
      line("loop0", [5, 0, 40, 1, 0, 0, 0, 0, 0, 1, 1]),
      line("zram0", [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    ]);
    let now = 0;
    const c = createLinuxDiskIoCollector(ctxFor({ procRoot: proc, sysRoot: sys }), { now: () => now });
    expect(await c.collect(signal)).toEqual([]);

    write([
      line("sda", [110, 0, 880, 60, 20, 0, 160, 30, 3, 80, 90]),
      line("sda1", [110, 0, 880, 60, 20, 0, 160, 30, 3, 80, 90]),
      line("loop0", [7, 0, 56, 2, 0, 0, 0, 0, 0, 2, 2]),
      line("zram0", [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    ]);
    now = 1000;
    let io = ioOf(await c.collect(signal));
    expect([...io.keys()]).toEqual(["sda", "loop0"]);
    expect(io.get("sda")).toMatchObject({ readOps: 10, readBytes: 80 * 512, readTimeMs: 10, readLatencyMs: 1, ioInProgress: 3n });
    expect(io.get("sda")!.writeLatencyMs).toBe(1);

    // sda's counters went backwards (driver reset); sdb is hot-plugged (baseline only); loop0 is idle.
    fs.mkdirSync(path.join(sys, "block", "sdb"));
    write([
      line("sda", [1, 0, 8, 1, 0, 0, 0, 0, 0, 1, 1]),
      line("loop0", [7, 0, 56, 2, 0, 0, 0, 0, 0, 2, 2]),
      line("sdb", [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    ]);
    now = 2000;
    expect(ioOf(await c.collect(signal)).size).toBe(0);

    write([
      line("sda", [2, 0, 16, 2, 0, 0, 0, 0, 0, 2, 2]),
      line("sdb", [4, 0, 64, 8, 0, 0, 0, 0, 0, 8, 8]),
    ]);
    now = 3000;
    io = ioOf(await c.collect(signal));
    expect([...io.keys()]).toEqual(["sda", "sdb"]);
    expect(io.get("sdb")!.readLatencyMs).toBe(2);
  });

  it("reports this machine's disks", async () => {
    const c = await diskIo.create(ctxFor({}));
    expect(await c.collect(signal)).toEqual([]);
    await new Promise((r) => setTimeout(r, 200));
    const io = ioOf(await c.collect(signal));
    const whole = fs.readdirSync("/sys/block").filter((n) => !/^(loop|ram|zram|fd)/.test(n));
    for (const n of whole) expect(io.has(n)).toBe(true);
    for (const v of io.values()) {
      expect(v.readBytes).toBeGreaterThanOrEqual(0);
      expect(v.writeLatencyMs).toBeGreaterThanOrEqual(0);
    }
    await c.close?.();
  });
});

describe("windows disk I/O collector", () => {
  it("reports per-disk rates from two raw perf samples", async () => {
    const answers = ["physical-disk-raw.t0.json", "physical-disk-raw.t1.json"].map((f) =>
      fs.readFileSync(path.join(testdata, "windows", f), "utf8"),
    );
    const ps: PowerShellQuery = {
      query: async (script) => {
        expect(script).toBe(PHYSICAL_DISK_SCRIPT);
        return answers.shift()!;
      },
    };
    const c = createWindowsDiskIoCollector(ctxFor({}, "windows"), { ps });
    expect(await c.collect(signal)).toEqual([]);
    const io = ioOf(await c.collect(signal));
    expect([...io.keys()]).toEqual(["0 C:"]);
    const d = io.get("0 C:")!;
    expect(d.readBytes).toBeCloseTo(10 * 1024 * 1024, 3);
    expect(d.readOps).toBeCloseTo(100, 6);
    expect(d.readLatencyMs).toBeCloseTo(2, 6);
    expect(d.writeLatencyMs).toBeCloseTo(4, 6);
    expect(d.ioInProgress).toBe(2n);
  });
});
