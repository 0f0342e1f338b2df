import type { CollectorDefinition } from "../types.js";

/**
 * `applications`: the installed-software inventory, with what was added, removed and upgraded since the last one
 * sent. Linux lists dpkg, rpm, apk, pacman, snap and flatpak packages (whichever exist; one failing source does
 * not hide the others); Windows lists the Uninstall registry keys (machine 64/32-bit and loaded user hives),
 * never `Win32_Product`.
 *
 * Schedule, without a special case in the scheduler: the definition's interval is 1 h, a cheap wake-up. The
 * inventory is taken at the first run after start and then once a day, at the first wake-up at or after the
 * local time `collectors.applications.options.at` (default "02:00"; days are compared as local dates, so DST
 * changes do not skip or double a night). Every other wake-up returns at once without running anything. A failed
 * inventory is retried at the next wake-up. Raising the interval coarsens when after `at` the inventory runs.
 *
 * Sending: the first inventory after start goes out in full with empty change lists; later ones only when
 * something changed since the last one sent, or when `collectors.applications.options.full_resend` (default 7d)
 * has passed, each carrying the full inventory plus added, removed and upgraded, sorted by name. The baseline
 * lives in memory: after a restart the inventory is sent again in full.
 *
 * The whole inventory must fit the scheduler's per-run timeout (30 s by default; dpkg-query takes milliseconds,
 * the registry read seconds); on a slow board with a large rpm database raise `collectors.applications.timeout`.
 */
const applications: CollectorDefinition = {
  name: "applications",
  defaultIntervalMs: 3_600_000,
  platforms: ["linux", "windows"],
  async create(ctx) {
    if (ctx.host.platform === "windows") return (await import("./windows.js")).createWindowsApplicationsCollector(ctx);
    return (await import("./linux.js")).createLinuxApplicationsCollector(ctx);
  },
};

export default applications;
