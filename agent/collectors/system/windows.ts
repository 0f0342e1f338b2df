import { sharedPowerShell, type PowerShellQuery } from "../../host/powershell.js";
import type { Collector, CollectorContext } from "../types.js";
import { systemPayload } from "./payload.js";
import { parseWindowsSystem } from "./windows-parse.js";

/**
 * Boot time and process count from `Win32_OperatingSystem`; interactive users as the distinct owners of
 * explorer.exe (not `quser`, which is localized and missing on Home editions). The date is converted in the script
 * to avoid PowerShell 5.1's `/Date(…)/` form (the parser accepts both).
 */
export const SYSTEM_SCRIPT = [
  "$os = Get-CimInstance Win32_OperatingSystem",
  "$users = @(Get-CimInstance Win32_Process -Filter \"Name='explorer.exe'\" | ForEach-Object {",
  "  $o = Invoke-CimMethod -InputObject $_ -MethodName GetOwner",
  "  if ($o.ReturnValue -eq 0) { \"$($o.Domain)\\$($o.User)\" }",
  "} | Sort-Object -Unique)",
  "ConvertTo-Json -Compress -InputObject @{ LastBootUpTime = $os.LastBootUpTime.ToUniversalTime().ToString('o');" +
    " NumberOfProcesses = $os.NumberOfProcesses; Users = $users }",
].join("\n");

const QUERY_TIMEOUT_MS = 15_000;

/** Test seams for the Windows system collector. */
export interface WindowsSystemDeps {
  ps?: PowerShellQuery;
  /** Wall clock in ms; default `Date.now`. */
  nowMs?: () => number;
}

/**
 * System on Windows, one PowerShell query per run. Uptime is now − LastBootUpTime; with Fast Startup a "shut down"
 * does not reset it (expected Windows behaviour).
 */
export function createWindowsSystemCollector(ctx: CollectorContext, deps: WindowsSystemDeps = {}): Collector {
  const lease = deps.ps ? undefined : sharedPowerShell(ctx.host, { logger: ctx.logger });
  const ps = deps.ps ?? lease!;
  const nowMs = deps.nowMs ?? (() => Date.now());
  return {
    async collect(signal) {
      const info = parseWindowsSystem(await ps.query(SYSTEM_SCRIPT, QUERY_TIMEOUT_MS, signal));
      const uptime = nowMs() / 1000 - info.bootTimeSec;
      return [systemPayload(uptime, info.bootTimeSec, info.processes, info.users.length)];
    },
    async close() {
      await lease?.release();
    },
  };
}
