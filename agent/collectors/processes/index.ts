import type { CollectorDefinition } from "../types.js";

/**
 * `processes`: every 15 s, the top N processes by CPU and by memory (option `top_n`, default 20; the union is
 * sent) with CPU % of the whole machine, memory %, RSS, state and thread counts, plus whole-host totals by state.
 * Linux reads procfs (no child process); Windows one `Win32_Process` query plus a thread-state snapshot in the
 * shared PowerShell. The per-OS module loads only on its OS.
 */
const processes: CollectorDefinition = {
  name: "processes",
  defaultIntervalMs: 15_000,
  platforms: ["linux", "windows"],
  async create(ctx) {
    if (ctx.host.platform === "windows") return (await import("./windows.js")).createWindowsProcessesCollector(ctx);
    return (await import("./linux.js")).createLinuxProcessesCollector(ctx);
  },
};

export default processes;
