import { sharedPowerShell, type PowerShellQuery } from "../../host/powershell.js";
import { RateTracker } from "../rate.js";
import type { Collector, CollectorContext, Payload } from "../types.js";
import { diskIoPayload } from "./payload.js";
import { parsePhysicalDiskRaw, windowsDiskIoFromRates } from "./windows-parse.js";

/** Raw (cumulative) counters; the formatted class averages over WMI's own window and starts at 0. */
export const PHYSICAL_DISK_SCRIPT =
  "ConvertTo-Json -Compress -InputObject @(Get-CimInstance Win32_PerfRawData_PerfDisk_PhysicalDisk | Select-Object " +
  "Name,DiskReadBytesPersec,DiskWriteBytesPersec,DiskReadsPersec,DiskWritesPersec,AvgDisksecPerRead," +
  "AvgDisksecPerRead_Base,AvgDisksecPerWrite,AvgDisksecPerWrite_Base,CurrentDiskQueueLength,PercentIdleTime," +
  "Timestamp_PerfTime,Frequency_PerfTime,Timestamp_Sys100NS)";

const QUERY_TIMEOUT_MS = 10_000;

/** Test seams for the Windows disk I/O collector. */
export interface WindowsDiskIoDeps {
  ps?: PowerShellQuery;
}

/**
 * Disk I/O per physical disk on Windows from `Win32_PerfRawData_PerfDisk_PhysicalDisk` deltas, timed by the
 * counters' own perf clock. The first run returns [] (baseline).
 */
export function createWindowsDiskIoCollector(ctx: CollectorContext, deps: WindowsDiskIoDeps = {}): Collector {
  const lease = deps.ps ? undefined : sharedPowerShell(ctx.host, { logger: ctx.logger });
  const ps = deps.ps ?? lease!;
  const tracker = new RateTracker();
  return {
    async collect(signal) {
      const sample = parsePhysicalDiskRaw(await ps.query(PHYSICAL_DISK_SCRIPT, QUERY_TIMEOUT_MS, signal));
      if (sample.timestampMs === undefined || sample.frequency === undefined) {
        // Without the perf clock the ticks cannot be turned into time: start over at the next answer.
        tracker.reset();
        return [];
      }
      const rates = tracker.update(sample.counters, sample.timestampMs);
      if (!rates) return [];
      const out: Payload[] = [];
      for (const [name, r] of rates) {
        out.push(diskIoPayload(name, windowsDiskIoFromRates(r, sample.frequency), sample.queue.get(name) ?? 0));
      }
      return out;
    },
    async close() {
      await lease?.release();
    },
  };
}
