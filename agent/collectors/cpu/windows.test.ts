import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../../common/logger.js";
import type { CpuMetrics } from "../../../gen/spectra/v1/metrics_pb.js";
import { createHostAccess } from "../../host/index.js";
import type { Payload } from "../types.js";
import { createWindowsCpuCollector } from "./windows.js";
import { cpuVectorsFromOsCpus, type OsCpuTimes } from "./windows-parse.js";

const testdata = path.join(import.meta.dirname, "testdata/windows");
const load = (f: string): Array<{ times: OsCpuTimes }> =>
  JSON.parse(fs.readFileSync(path.join(testdata, f), "utf8")) as Array<{ times: OsCpuTimes }>;

describe("cpuVectorsFromOsCpus", () => {
  it("maps os.cpus() to time vectors with the total, without adding irq again", () => {
    const v = cpuVectorsFromOsCpus(load("os-cpus-t0.json"));
    expect(v.get("cpu0")).toEqual([100000, 0, 50000, 850000, 0, 0, 0, 0]);
    expect(v.get("cpu")).toEqual([220000, 0, 90000, 1690000, 0, 0, 0, 0]);
  });
});

describe("windows cpu collector", () => {
  it("computes per-core and total usage from os.cpus() deltas; no load average on Windows", async () => {
    const samples = [load("os-cpus-t0.json"), load("os-cpus-t1.json")];
    let i = 0;
    let now = 0;
    const c = createWindowsCpuCollector(
      { host: createHostAccess({}, { platform: "windows" }), logger: silentLogger(), options: {} },
      { cpus: () => samples[i++]!, now: () => (now += 5000) },
    );
    const signal = new AbortController().signal;
    expect(await c.collect(signal)).toEqual([]);
    const p = (await c.collect(signal)) as Payload[];
    const m = p[0]!.value as CpuMetrics;
    expect(m.cores[0]).toBeCloseTo(30, 6);
    expect(m.cores[1]).toBeCloseTo(60, 6);
    expect(m.usage).toBeCloseTo(45, 6);
    expect(m.iowait).toBe(0);
    expect(m.load1m).toBe(0);
    expect(m.load5m).toBeUndefined();
  });
});
