import type { CollectorDefinition } from "../types.js";

/**
 * `disk_io`: per-disk throughput, operations, time and latency every 5 s. Linux reads /proc/diskstats; Windows
 * the raw PhysicalDisk perf counters through the shared PowerShell.
 */
const diskIo: CollectorDefinition = {
  name: "disk_io",
  defaultIntervalMs: 5_000,
  platforms: ["linux", "windows"],
  async create(ctx) {
    if (ctx.host.platform === "windows") return (await import("./windows.js")).createWindowsDiskIoCollector(ctx);
    return (await import("./linux.js")).createLinuxDiskIoCollector(ctx);
  },
};

export default diskIo;
