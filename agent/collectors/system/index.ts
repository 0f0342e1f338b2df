import type { CollectorDefinition } from "../types.js";

/**
 * `system`: uptime, boot time, process count and logged-in users every 5 min. Linux reads /proc and utmp;
 * Windows one `Win32_OperatingSystem` query in the shared PowerShell.
 */
const system: CollectorDefinition = {
  name: "system",
  defaultIntervalMs: 300_000,
  platforms: ["linux", "windows"],
  async create(ctx) {
    if (ctx.host.platform === "windows") return (await import("./windows.js")).createWindowsSystemCollector(ctx);
    return (await import("./linux.js")).createLinuxSystemCollector(ctx);
  },
};

export default system;
