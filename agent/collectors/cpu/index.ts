import type { CollectorDefinition } from "../types.js";

/**
 * `cpu`: total and per-core busy %, iowait %, steal % and load averages every 5 s. Linux reads /proc/stat and
 * /proc/loadavg; Windows uses `os.cpus()` deltas. The per-OS module loads only on its OS.
 */
const cpu: CollectorDefinition = {
  name: "cpu",
  defaultIntervalMs: 5_000,
  platforms: ["linux", "windows"],
  async create(ctx) {
    if (ctx.host.platform === "windows") return (await import("./windows.js")).createWindowsCpuCollector(ctx);
    return (await import("./linux.js")).createLinuxCpuCollector(ctx);
  },
};

export default cpu;
