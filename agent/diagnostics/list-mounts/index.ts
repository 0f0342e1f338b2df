import type { DiagnosticDefinition } from "../registry.js";

/**
 * `list_mounts`: the mount table. Linux reads `<procRoot>/…/mounts` (see linux.ts); Windows lists logical disks
 * through PowerShell (see windows.ts). The per-OS module loads only on its OS.
 */
export const listMountsDiagnostic: DiagnosticDefinition<"listMounts"> = {
  name: "listMounts",
  platforms: ["linux", "windows"],
  async run(_params, ctx) {
    if (ctx.host.platform === "windows") return (await import("./windows.js")).listMountsWindows(ctx);
    return (await import("./linux.js")).listMountsLinux(ctx);
  },
};
