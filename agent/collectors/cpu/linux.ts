import type { CpuMetrics } from "../../../gen/spectra/v1/metrics_pb.js";
import { ProcFile } from "../../host/proc-file.js";
import { RateTracker } from "../rate.js";
import type { Collector, CollectorContext } from "../types.js";
import { cpuResultFromRates, parseLoadavg, parseProcStatCpu } from "./parse.js";
import { monotonicMs } from "../../clock.js";

/** Test seams for the Linux CPU collector. */
export interface LinuxCpuDeps {
  /** Monotonic clock in ms; default `monotonicMs` (agent/clock.ts). */
  now?: () => number;
}

/**
 * CPU from `<procRoot>/stat` (per-core and total busy %, iowait %, steal %) and `<procRoot>/loadavg`; two small
 * synchronous reads per run, no child process. The first run only takes the baseline and returns [].
 */
export function createLinuxCpuCollector(ctx: CollectorContext, deps: LinuxCpuDeps = {}): Collector {
  const stat = new ProcFile(`${ctx.host.paths.procRoot}/stat`, 8192);
  const loadavg = new ProcFile(`${ctx.host.paths.procRoot}/loadavg`, 256);
  const tracker = new RateTracker();
  const now = deps.now ?? (() => monotonicMs());
  return {
    async collect() {
      const vectors = parseProcStatCpu(stat.read());
      if (!vectors.has("cpu")) throw new Error(`no cpu line in ${stat.path}`);
      const rates = tracker.update(vectors, now());
      if (!rates) return [];
      const result = cpuResultFromRates(rates);
      if (!result) return [];
      const [load1m, load5m, load15m] = parseLoadavg(loadavg.read());
      return [
        {
          case: "cpu",
          value: {
            $typeName: "spectra.v1.CpuMetrics",
            usage: result.usage,
            cores: result.cores,
            iowait: result.iowait,
            steal: result.steal,
            load1m,
            load5m,
            load15m,
          } satisfies CpuMetrics,
        },
      ];
    },
    close() {
      stat.close();
      loadavg.close();
    },
  };
}
