import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { computeRates } from "../rate.js";
import { cpuResultFromRates, cpuUsageFromDeltas, parseLoadavg, parseProcStatCpu } from "./parse.js";

const testdata = path.join(import.meta.dirname, "testdata");
const read = (p: string): string => fs.readFileSync(path.join(testdata, p), "latin1");

describe("parseProcStatCpu", () => {
  it("reads the cpu lines of the captured /proc/stat", () => {
    const v = parseProcStatCpu(read("proc/stat"));
    expect([...v.keys()]).toEqual(["cpu", "cpu0", "cpu1"]);
    // user nice system idle iowait irq softirq steal (guest columns dropped)
    expect(v.get("cpu")).toEqual([31491, 0, 7165, 66892, 2509, 0, 90, 219]);
    expect(v.get("cpu1")).toEqual([17161, 0, 3752, 31336, 1795, 0, 69, 118]);
  });

  it("pads the short lines of old kernels and skips garbage", () => {
    const v = parseProcStatCpu("cpu  1 2 3 4\ncpu0 1 2 3 4 5\ncpuX\nintr 1 2\n");
    expect(v.get("cpu")).toEqual([1, 2, 3, 4, 0, 0, 0, 0]);
    expect(v.get("cpu0")).toEqual([1, 2, 3, 4, 5, 0, 0, 0]);
    expect(v.has("cpuX")).toBe(false);
    expect(parseProcStatCpu("").size).toBe(0);
  });
});

describe("CPU usage over the captured t0 → t1 pair", () => {
  const rates = computeRates(parseProcStatCpu(read("deltas/proc-stat.t0")), parseProcStatCpu(read("deltas/proc-stat.t1")), 1276);

  it("matches the expected values of the fixtures README", () => {
    const total = cpuUsageFromDeltas(rates.get("cpu")!.deltas);
    expect(total.busy).toBeCloseTo(68.6, 1);
    expect(total.user).toBeCloseTo(65.5, 1);
    expect(total.system).toBeCloseTo(3.1, 1);
    expect(total.iowait).toBeCloseTo(8.14, 2);
    expect(total.steal).toBe(0);
    expect(total.idle).toBeCloseTo(23.26, 2);
    expect(cpuUsageFromDeltas(rates.get("cpu1")!.deltas).iowait).toBeCloseTo(15.5, 1);
  });

  it("builds the payload values: total, cores in order, iowait, steal", () => {
    const r = cpuResultFromRates(rates)!;
    expect(r.usage).toBeCloseTo(68.6, 1);
    expect(r.cores).toHaveLength(2);
    expect(r.cores[0]).toBeCloseTo(58.46, 2);
    expect(r.cores[1]).toBeCloseTo(79.07, 2);
    expect(r.iowait).toBeCloseTo(8.14, 2);
    expect(r.steal).toBe(0);
  });

  it("orders cores numerically (cpu10 after cpu9) and survives an interval without ticks", () => {
    const zero = { deltas: [0, 0, 0, 0, 0, 0, 0, 0], perSecond: [] };
    const busy = { deltas: [1, 0, 0, 0, 0, 0, 0, 0], perSecond: [] };
    const r = cpuResultFromRates(new Map([["cpu", zero], ["cpu10", busy], ["cpu9", zero]]))!;
    expect(r.cores).toEqual([0, 100]);
    expect(r.usage).toBe(0);
    expect(cpuResultFromRates(new Map([["cpu0", busy]]))).toBeUndefined();
  });
});

describe("parseLoadavg", () => {
  it("reads the three load averages", () => {
    expect(parseLoadavg(read("proc/loadavg"))).toEqual([0.98, 1.08, 0.54]);
    expect(() => parseLoadavg("garbage")).toThrow(/unexpected loadavg/);
  });
});
