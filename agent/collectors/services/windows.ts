import { create } from "@bufbuild/protobuf";
import { ServiceInfoSchema, ServiceListSchema } from "../../../gen/spectra/v1/metrics_pb.js";
import { sharedPowerShell, type PowerShellQuery } from "../../host/powershell.js";
import type { Collector, CollectorContext } from "../types.js";
import { parseWindowsServices } from "./windows-parse.js";

/**
 * Every service from `Win32_Service`. `DelayedAutoStart` exists on the class from Windows 10 / Server 2016; on
 * older builds (property absent, so null) an Auto service's `DelayedAutostart` registry value under
 * HKLM\SYSTEM\CurrentControlSet\Services\<name> answers instead. Constant script: nothing is interpolated; `@(…)`
 * with `-InputObject` keeps a single service an array.
 */
export const SERVICES_SCRIPT = [
  "$list = @(Get-CimInstance Win32_Service | ForEach-Object {",
  "  $delayed = $_.DelayedAutoStart",
  "  if ($null -eq $delayed -and $_.StartMode -eq 'Auto') {",
  "    try { $delayed = ((Get-ItemProperty -LiteralPath ('HKLM:\\SYSTEM\\CurrentControlSet\\Services\\' + $_.Name)" +
    " -Name DelayedAutostart -ErrorAction Stop).DelayedAutostart -eq 1) } catch { $delayed = $null }",
  "  }",
  "  [pscustomobject]@{ Name = $_.Name; DisplayName = $_.DisplayName; State = $_.State; StartMode = $_.StartMode;",
  "    DelayedAutoStart = $delayed; ExitCode = $_.ExitCode }",
  "})",
  "ConvertTo-Json -Compress -InputObject $list",
].join("\n");

/** Well below the 60 s interval; Win32_Service answers in about a second even on a busy server. */
const QUERY_TIMEOUT_MS = 20_000;

/** Test seams for the Windows services collector. */
export interface WindowsServicesDeps {
  ps?: PowerShellQuery;
}

/**
 * Windows services in the shared PowerShell, one query per run: name, display name as description, status
 * (active/inactive/failed from State and ExitCode), the state as `sub_status`, and the start mode as `enabled`
 * (auto, auto-delayed, manual, disabled). `load_state` has no Windows equivalent and stays "".
 */
export function createWindowsServicesCollector(ctx: CollectorContext, deps: WindowsServicesDeps = {}): Collector {
  const lease = deps.ps ? undefined : sharedPowerShell(ctx.host, { logger: ctx.logger });
  const ps = deps.ps ?? lease!;
  return {
    async collect(signal) {
      const services = parseWindowsServices(await ps.query(SERVICES_SCRIPT, QUERY_TIMEOUT_MS, signal));
      return [
        {
          case: "serviceList",
          value: create(ServiceListSchema, {
            manager: "windows",
            services: services.map((s) =>
              create(ServiceInfoSchema, {
                name: s.name,
                status: s.status,
                subStatus: s.subStatus,
                loadState: "",
                description: s.description,
                enabled: s.enabled,
              }),
            ),
          }),
        },
      ];
    },
    async close() {
      await lease?.release();
    },
  };
}
