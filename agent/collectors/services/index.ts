import type { CollectorDefinition } from "../types.js";

/**
 * `services`: every 60 s, the service list with status, sub state, load state, enablement and description. Linux
 * asks `systemctl` (JSON from systemd 246, text before; NO_DATA when systemd is not PID 1); Windows one
 * `Win32_Service` query in the shared PowerShell. The per-OS module loads only on its OS.
 */
const services: CollectorDefinition = {
  name: "services",
  defaultIntervalMs: 60_000,
  platforms: ["linux", "windows"],
  async create(ctx) {
    if (ctx.host.platform === "windows") return (await import("./windows.js")).createWindowsServicesCollector(ctx);
    return (await import("./linux.js")).createLinuxServicesCollector(ctx);
  },
};

export default services;
