import { create } from "@bufbuild/protobuf";
import { TemperatureMetricsSchema } from "../../../gen/spectra/v1/metrics_pb.js";
import { sharedPowerShell, type PowerShellQuery } from "../../host/powershell.js";
import { NO_DATA, type Collector, type CollectorContext } from "../types.js";
import { parseWindowsThermal } from "./windows-parse.js";

/**
 * ACPI thermal zones: first the performance-counter class (no admin needed, Windows 8+), then
 * `MSAcpi_ThermalZoneTemperature` in root/wmi (admin; "Not supported" on much hardware and in VMs). Each class runs
 * in its own try/catch, so an unsupported one yields no zones plus its message in `Errors`, never a failed query.
 * `Win32_TemperatureProbe` is not used: Microsoft documents that its CurrentReading is not populated. Constant
 * script: nothing is interpolated.
 */
export const THERMAL_SCRIPT = [
  "$zones = @(); $errors = @()",
  "try {",
  "  $zones = @(Get-CimInstance Win32_PerfFormattedData_Counters_ThermalZoneInformation | ForEach-Object {",
  "    [pscustomobject]@{ Source = 'perf'; Name = $_.Name; Temperature = $_.Temperature;",
  "      HighPrecisionTemperature = $_.HighPrecisionTemperature; CriticalTripPoint = $null } })",
  "} catch { $errors += $_.Exception.Message }",
  "if ($zones.Count -eq 0) {",
  "  try {",
  "    $zones = @(Get-CimInstance -Namespace root/wmi -ClassName MSAcpi_ThermalZoneTemperature | ForEach-Object {",
  "      [pscustomobject]@{ Source = 'acpi'; Name = $_.InstanceName; Temperature = $null;",
  "        HighPrecisionTemperature = $_.CurrentTemperature; CriticalTripPoint = $_.CriticalTripPoint } })",
  "  } catch { $errors += $_.Exception.Message }",
  "}",
  "ConvertTo-Json -Compress -Depth 3 -InputObject @{ Zones = $zones; Errors = $errors }",
].join("\n");

/** Below the 10 s interval. */
const QUERY_TIMEOUT_MS = 8_000;

/** Test seams for the Windows temperature collector. */
export interface WindowsTemperatureDeps {
  ps?: PowerShellQuery;
}

/**
 * Temperatures on Windows from ACPI thermal zones, in the shared PowerShell. Where no class answers (access denied,
 * not supported — most desktops and VMs) the run returns NO_DATA quietly: the reasons go to the debug log once.
 * Sensor ids are `acpi/<zone name>`, chip "acpi", label the zone name. Windows exposes no CPU-core, NVMe or GPU
 * sensors without third-party drivers (LibreHardwareMonitor), which are not used.
 */
export function createWindowsTemperatureCollector(ctx: CollectorContext, deps: WindowsTemperatureDeps = {}): Collector {
  const lease = deps.ps ? undefined : sharedPowerShell(ctx.host, { logger: ctx.logger });
  const ps = deps.ps ?? lease!;
  let reasonsLogged = false;
  return {
    async collect(signal) {
      const answer = parseWindowsThermal(await ps.query(THERMAL_SCRIPT, QUERY_TIMEOUT_MS, signal));
      if (answer.zones.length === 0) {
        if (!reasonsLogged) {
          reasonsLogged = true;
          ctx.logger.debug({ reasons: answer.errors }, "no thermal zone readable through WMI");
        }
        return NO_DATA;
      }
      const seen = new Map<string, number>();
      return answer.zones.map((z) => {
        const base = `acpi/${z.name}`;
        const n = (seen.get(base) ?? 0) + 1;
        seen.set(base, n);
        return {
          case: "temperature" as const,
          value: create(TemperatureMetricsSchema, {
            sensor: n === 1 ? base : `${base}@${n}`,
            temperature: z.celsius,
            critTemp: z.critC,
            chip: "acpi",
            label: z.name,
          }),
        };
      });
    },
    async close() {
      await lease?.release();
    },
  };
}
