import type { CollectorDefinition } from "../types.js";

/**
 * `memory`: RAM total/used/available (used = total − available) and swap, every 10 s. Linux reads /proc/meminfo;
 * Windows uses `os.totalmem/freemem` plus the page-file query in the shared PowerShell.
 */
const memory: CollectorDefinition = {
  name: "memory",
  defaultIntervalMs: 10_000,
  platforms: ["linux", "windows"],
  async create(ctx) {
    if (ctx.host.platform === "windows") return (await import("./windows.js")).createWindowsMemoryCollector(ctx);
    return (await import("./linux.js")).createLinuxMemoryCollector(ctx);
  },
};

export default memory;
