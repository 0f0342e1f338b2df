import fs from "node:fs";
import { ProcFile } from "../../host/proc-file.js";
import { RateTracker } from "../rate.js";
import type { Collector, CollectorContext, Payload } from "../types.js";
import { DS_READS, DS_WRITES, diskIoFromRates, isVirtualDiskName, isWholeDisk, parseDiskstats } from "./parse.js";
import { diskIoPayload } from "./payload.js";
import { monotonicMs } from "../../clock.js";

/** Re-list /sys/block at least this often (every 12 runs = 1 min at 5 s), and whenever an unknown name shows up. */
const SYS_BLOCK_REFRESH_RUNS = 12;

/** Test seams for the Linux disk I/O collector. */
export interface LinuxDiskIoDeps {
  /** Monotonic clock in ms; default `monotonicMs` (agent/clock.ts). */
  now?: () => number;
}

/**
 * Disk I/O per whole disk from one synchronous read of `<procRoot>/diskstats`: bytes and operations per second,
 * ms spent reading/writing in the interval, in-flight I/Os and mean latency per operation. Partitions are left
 * out (whole disks are the names listed in `<sysRoot>/block`); loop, ram, zram and fd devices appear only in
 * intervals where they did I/O. The first run returns [] (baseline).
 */
export function createLinuxDiskIoCollector(ctx: CollectorContext, deps: LinuxDiskIoDeps = {}): Collector {
  const diskstats = new ProcFile(`${ctx.host.paths.procRoot}/diskstats`, 8192);
  const sysBlockDir = `${ctx.host.paths.sysRoot}/block`;
  const now = deps.now ?? (() => monotonicMs());
  const tracker = new RateTracker();
  /** Whole disks per /sys/block; undefined when sysfs is not readable (then a name pattern decides). */
  let sysBlock: Set<string> | undefined;
  /** Every diskstats name seen at the last listing, so a new device triggers a refresh. */
  let knownNames = new Set<string>();
  let runsSinceListing = Infinity;

  const refreshSysBlock = (names: Iterable<string>): void => {
    try {
      // A directory listing of sysfs is in-memory and small; synchronous keeps the run lean.
      sysBlock = new Set(fs.readdirSync(sysBlockDir));
    } catch {
      sysBlock = undefined;
    }
    knownNames = new Set(names);
    runsSinceListing = 0;
  };

  return {
    async collect() {
      const stats = parseDiskstats(diskstats.read());
      runsSinceListing++;
      let stale = runsSinceListing >= SYS_BLOCK_REFRESH_RUNS;
      if (!stale) {
        for (const name of stats.counters.keys()) {
          if (!knownNames.has(name)) {
            stale = true;
            break;
          }
        }
      }
      if (stale) refreshSysBlock(stats.counters.keys());

      const rates = tracker.update(stats.counters, now());
      if (!rates) return [];
      const out: Payload[] = [];
      for (const [name, r] of rates) {
        if (!isWholeDisk(name, sysBlock)) continue;
        if (isVirtualDiskName(name) && r.deltas[DS_READS]! + r.deltas[DS_WRITES]! === 0) continue;
        out.push(diskIoPayload(name, diskIoFromRates(r), stats.inFlight.get(name) ?? 0));
      }
      return out;
    },
    close() {
      diskstats.close();
    },
  };
}
