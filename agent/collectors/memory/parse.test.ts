import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { memoryResult, parseMeminfo } from "./parse.js";
import { parsePageFileUsage } from "./windows-parse.js";

const testdata = path.join(import.meta.dirname, "testdata");
const read = (p: string): string => fs.readFileSync(path.join(testdata, p), "utf8");

describe("parseMeminfo", () => {
  it("reads the captured /proc/meminfo in bytes", () => {
    const m = parseMeminfo(read("proc/meminfo"));
    expect(m).toEqual({
      total: 24684084 * 1024,
      free: 22996012 * 1024,
      available: 24134044 * 1024,
      swapTotal: 0,
      swapFree: 0,
    });
  });

  it("does not take SwapCached for Cached and falls back without MemAvailable (kernel < 3.14)", () => {
    const m = parseMeminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\nSwapCached: 999 kB\nCached: 200 kB\nSwapTotal: 50 kB\nSwapFree: 20 kB\nSReclaimable: 5 kB\n");
    expect(m.available).toBe((100 + 10 + 200 + 5) * 1024);
    expect(m.swapTotal).toBe(50 * 1024);
    expect(m.swapFree).toBe(20 * 1024);
  });

  it("throws without MemTotal", () => {
    expect(() => parseMeminfo("garbage\n")).toThrow(/MemTotal/);
  });
});

describe("memoryResult", () => {
  it("counts used as total − available and derives the percentages", () => {
    const m = parseMeminfo(read("proc/meminfo"));
    const r = memoryResult(m.total, m.available, m.swapTotal, m.swapFree);
    expect(r.ramUsed).toBe((24684084 - 24134044) * 1024);
    expect(r.ramUsedPct).toBeCloseTo(2.228, 3);
    expect(r.swapPct).toBe(0);
    expect(memoryResult(100, 25, 10, 4)).toMatchObject({ ramUsed: 75, ramUsedPct: 75, swapUsed: 6, swapPct: 60 });
  });
});

describe("parsePageFileUsage (Windows)", () => {
  const MB = 1024 * 1024;
  it("sums several page files", () => {
    expect(parsePageFileUsage(read("windows/pagefile-usage.json"))).toEqual({ total: 6912 * MB, used: 412 * MB });
  });
  it("accepts a single object after a BOM", () => {
    expect(parsePageFileUsage(read("windows/pagefile-usage-single-bom.json"))).toEqual({ total: 4864 * MB, used: 312 * MB });
  });
  it("reads no page file as zero swap, also from empty output", () => {
    expect(parsePageFileUsage(read("windows/pagefile-usage-none.json"))).toEqual({ total: 0, used: 0 });
    expect(parsePageFileUsage("")).toEqual({ total: 0, used: 0 });
  });
  it("throws the error answer", () => {
    expect(() => parsePageFileUsage(read("windows/pagefile-usage-error.json"))).toThrow(/Win32_PageFileUsage: Invalid class/);
    expect(() => parsePageFileUsage("not json")).toThrow(/invalid JSON/);
  });
});
