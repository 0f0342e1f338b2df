import type { KeyRates } from "../rate.js";

/** Indexes of the counter vector taken from each `/proc/diskstats` line (in-flight is a gauge, kept apart). */
export const DS_READS = 0;
export const DS_SECTORS_READ = 1;
export const DS_MS_READING = 2;
export const DS_WRITES = 3;
export const DS_SECTORS_WRITTEN = 4;
export const DS_MS_WRITING = 5;
export const DS_MS_IO = 6;
export const DS_WEIGHTED_MS = 7;

/** A diskstats sector is always 512 bytes, whatever the device's real sector size. */
export const DISKSTATS_SECTOR_BYTES = 512;

/** One reading of `/proc/diskstats`. */
export interface Diskstats {
  /** Cumulative counters per device name (order: the DS_* indexes). */
  counters: Map<string, number[]>;
  /** I/Os currently in flight per device (a gauge). */
  inFlight: Map<string, number>;
}

/**
 * Parses `/proc/diskstats` (sample: testdata/proc/diskstats): `major minor name` then 11 counters on old kernels,
 * 15 with discard (4.18) or 17 with flush (5.5); only the first 11 are used. Lines with fewer fields (the
 * partition format of 2.6.25 and older) are skipped.
 */
export function parseDiskstats(text: string): Diskstats {
  const counters = new Map<string, number[]>();
  const inFlight = new Map<string, number>();
  for (const line of text.split("\n")) {
    // trim + split on runs of spaces: measured ~2x faster than splitting on " " and filtering empty fields.
    const f = line.trim().split(/ +/);
    if (f.length < 14) continue;
    const name = f[2]!;
    counters.set(name, [
      Number(f[3]), // reads completed
      Number(f[5]), // sectors read
      Number(f[6]), // ms reading
      Number(f[7]), // writes completed
      Number(f[9]), // sectors written
      Number(f[10]), // ms writing
      Number(f[12]), // ms doing I/O
      Number(f[13]), // weighted ms
    ]);
    inFlight.set(name, Number(f[11]));
  }
  return { counters, inFlight };
}

/** Per-device I/O over one interval. */
export interface DiskIoResult {
  readBytesPerSec: number;
  writeBytesPerSec: number;
  readOpsPerSec: number;
  writeOpsPerSec: number;
  /** ms spent reading / writing during the interval (summed over concurrent requests). */
  readTimeMs: number;
  writeTimeMs: number;
  /** Mean ms per completed read / write; 0 when there were none. */
  readLatencyMs: number;
  writeLatencyMs: number;
  /** Mean ms per completed operation, reads and writes together (iostat's await). */
  awaitMs: number;
  /** Share of the interval the device was busy, 0-100. */
  utilPct: number;
}

/** Computes I/O rates and latencies of one device from the deltas of its diskstats counters. */
export function diskIoFromRates(r: KeyRates): DiskIoResult {
  const d = r.deltas;
  const ps = r.perSecond;
  const reads = d[DS_READS]!;
  const writes = d[DS_WRITES]!;
  const msR = d[DS_MS_READING]!;
  const msW = d[DS_MS_WRITING]!;
  return {
    readBytesPerSec: ps[DS_SECTORS_READ]! * DISKSTATS_SECTOR_BYTES,
    writeBytesPerSec: ps[DS_SECTORS_WRITTEN]! * DISKSTATS_SECTOR_BYTES,
    readOpsPerSec: ps[DS_READS]!,
    writeOpsPerSec: ps[DS_WRITES]!,
    readTimeMs: msR,
    writeTimeMs: msW,
    readLatencyMs: reads > 0 ? msR / reads : 0,
    writeLatencyMs: writes > 0 ? msW / writes : 0,
    awaitMs: reads + writes > 0 ? (msR + msW) / (reads + writes) : 0,
    // ms of I/O per second of wall time, as a percentage: (Δms / 1000 ms) · 100.
    utilPct: Math.min(100, ps[DS_MS_IO]! / 10),
  };
}

/** Devices with no storage of their own: reported only in intervals where they did I/O. */
export function isVirtualDiskName(name: string): boolean {
  return name.startsWith("loop") || name.startsWith("ram") || name.startsWith("zram") || /^fd\d/.test(name);
}

const PARTITION = /^(?:(?:[shv]d|xvd)[a-z]+\d+|(?:nvme\d+n\d+|mmcblk\d+|md\d+|nbd\d+)p\d+)$/;

/**
 * Whether `name` is a whole disk. With the `/sys/block` listing (whole disks only; partitions live below their
 * disk) that is membership; without sysfs, a name pattern recognises the usual partitions (sda1, nvme0n1p2).
 */
export function isWholeDisk(name: string, sysBlock: ReadonlySet<string> | undefined): boolean {
  if (sysBlock) return sysBlock.has(name);
  return !PARTITION.test(name);
}
