import { create } from "@bufbuild/protobuf";
import { ProcessInfoSchema, ProcessListSchema } from "../../../gen/spectra/v1/metrics_pb.js";
import type { Payload } from "../types.js";
import type { LegacyStatus } from "./parse.js";

/** One listed process, platform-neutral, before it becomes a `ProcessInfo`. */
export interface ProcessRow {
  pid: number;
  name: string;
  /** Share of the whole machine (all cores = 100). */
  cpuPercent: number;
  memPercent: number;
  memRssBytes: number;
  /** Linux state letter, or the Windows equivalent; "" when unknown. */
  state: string;
  status: LegacyStatus;
  threadsTotal: number;
  /** Legacy thread counts; undefined when the platform cannot tell. */
  threadsRunning: number | undefined;
  threadsRunnable: number | undefined;
  threadsWaiting: number | undefined;
  /** Thread counts by state (empty when unknown). */
  threadsByState: Record<string, number>;
}

/** Whole-host counts of one run. */
export interface ProcessTotals {
  totalProcesses: number;
  totalThreads: number;
  processesByState: Record<string, number>;
  /** Empty when not collected (Linux without `all_thread_states`). */
  threadsByState: Record<string, number>;
}

/** Builds the `process_list` payload. */
export function processListPayload(rows: readonly ProcessRow[], totals: ProcessTotals): Payload {
  return {
    case: "processList",
    value: create(ProcessListSchema, {
      processes: rows.map((r) =>
        create(ProcessInfoSchema, {
          pid: r.pid,
          name: r.name,
          cpuPercent: r.cpuPercent,
          memPercent: r.memPercent,
          memRss: BigInt(Math.max(0, Math.round(r.memRssBytes))),
          status: r.status,
          threadsTotal: r.threadsTotal,
          threadsRunning: r.threadsRunning,
          threadsRunnable: r.threadsRunnable,
          threadsWaiting: r.threadsWaiting,
          state: r.state,
          threadsByState: r.threadsByState,
        }),
      ),
      totalProcesses: totals.totalProcesses,
      totalThreads: totals.totalThreads,
      processesByState: totals.processesByState,
      threadsByState: totals.threadsByState,
    }),
  };
}
