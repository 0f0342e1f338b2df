import { parsePsList, psNumber, psString } from "../ps-json.js";
import type { DiskKind } from "./parse.js";

/** One Windows logical disk with its usage in bytes. */
export interface WindowsVolume {
  /** DeviceID, e.g. "C:". */
  device: string;
  /** "C:\" */
  mountpoint: string;
  filesystem: string;
  kind: DiskKind;
  label: string;
  total: number;
  free: number;
}

/**
 * Parses `Win32_LogicalDisk` (sample: testdata/windows/logical-disk.json). DriveType 2 is removable, 3 local,
 * 4 network; drives without a size (an empty card reader) are skipped. There are no inodes on Windows.
 */
export function parseLogicalDisks(text: string): WindowsVolume[] {
  const out: WindowsVolume[] = [];
  for (const o of parsePsList(text, "Win32_LogicalDisk")) {
    const device = psString(o["DeviceID"]);
    const total = psNumber(o["Size"]);
    const free = psNumber(o["FreeSpace"]);
    if (device === "" || total === undefined || free === undefined || total <= 0) continue;
    const type = psNumber(o["DriveType"]);
    const kind: DiskKind = type === 2 ? "removable" : type === 4 ? "network" : "local";
    out.push({
      device,
      mountpoint: device.endsWith("\\") ? device : `${device}\\`,
      filesystem: psString(o["FileSystem"]),
      kind,
      label: psString(o["VolumeName"]),
      total,
      free: Math.min(free, total),
    });
  }
  return out;
}
