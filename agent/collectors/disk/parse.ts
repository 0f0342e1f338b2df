import { roundPercent } from "../../../common/round.js";
import { isNetworkFilesystem, isPseudoFilesystem, type MountInfoEntry } from "./mounts.js";

/** The part of `fs.statfs(path, { bigint: true })` the disk collector uses. */
export interface StatfsLike {
  bsize: bigint;
  blocks: bigint;
  bfree: bigint;
  bavail: bigint;
  files: bigint;
  ffree: bigint;
}

/** Usage of one filesystem as `df` computes it. */
export interface DiskUsage {
  total: bigint;
  used: bigint;
  available: bigint;
  /** used / (used + available), in % (the reserved blocks count as neither, like df). */
  usedPct: number;
  /** Absent when the filesystem has no inode count (btrfs, vfat, some FUSE report files = 0). */
  inodesTotal?: bigint;
  inodesUsed?: bigint;
  inodesPct?: number;
}

/**
 * Converts statfs numbers to usage: total = blocks·bsize, used = (blocks − bfree)·bsize, available = bavail·bsize,
 * used % = used / (used + available); inodes total = files, used = files − ffree. Percentages to two decimals.
 */
export function diskUsageFromStatfs(s: StatfsLike): DiskUsage {
  const used = s.blocks > s.bfree ? (s.blocks - s.bfree) * s.bsize : 0n;
  const available = s.bavail * s.bsize;
  const denom = used + available;
  const usage: DiskUsage = {
    total: s.blocks * s.bsize,
    used,
    available,
    usedPct: denom > 0n ? roundPercent((Number(used) * 100) / Number(denom)) : 0,
  };
  if (s.files > 0n) {
    const inodesUsed = s.files > s.ffree ? s.files - s.ffree : 0n;
    usage.inodesTotal = s.files;
    usage.inodesUsed = inodesUsed;
    usage.inodesPct = roundPercent((Number(inodesUsed) * 100) / Number(s.files));
  }
  return usage;
}

/** Which filesystems the disk collector reports. */
export interface MountFilter {
  /** Report these even if they are pseudo (e.g. "tmpfs"). */
  includeFsTypes?: ReadonlySet<string>;
  /** Never report these. */
  excludeFsTypes?: ReadonlySet<string>;
  /** Report network filesystems (default true; their statfs is guarded by a timeout). */
  includeNetwork?: boolean;
}

/**
 * Picks the real mounts of a mountinfo table: drops pseudo, overlay, squashfs and tmpfs-like filesystems (unless
 * included), then keeps ONE mount per device number (`major:minor`): the one that mounts the filesystem's root,
 * then the shortest mount point, so bind mounts (e.g. /var/lib/docker of the root disk) are not counted twice.
 * The result keeps the table's order.
 */
export function selectRealMounts(entries: readonly MountInfoEntry[], filter: MountFilter = {}): MountInfoEntry[] {
  const best = new Map<string, MountInfoEntry>();
  for (const m of entries) {
    if (filter.excludeFsTypes?.has(m.fstype)) continue;
    if (isPseudoFilesystem(m.fstype) && !filter.includeFsTypes?.has(m.fstype)) continue;
    if (filter.includeNetwork === false && isNetworkFilesystem(m.fstype)) continue;
    const key = `${m.major}:${m.minor}`;
    const cur = best.get(key);
    if (!cur || better(m, cur)) best.set(key, m);
  }
  const keep = new Set(best.values());
  return entries.filter((m) => keep.has(m));
}

function better(a: MountInfoEntry, b: MountInfoEntry): boolean {
  const aRoot = a.root === "/";
  const bRoot = b.root === "/";
  if (aRoot !== bRoot) return aRoot;
  return a.mountpoint.length < b.mountpoint.length;
}

/** Coarse kind of storage reported as `disk_type`. */
export type DiskKind = "ssd" | "hdd" | "removable" | "network" | "local";

/**
 * Classifies a Linux block device from its sysfs flags (`queue/rotational`, `removable`; undefined when unknown):
 * removable wins, then rotational 1 = hdd, 0 = ssd; otherwise "local".
 */
export function diskKindFromSysfs(rotational: string | undefined, removable: string | undefined): DiskKind {
  if (removable?.trim() === "1") return "removable";
  const r = rotational?.trim();
  if (r === "1") return "hdd";
  if (r === "0") return "ssd";
  return "local";
}
