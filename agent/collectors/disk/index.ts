import type { CollectorDefinition } from "../types.js";

/**
 * `disk`: usage and inodes per real mount every 60 s. Linux reads the mount table and statfs (with a timeout
 * per mount); Windows asks `Win32_LogicalDisk` through the shared PowerShell.
 */
const disk: CollectorDefinition = {
  name: "disk",
  defaultIntervalMs: 60_000,
  platforms: ["linux", "windows"],
  async create(ctx) {
    if (ctx.host.platform === "windows") return (await import("./windows.js")).createWindowsDiskCollector(ctx);
    return (await import("./linux.js")).createLinuxDiskCollector(ctx);
  },
};

export default disk;
