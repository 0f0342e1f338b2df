import { create } from "@bufbuild/protobuf";
import { ListMountsResultSchema, MountInfoSchema, type ListMountsResult } from "../../../gen/spectra/v1/diagnostics_pb.js";
import { parsePsList, psNumber, psString } from "../../collectors/ps-json.js";
import { sharedPowerShell, type PowerShellQuery } from "../../host/powershell.js";
import type { DiagnosticContext } from "../registry.js";

/**
 * Every logical disk, network drives and optical drives included (unlike the disk collector): the diagnostic answers
 * "what is mounted". `@(…)` with `-InputObject` keeps a single disk an array.
 */
export const LIST_MOUNTS_SCRIPT =
  "ConvertTo-Json -Compress -InputObject @(Get-CimInstance Win32_LogicalDisk | " +
  "Select-Object DeviceID,DriveType,FileSystem,VolumeName,ProviderName,Access)";

const QUERY_TIMEOUT_MS = 20_000;

// Win32_LogicalDisk.DriveType values.
const DRIVE_TYPES: Record<number, string> = {
  0: "unknown",
  1: "no-root-dir",
  2: "removable",
  3: "fixed",
  4: "network",
  5: "cdrom",
  6: "ramdisk",
};

// Win32_LogicalDisk.Access values (often null).
const ACCESS: Record<number, string> = { 1: "ro", 2: "wo", 3: "rw", 4: "write-once" };

/**
 * Parses `Get-CimInstance Win32_LogicalDisk` JSON (LIST_MOUNTS_SCRIPT) into mounts: mountpoint "C:\", device the
 * drive ("C:") or the network share ("\\server\share"), fstype "NTFS" (empty for an empty drive), options the drive
 * type, the access mode when known and the volume label. Sample (hand-written): testdata/win32-logicaldisk.json.
 */
export function parseWin32LogicalDisks(text: string): ListMountsResult {
  const mounts = parsePsList(text, "Win32_LogicalDisk").flatMap((d) => {
    const id = psString(d["DeviceID"]);
    if (id === "") return [];
    const driveType = psNumber(d["DriveType"]);
    const access = psNumber(d["Access"]);
    const label = psString(d["VolumeName"]);
    const options = [
      DRIVE_TYPES[driveType ?? 0] ?? "unknown",
      ...(access !== undefined && ACCESS[access] ? [ACCESS[access]] : []),
      ...(label !== "" ? [`label=${label}`] : []),
    ].join(",");
    return [
      create(MountInfoSchema, {
        mountpoint: id.endsWith("\\") ? id : `${id}\\`,
        device: psString(d["ProviderName"]) || id,
        fstype: psString(d["FileSystem"]),
        options,
      }),
    ];
  });
  return create(ListMountsResultSchema, { mounts });
}

/** Lists the logical disks (Windows) through the host's shared PowerShell session. */
export async function listMountsWindows(ctx: Pick<DiagnosticContext, "host" | "signal" | "logger">, ps?: PowerShellQuery): Promise<ListMountsResult> {
  if (ps) return parseWin32LogicalDisks(await ps.query(LIST_MOUNTS_SCRIPT, QUERY_TIMEOUT_MS, ctx.signal));
  const lease = sharedPowerShell(ctx.host, { logger: ctx.logger });
  try {
    return parseWin32LogicalDisks(await lease.query(LIST_MOUNTS_SCRIPT, QUERY_TIMEOUT_MS, ctx.signal));
  } finally {
    await lease.release();
  }
}
