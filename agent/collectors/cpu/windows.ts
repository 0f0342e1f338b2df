import { create } from "@bufbuild/protobuf";
import os from "node:os";
import { CpuMetricsSchema } from "../../../gen/spectra/v1/metrics_pb.js";
import { RateTracker } from "../rate.js";
import type { Collector, CollectorContext } from "../types.js";
import { cpuResultFromRates } from "./parse.js";
import { cpuVectorsFromOsCpus, type OsCpuTimes } from "./windows-parse.js";
import { monotonicMs } from "../../clock.js";

/** Test seams for the Windows CPU collector. */
export interface WindowsCpuDeps {
  /** Default `os.cpus` (NtQuerySystemInformation through libuv: no PowerShell, no spawn). */
  cpus?: () => ReadonlyArray<{ times: OsCpuTimes }>;
  now?: () => number;
}

/**
 * CPU on Windows from per-core `os.cpus()` deltas (docs/data-sources.md 3.1). Windows has no load average
 * (`os.loadavg()` is always zeros), so `load_1m` is 0 and the optional 5/15 min values are left out; iowait and
 * steal do not exist there and are 0. The first run returns [] (baseline).
 */
export function createWindowsCpuCollector(_ctx: CollectorContext, deps: WindowsCpuDeps = {}): Collector {
  const cpus = deps.cpus ?? (() => os.cpus());
  const now = deps.now ?? (() => monotonicMs());
  const tracker = new RateTracker();
  return {
    async collect() {
      const list = cpus();
      if (list.length === 0) throw new Error("os.cpus() returned no CPUs");
      const rates = tracker.update(cpuVectorsFromOsCpus(list), now());
      if (!rates) return [];
      const result = cpuResultFromRates(rates);
      if (!result) return [];
      return [{ case: "cpu", value: create(CpuMetricsSchema, { ...result, load1m: 0 }) }];
    },
  };
}
