import { sharedPowerShell, type PowerShellQuery } from "../../host/powershell.js";
import type { Collector, CollectorContext } from "../types.js";
import { createApplicationsCollector, parseApplicationsOptions, type ApplicationsDeps } from "./collector.js";
import { parseWindowsUninstall, UNINSTALL_SCRIPT } from "./windows-parse.js";

/**
 * Reading a few hundred Uninstall keys takes 1–5 s; the ceiling is for a session stuck behind a slow query. The
 * scheduler's per-run timeout (30 s by default) aborts earlier through the signal.
 */
const QUERY_TIMEOUT_MS = 60_000;

/** Test seams for the Windows applications collector. */
export interface WindowsApplicationsDeps extends ApplicationsDeps {
  ps?: PowerShellQuery;
}

/**
 * Installed programs on Windows from the Uninstall registry keys (see {@link UNINSTALL_SCRIPT}) through the
 * shared PowerShell session, source "registry". The registry always exists, so there is no NO_DATA: a failed
 * query is an error (and the next wake-up retries).
 */
export function createWindowsApplicationsCollector(ctx: CollectorContext, deps: WindowsApplicationsDeps = {}): Collector {
  // Validate the options before taking a lease, so a bad config leaks nothing.
  parseApplicationsOptions(ctx.options);
  const lease = deps.ps ? undefined : sharedPowerShell(ctx.host, { logger: ctx.logger });
  const ps = deps.ps ?? lease!;
  return createApplicationsCollector(
    ctx,
    async (signal) => ({ apps: parseWindowsUninstall(await ps.query(UNINSTALL_SCRIPT, QUERY_TIMEOUT_MS, signal)), failed: new Set() }),
    { ...deps, close: async () => lease?.release() },
  );
}
