import type { KeyRates } from "../rate.js";
import { parsePsList, psNumber, psString } from "../ps-json.js";
import type { DiskIoResult } from "./parse.js";

/** Indexes of the counter vector taken from `Win32_PerfRawData_PerfDisk_PhysicalDisk`. */
export const W_READ_BYTES = 0;
export const W_WRITE_BYTES = 1;
export const W_READS = 2;
export const W_WRITES = 3;
/** AvgDisksecPerRead: cumulative read time in perf-counter ticks (PERF_AVERAGE_TIMER numerator). */
export const W_READ_TICKS = 4;
export const W_READ_BASE = 5;
export const W_WRITE_TICKS = 6;
export const W_WRITE_BASE = 7;
/** PercentIdleTime: cumulative idle time in 100 ns units. */
export const W_IDLE_100NS = 8;
export const W_SYS_100NS = 9;

/** One reading of the raw physical-disk counters. */
export interface WindowsDiskSample {
  counters: Map<string, number[]>;
  /** CurrentDiskQueueLength per disk (a gauge). */
  queue: Map<string, number>;
  /** Timestamp_PerfTime / Frequency_PerfTime in ms: the counters' own clock, when present. */
  timestampMs: number | undefined;
  /** Frequency_PerfTime (ticks per second), needed to turn read/write ticks into time. */
  frequency: number | undefined;
}

/**
 * Parses `Win32_PerfRawData_PerfDisk_PhysicalDisk` (samples: testdata/windows/physical-disk-raw.t0.json, .t1.json).
 * `_Total` is dropped; disks keep their perf instance name ("0 C:"). Counters absent from an instance make it
 * unusable and it is skipped.
 */
export function parsePhysicalDiskRaw(text: string): WindowsDiskSample {
  const counters = new Map<string, number[]>();
  const queue = new Map<string, number>();
  let timestampMs: number | undefined;
  let frequency: number | undefined;
  for (const o of parsePsList(text, "Win32_PerfRawData_PerfDisk_PhysicalDisk")) {
    const name = psString(o["Name"]);
    if (name === "" || name === "_Total") continue;
    const v = [
      psNumber(o["DiskReadBytesPersec"]),
      psNumber(o["DiskWriteBytesPersec"]),
      psNumber(o["DiskReadsPersec"]),
      psNumber(o["DiskWritesPersec"]),
      psNumber(o["AvgDisksecPerRead"]),
      psNumber(o["AvgDisksecPerRead_Base"]),
      psNumber(o["AvgDisksecPerWrite"]),
      psNumber(o["AvgDisksecPerWrite_Base"]),
      psNumber(o["PercentIdleTime"]) ?? 0,
      psNumber(o["Timestamp_Sys100NS"]) ?? 0,
    ];
    if (v.some((x) => x === undefined)) continue;
    counters.set(name, v as number[]);
    queue.set(name, psNumber(o["CurrentDiskQueueLength"]) ?? 0);
    const f = psNumber(o["Frequency_PerfTime"]);
    const t = psNumber(o["Timestamp_PerfTime"]);
    if (f !== undefined && f > 0 && t !== undefined) {
      frequency = f;
      timestampMs = (t / f) * 1000;
    }
  }
  return { counters, queue, timestampMs, frequency };
}

/**
 * Computes interval values of one disk: bytes and operations per second, time reading/writing in ms
 * (Δticks / frequency), mean latency per operation (PERF_AVERAGE_TIMER: (Δticks / frequency) / Δbase), and
 * utilisation from the idle counter. Note that the tick and base counters are 32-bit and wrap: that interval is
 * then skipped by the rate helper.
 */
export function windowsDiskIoFromRates(r: KeyRates, frequency: number): DiskIoResult {
  const d = r.deltas;
  const ps = r.perSecond;
  const readTimeMs = (d[W_READ_TICKS]! / frequency) * 1000;
  const writeTimeMs = (d[W_WRITE_TICKS]! / frequency) * 1000;
  const readBase = d[W_READ_BASE]!;
  const writeBase = d[W_WRITE_BASE]!;
  const sys = d[W_SYS_100NS]!;
  return {
    readBytesPerSec: ps[W_READ_BYTES]!,
    writeBytesPerSec: ps[W_WRITE_BYTES]!,
    readOpsPerSec: ps[W_READS]!,
    writeOpsPerSec: ps[W_WRITES]!,
    readTimeMs,
    writeTimeMs,
    readLatencyMs: readBase > 0 ? readTimeMs / readBase : 0,
    writeLatencyMs: writeBase > 0 ? writeTimeMs / writeBase : 0,
    awaitMs: readBase + writeBase > 0 ? (readTimeMs + writeTimeMs) / (readBase + writeBase) : 0,
    utilPct: sys > 0 ? Math.min(100, Math.max(0, 100 - (d[W_IDLE_100NS]! * 100) / sys)) : 0,
  };
}
