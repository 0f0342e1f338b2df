import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { Cadence } from "./cadence.js";
import {
  decodeThrottled,
  isRaspberryPiModel,
  parseClockHz,
  parseCpufreqKhz,
  parseMemBytes,
  parseThrottled,
  parseVolts,
  type ThrottleFlags,
} from "./parse.js";

const testdata = path.join(import.meta.dirname, "testdata");
const read = (f: string): string => fs.readFileSync(path.join(testdata, f), "utf8");

const NONE: ThrottleFlags = {
  undervoltage: false,
  armFreqCapped: false,
  throttled: false,
  softTempLimit: false,
  undervoltageOccurred: false,
  freqCapOccurred: false,
  throttledOccurred: false,
  softTempOccurred: false,
};

describe("get_throttled decoding", () => {
  // Each documented bit on its own, then the documented combinations.
  const table: Array<[number, Partial<ThrottleFlags>]> = [
    [0x0, {}],
    [0x1, { undervoltage: true }],
    [0x2, { armFreqCapped: true }],
    [0x4, { throttled: true }],
    [0x8, { softTempLimit: true }],
    [0x10000, { undervoltageOccurred: true }],
    [0x20000, { freqCapOccurred: true }],
    [0x40000, { throttledOccurred: true }],
    [0x80000, { softTempOccurred: true }],
    [0x50005, { undervoltage: true, throttled: true, undervoltageOccurred: true, throttledOccurred: true }],
    [0x80008, { softTempLimit: true, softTempOccurred: true }],
    [
      0xf000f,
      {
        undervoltage: true,
        armFreqCapped: true,
        throttled: true,
        softTempLimit: true,
        undervoltageOccurred: true,
        freqCapOccurred: true,
        throttledOccurred: true,
        softTempOccurred: true,
      },
    ],
    // Bits outside the eight (4–15, 20+) are ignored.
    [0xfff0fff0, {}],
  ];
  for (const [mask, set] of table) {
    it(`0x${mask.toString(16)}`, () => {
      expect(decodeThrottled(mask)).toEqual({ ...NONE, ...set });
    });
  }

  it("parses vcgencmd's answer and the sysfs file (hand-written samples)", () => {
    expect(parseThrottled(read("vcgencmd/get_throttled-0x0.txt"))).toBe(0);
    expect(parseThrottled(read("vcgencmd/get_throttled-0x50005.txt"))).toBe(0x50005);
    expect(parseThrottled(read("vcgencmd/get_throttled-0x80008.txt"))).toBe(0x80008);
    expect(parseThrottled(read("sysfs/get_throttled"))).toBe(0x50005);
    expect(parseThrottled(read("vcgencmd/vchi-failed.stderr"))).toBeUndefined();
    expect(parseThrottled("")).toBeUndefined();
  });
});

describe("vcgencmd value parsers (hand-written samples)", () => {
  it("clocks: ignore the per-model index; 0 is a switched-off clock", () => {
    expect(parseClockHz(read("vcgencmd/measure_clock-arm.txt"))).toBe(1500398464);
    expect(parseClockHz(read("vcgencmd/measure_clock-arm-3b+.txt"))).toBe(1400000000);
    expect(parseClockHz(read("vcgencmd/measure_clock-core.txt"))).toBe(500000000);
    expect(parseClockHz(read("vcgencmd/measure_clock-off.txt"))).toBe(0);
    expect(parseClockHz(read("vcgencmd/error-invalid.txt"))).toBeUndefined();
  });

  it("volts", () => {
    expect(parseVolts(read("vcgencmd/measure_volts-core.txt"))).toBe(0.85);
    expect(parseVolts(read("vcgencmd/measure_volts-sdram.txt"))).toBe(1.1);
    expect(parseVolts(read("vcgencmd/vchi-failed.stderr"))).toBeUndefined();
  });

  it("memory sizes", () => {
    expect(parseMemBytes(read("vcgencmd/get_mem-gpu.txt"))).toBe(76 * 1024 * 1024);
    expect(parseMemBytes(read("vcgencmd/get_mem-reloc_total.txt"))).toBe(52 * 1024 * 1024);
    expect(parseMemBytes("gpu=1G")).toBe(1024 ** 3);
    expect(parseMemBytes("gpu=512K")).toBe(512 * 1024);
    expect(parseMemBytes(read("vcgencmd/error-invalid.txt"))).toBeUndefined();
  });

  it("cpufreq kHz and the device-tree model", () => {
    expect(parseCpufreqKhz(read("sysfs/scaling_cur_freq"))).toBe(1_500_000_000);
    expect(parseCpufreqKhz("")).toBeUndefined();
    expect(isRaspberryPiModel(read("sysfs/device-tree-model-pi4"))).toBe(true);
    expect(isRaspberryPiModel(read("sysfs/device-tree-model-pi5"))).toBe(true);
    expect(isRaspberryPiModel(read("sysfs/device-tree-model-rockpro64"))).toBe(false);
  });
});

describe("Cadence", () => {
  const due = (c: Cadence, ticks: number[]): number[] => ticks.filter((t) => c.take(t));

  it("runs a 15 s part on 10 s ticks every 15 s on average", () => {
    const ticks = Array.from({ length: 13 }, (_, i) => i * 10_000);
    expect(due(new Cadence(15_000), ticks)).toEqual([0, 20_000, 30_000, 50_000, 60_000, 80_000, 90_000, 110_000, 120_000]);
  });

  it("runs a 60 s part every sixth 10 s tick, tolerating timers that fire early", () => {
    const ticks = Array.from({ length: 13 }, (_, i) => i * 10_000 - (i > 0 && i % 6 === 0 ? 3 : 0));
    expect(due(new Cadence(60_000), ticks)).toEqual([0, 59_997, 119_997]);
  });

  it("restarts after a long pause instead of catching up on every tick", () => {
    const c = new Cadence(15_000);
    expect(due(c, [0, 100_000, 110_000, 120_000, 130_000])).toEqual([0, 100_000, 120_000, 130_000]);
  });

  it("a period shorter than the tick runs every tick", () => {
    expect(due(new Cadence(5_000), [0, 10_000, 20_000])).toEqual([0, 10_000, 20_000]);
  });
});
