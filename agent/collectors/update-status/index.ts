import type { CollectorDefinition } from "../types.js";

/**
 * `update_status`: pending package updates, how many are security updates, whether a reboot is required, and
 * which package manager answered, every hour by default (`collectors.update_status.interval`). Linux asks apt,
 * dnf, yum, pacman, apk or zypper (whichever exists, in that order) without ever refreshing the package index,
 * so the answer is as fresh as the system's own last refresh; Windows asks the Windows Update Agent (COM) and the
 * reboot-pending registry keys. A host without a known package manager gives NO_DATA.
 *
 * Timeouts: the scheduler's default per-run timeout is the interval capped at 30 s, which apt (about 2 s) and
 * offline Windows searches fit; dnf on small boards (10–40 s) and online Windows searches (minutes) may not.
 * Such a check is not killed at the collector timeout: it finishes under its own ceiling (5 min per Linux
 * command, 20 min for the Windows search) and its result is reported by the next run. To get it in the same run,
 * set `collectors.update_status.timeout` (up to 10m).
 */
const updateStatus: CollectorDefinition = {
  name: "update_status",
  defaultIntervalMs: 3_600_000,
  platforms: ["linux", "windows"],
  async create(ctx) {
    if (ctx.host.platform === "windows") return (await import("./windows.js")).createWindowsUpdateStatusCollector(ctx);
    return (await import("./linux.js")).createLinuxUpdateStatusCollector(ctx);
  },
};

export default updateStatus;
