import { create } from "@bufbuild/protobuf";
import { DiskMetricsSchema } from "../../../gen/spectra/v1/metrics_pb.js";
import { roundPercent } from "../../../common/round.js";
import { sharedPowerShell, type PowerShellQuery } from "../../host/powershell.js";
import { NO_DATA, type Collector, type CollectorContext } from "../types.js";
import { parseLogicalDisks } from "./windows-parse.js";

/**
 * Local fixed and removable drives (network drives are per-user mappings, invisible to a service, and can hang).
 * `@(…)` with `-InputObject` keeps a single drive an array.
 */
export const LOGICAL_DISK_SCRIPT =
  "ConvertTo-Json -Compress -InputObject @(Get-CimInstance Win32_LogicalDisk -Filter 'DriveType=2 OR DriveType=3' | " +
  "Select-Object DeviceID,VolumeName,FileSystem,Size,FreeSpace,DriveType)";

const QUERY_TIMEOUT_MS = 15_000;

/** Test seams for the Windows disk collector. */
export interface WindowsDiskDeps {
  ps?: PowerShellQuery;
}

/**
 * Disk usage per drive letter from `Win32_LogicalDisk` in the shared PowerShell. used = Size − FreeSpace,
 * available = FreeSpace (Windows has no reserved blocks that matter here, nor inodes).
 */
export function createWindowsDiskCollector(ctx: CollectorContext, deps: WindowsDiskDeps = {}): Collector {
  const lease = deps.ps ? undefined : sharedPowerShell(ctx.host, { logger: ctx.logger });
  const ps = deps.ps ?? lease!;
  return {
    async collect(signal) {
      const volumes = parseLogicalDisks(await ps.query(LOGICAL_DISK_SCRIPT, QUERY_TIMEOUT_MS, signal));
      if (volumes.length === 0) return NO_DATA;
      return volumes.map((v) => {
        const used = v.total - v.free;
        return {
          case: "disk" as const,
          value: create(DiskMetricsSchema, {
            device: v.device,
            mountpoint: v.mountpoint,
            filesystem: v.filesystem,
            diskType: v.kind,
            diskTotal: BigInt(Math.round(v.total)),
            diskUsed: BigInt(Math.round(used)),
            diskAvailable: BigInt(Math.round(v.free)),
            diskUsedPct: roundPercent((used * 100) / v.total),
          }),
        };
      });
    },
    async close() {
      await lease?.release();
    },
  };
}
