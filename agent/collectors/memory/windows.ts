import os from "node:os";
import { sharedPowerShell, type PowerShellQuery } from "../../host/powershell.js";
import type { Collector, CollectorContext } from "../types.js";
import { memoryResult } from "./parse.js";
import { memoryPayload } from "./payload.js";
import { parsePageFileUsage } from "./windows-parse.js";

/** Page files in MB; `@(…)` and `-InputObject` keep a single page file an array. */
export const PAGEFILE_SCRIPT =
  "ConvertTo-Json -Compress -InputObject @(Get-CimInstance Win32_PageFileUsage | Select-Object Name,AllocatedBaseSize,CurrentUsage)";

const QUERY_TIMEOUT_MS = 10_000;

/** Test seams for the Windows memory collector. */
export interface WindowsMemoryDeps {
  ps?: PowerShellQuery;
  /** Default `os.totalmem`. */
  totalmem?: () => number;
  /** Default `os.freemem`, which on Windows is ullAvailPhys: already "available" (free + standby). */
  freemem?: () => number;
}

/**
 * Memory on Windows: RAM from `os.totalmem/freemem` (no spawn), swap from `Win32_PageFileUsage` through the host's
 * shared PowerShell session.
 */
export function createWindowsMemoryCollector(ctx: CollectorContext, deps: WindowsMemoryDeps = {}): Collector {
  const lease = deps.ps ? undefined : sharedPowerShell(ctx.host, { logger: ctx.logger });
  const ps = deps.ps ?? lease!;
  const totalmem = deps.totalmem ?? (() => os.totalmem());
  const freemem = deps.freemem ?? (() => os.freemem());
  return {
    async collect(signal) {
      const total = totalmem();
      const available = freemem();
      const swap = parsePageFileUsage(await ps.query(PAGEFILE_SCRIPT, QUERY_TIMEOUT_MS, signal));
      return [memoryPayload(memoryResult(total, available, swap.total, swap.total - swap.used))];
    },
    async close() {
      await lease?.release();
    },
  };
}
