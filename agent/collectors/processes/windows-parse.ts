import { parsePsObject, psDateMs, psNumber, psString } from "../ps-json.js";
import type { LegacyStatus } from "./parse.js";

/**
 * Names of .NET `System.Diagnostics.ThreadState` values 0–7, the index of the per-process count array the script
 * sends (`Threads`); index 8 counts the `Wait` threads whose WaitReason is `Suspended`.
 */
export const WINDOWS_THREAD_STATES = [
  "Initialized",
  "Ready",
  "Running",
  "Standby",
  "Terminated",
  "Wait",
  "Transition",
  "Unknown",
] as const;
const READY = 1;
const RUNNING = 2;
const STANDBY = 3;
const WAIT = 5;
const TRANSITION = 6;
const SUSPENDED = 8;

/** One row of `Win32_Process`, joined with its thread-state counts. */
export interface WindowsProcess {
  pid: number;
  name: string;
  threadCount: number;
  workingSetBytes: number;
  /** KernelModeTime + UserModeTime, in 100 ns units. */
  cpuTime100ns: number;
  /** CreationDate in ms since the epoch (undefined for the Idle and System pseudo-processes). */
  createdMs: number | undefined;
  /** The 9 counts described at {@link WINDOWS_THREAD_STATES}, or undefined when the snapshot missed the process. */
  threadCounts: number[] | undefined;
}

/** What the processes script returns. */
export interface WindowsProcessSnapshot {
  /** Monotonic time of the query (QueryPerformanceCounter) in ms, for the CPU % denominator. */
  timestampMs: number | undefined;
  processes: WindowsProcess[];
}

/**
 * Parses the answer of the processes script (sample: testdata/windows/processes.t0.json): an object with
 * `TimestampMs` and `Processes` (a list, or a lone object), each with ProcessId, Name, ThreadCount,
 * WorkingSetSize, KernelModeTime, UserModeTime, CreationDate (ISO or `/Date(ms)/`) and `Threads` (9 counts or
 * null). Rows without a ProcessId are dropped. Throws on the `{"error":…}` answer.
 */
export function parseWindowsProcesses(text: string): WindowsProcessSnapshot {
  const root = parsePsObject(text, "Win32_Process");
  const raw = root["Processes"];
  const list = Array.isArray(raw) ? raw : raw === null || raw === undefined ? [] : [raw];
  const processes: WindowsProcess[] = [];
  for (const item of list) {
    if (typeof item !== "object" || item === null) continue;
    const o = item as Record<string, unknown>;
    const pid = psNumber(o["ProcessId"]);
    if (pid === undefined) continue;
    const t = o["Threads"];
    let threadCounts: number[] | undefined;
    if (Array.isArray(t) && t.length >= 8) {
      threadCounts = Array.from({ length: 9 }, (_, i) => Math.max(0, psNumber(t[i]) ?? 0));
    }
    processes.push({
      pid,
      name: psString(o["Name"]),
      threadCount: psNumber(o["ThreadCount"]) ?? 0,
      workingSetBytes: psNumber(o["WorkingSetSize"]) ?? 0,
      cpuTime100ns: (psNumber(o["KernelModeTime"]) ?? 0) + (psNumber(o["UserModeTime"]) ?? 0),
      createdMs: psDateMs(o["CreationDate"]),
      threadCounts,
    });
  }
  return { timestampMs: psNumber(root["TimestampMs"]), processes };
}

/** What the thread-state counts of one Windows process say. */
export interface WindowsThreadSummary {
  /** Non-zero counts by .NET ThreadState name. */
  byState: Record<string, number>;
  running: number;
  /** Ready + Standby (chosen to run next on a processor). */
  runnable: number;
  /** Wait + Transition (waiting for a resource other than the processor, e.g. a paged-out stack). */
  waiting: number;
  /**
   * Process-level state: "Running" if a thread runs, else "Ready" if one is ready, else "Suspended" when every
   * thread waits with reason Suspended (Task Manager's "Suspended"), else "Wait", else "Unknown"; "" without
   * threads.
   */
  state: string;
  status: LegacyStatus;
}

/** Summarises the 9 counts of a process (see {@link WINDOWS_THREAD_STATES}). */
export function summarizeWindowsThreads(counts: readonly number[]): WindowsThreadSummary {
  const byState: Record<string, number> = {};
  let total = 0;
  WINDOWS_THREAD_STATES.forEach((name, i) => {
    const n = counts[i] ?? 0;
    total += n;
    if (n > 0) byState[name] = n;
  });
  const running = counts[RUNNING] ?? 0;
  const runnable = (counts[READY] ?? 0) + (counts[STANDBY] ?? 0);
  const waiting = (counts[WAIT] ?? 0) + (counts[TRANSITION] ?? 0);
  const suspended = counts[SUSPENDED] ?? 0;
  let state: string;
  let status: LegacyStatus;
  if (running > 0) [state, status] = ["Running", "running"];
  else if (runnable > 0) [state, status] = ["Ready", "runnable"];
  else if (waiting > 0) [state, status] = [suspended > 0 && suspended === total ? "Suspended" : "Wait", "waiting"];
  else [state, status] = [total > 0 ? "Unknown" : "", "other"];
  return { byState, running, runnable, waiting, state, status };
}
