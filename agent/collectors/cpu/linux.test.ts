import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../../common/logger.js";
import type { CpuMetrics } from "../../../gen/spectra/v1/metrics_pb.js";
import { createHostAccess, type HostPaths } from "../../host/index.js";
import type { CollectorContext, Payload } from "../types.js";
import cpu from "./index.js";
import { createLinuxCpuCollector } from "./linux.js";

const testdata = path.join(import.meta.dirname, "testdata");
const ctxFor = (paths: Partial<HostPaths>): CollectorContext => ({
  host: createHostAccess(paths, { platform: "linux" }),
  logger: silentLogger(),
  options: {},
});
const signal = new AbortController().signal;
const tmp: string[] = [];
afterEach(() => {
  for (const d of tmp.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function cpuOf(payloads: Payload[] | symbol): CpuMetrics {
  expect(Array.isArray(payloads)).toBe(true);
  const p = (payloads as Payload[])[0]!;
  expect(p.case).toBe("cpu");
  return p.value as CpuMetrics;
}

describe("linux cpu collector", () => {
  it("returns a baseline first, then the t0 → t1 values from a fixture tree", async () => {
    const proc = fs.mkdtempSync(path.join(os.tmpdir(), "spectra-cpu-"));
    tmp.push(proc);
    fs.copyFileSync(path.join(testdata, "proc/loadavg"), path.join(proc, "loadavg"));
    fs.copyFileSync(path.join(testdata, "deltas/proc-stat.t0"), path.join(proc, "stat"));
    let now = 10_000;
    const c = createLinuxCpuCollector(ctxFor({ procRoot: proc }), { now: () => now });
    expect(await c.collect(signal)).toEqual([]);
    // Rewrite in place (same inode), as the kernel's file would change under the kept descriptor.
    fs.writeFileSync(path.join(proc, "stat"), fs.readFileSync(path.join(testdata, "deltas/proc-stat.t1")));
    now += 1276;
    const m = cpuOf(await c.collect(signal));
    expect(m.usage).toBeCloseTo(68.6, 1);
    expect(m.cores[0]).toBeCloseTo(58.46, 2);
    expect(m.cores[1]).toBeCloseTo(79.07, 2);
    expect(m.iowait).toBeCloseTo(8.14, 2);
    expect(m.steal).toBe(0);
    expect([m.load1m, m.load5m, m.load15m]).toEqual([0.98, 1.08, 0.54]);
    await c.close?.();
  });

  it("fails with the path when /proc/stat is missing", async () => {
    const c = createLinuxCpuCollector(ctxFor({ procRoot: "/nonexistent/proc" }));
    await expect(c.collect(signal)).rejects.toThrow("read /nonexistent/proc/stat");
  });

  it("measures the real /proc of this machine", async () => {
    const c = await cpu.create(ctxFor({}));
    expect(await c.collect(signal)).toEqual([]);
    const end = Date.now() + 300;
    while (Date.now() < end) Math.sqrt(Math.random()); // some busy time so the interval has ticks
    const m = cpuOf(await c.collect(signal));
    expect(m.usage).toBeGreaterThanOrEqual(0);
    expect(m.usage).toBeLessThanOrEqual(100);
    expect(m.cores).toHaveLength(os.cpus().length);
    for (const core of m.cores) expect(core).toBeGreaterThanOrEqual(0);
    expect(m.iowait).toBeGreaterThanOrEqual(0);
    expect(m.load1m).toBeCloseTo(os.loadavg()[0]!, 0);
    await c.close?.();
  });
});
