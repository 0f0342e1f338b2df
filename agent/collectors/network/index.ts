import type { CollectorDefinition } from "../types.js";

/**
 * `network`: per-interface rates (bytes, packets, errors, drops per second) with MAC, MTU and speed, every 5 s.
 * Linux reads /proc/net/dev and /sys/class/net; Windows `Get-NetAdapterStatistics` through the shared PowerShell.
 */
const network: CollectorDefinition = {
  name: "network",
  defaultIntervalMs: 5_000,
  platforms: ["linux", "windows"],
  async create(ctx) {
    if (ctx.host.platform === "windows") return (await import("./windows.js")).createWindowsNetworkCollector(ctx);
    return (await import("./linux.js")).createLinuxNetworkCollector(ctx);
  },
};

export default network;
