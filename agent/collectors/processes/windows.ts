import os from "node:os";
import { sharedPowerShell, type PowerShellQuery } from "../../host/powershell.js";
import type { Collector, CollectorContext } from "../types.js";
import { readProcessesOptions } from "./options.js";
import { bump } from "./parse.js";
import { processListPayload, type ProcessRow } from "./payload.js";
import { selectTop } from "./select.js";
import { parseWindowsProcesses, summarizeWindowsThreads, type WindowsThreadSummary } from "./windows-parse.js";
import { monotonicMs } from "../../clock.js";

/**
 * One snapshot of every process. Thread states come from `[Diagnostics.Process]::GetProcesses()`, which reads all
 * processes and threads with ONE NtQuerySystemInformation call (milliseconds), instead of `Win32_Thread`, which
 * takes seconds on a busy host; its counts per ThreadState (and suspended waits) are joined by pid to the
 * `Win32_Process` rows, whose Kernel/UserModeTime are readable for every process (protected ones included). If the
 * thread snapshot fails, the rows come without counts. The timestamp is the QueryPerformanceCounter right after
 * the query, so the CPU % denominator does not include PowerShell's latency. Constant script: nothing is
 * interpolated.
 */
export const PROCESSES_SCRIPT = [
  "$threads = @{}",
  "try {",
  "  foreach ($p in [Diagnostics.Process]::GetProcesses()) {",
  "    $c = New-Object 'int[]' 9",
  "    try {",
  "      foreach ($t in $p.Threads) {",
  "        $s = [int]$t.ThreadState",
  "        if ($s -ge 0 -and $s -le 7) { $c[$s]++ } else { $c[7]++ }",
  // WaitReason may only be read for a thread in the Wait state (else .NET throws).
  "        if ($s -eq 5 -and [int]$t.WaitReason -eq 5) { $c[8]++ }",
  "      }",
  "    } catch {}",
  "    $threads[[int]$p.Id] = $c",
  "    $p.Dispose()",
  "  }",
  "} catch {}",
  "$list = @(Get-CimInstance Win32_Process | ForEach-Object {",
  "  [pscustomobject]@{ ProcessId = $_.ProcessId; Name = $_.Name; ThreadCount = $_.ThreadCount;",
  "    WorkingSetSize = $_.WorkingSetSize; KernelModeTime = $_.KernelModeTime; UserModeTime = $_.UserModeTime;",
  "    CreationDate = $(if ($_.CreationDate) { $_.CreationDate.ToUniversalTime().ToString('o') } else { $null });",
  "    Threads = $threads[[int]$_.ProcessId] }",
  "})",
  "$at = [Diagnostics.Stopwatch]::GetTimestamp() * 1000.0 / [Diagnostics.Stopwatch]::Frequency",
  "ConvertTo-Json -Compress -Depth 5 -InputObject @{ TimestampMs = $at; Processes = $list }",
].join("\n");

/** Below the 15 s interval (the scheduler's default per-run timeout), so a slow WMI answers as a timeout error. */
const QUERY_TIMEOUT_MS = 12_000;

/** Test seams for the Windows processes collector. */
export interface WindowsProcessesDeps {
  ps?: PowerShellQuery;
  /** Logical processors; default `os.cpus().length`. */
  cpuCount?: () => number;
  /** Physical memory in bytes; default `os.totalmem()`. */
  totalMemBytes?: () => number;
  /** Monotonic ms, used when the answer has no timestamp; default `monotonicMs` (agent/clock.ts). */
  now?: () => number;
  /** Wall clock ms (to tell processes created since the previous run); default `Date.now`. */
  nowMs?: () => number;
}

interface PrevSample {
  created: number | undefined;
  time: number;
}

/**
 * Top processes on Windows from one PowerShell query per run (docs/data-sources.md 3.6). CPU % is the share of
 * the whole machine, like on Linux: Δ(KernelModeTime + UserModeTime) / (Δwall × logical processors) × 100. The
 * identity of a process is pid + CreationDate; one created since the previous run counts all its CPU time. The
 * Idle pseudo-process (pid 0, its "CPU time" is idle time) is left out of the list and the totals. The first run
 * only takes the baseline and returns []. Thread counts by state cover every process, so the whole-host
 * `threads_by_state` is filled on Windows.
 */
export function createWindowsProcessesCollector(ctx: CollectorContext, deps: WindowsProcessesDeps = {}): Collector {
  const opts = readProcessesOptions(ctx.options);
  const lease = deps.ps ? undefined : sharedPowerShell(ctx.host, { logger: ctx.logger });
  const ps = deps.ps ?? lease!;
  const cpuCount = deps.cpuCount ?? (() => os.cpus().length);
  const totalMem = deps.totalMemBytes ?? (() => os.totalmem());
  const now = deps.now ?? (() => monotonicMs());
  const nowMs = deps.nowMs ?? (() => Date.now());
  let prev = new Map<number, PrevSample>();
  let prevAt: number | undefined;
  let prevWallMs = 0;

  return {
    async collect(signal) {
      const snap = parseWindowsProcesses(await ps.query(PROCESSES_SCRIPT, QUERY_TIMEOUT_MS, signal));
      const at = snap.timestampMs ?? now();
      const wallMs = nowMs();
      const list = snap.processes.filter((p) => p.pid !== 0);
      const n = list.length;
      const cpu = new Float64Array(n);
      const mem = new Float64Array(n);
      const pids = new Int32Array(n);
      const summaries: Array<WindowsThreadSummary | undefined> = new Array(n);
      const processesByState: Record<string, number> = {};
      const threadsByState: Record<string, number> = {};
      let totalThreads = 0;
      const firstRun = prevAt === undefined;
      const capacity100ns = firstRun ? 0 : (at - prevAt!) * 10_000 * Math.max(1, cpuCount());
      const next = new Map<number, PrevSample>();
      list.forEach((p, i) => {
        pids[i] = p.pid;
        mem[i] = p.workingSetBytes;
        totalThreads += p.threadCount;
        const s = p.threadCounts ? summarizeWindowsThreads(p.threadCounts) : undefined;
        summaries[i] = s;
        if (s && s.state !== "") bump(processesByState, s.state);
        if (s) for (const [k, v] of Object.entries(s.byState)) bump(threadsByState, k, v);
        const before = prev.get(p.pid);
        let delta = 0;
        if (before !== undefined && before.created === p.createdMs) {
          delta = Math.max(0, p.cpuTime100ns - before.time);
        } else if (!firstRun && p.createdMs !== undefined && p.createdMs >= prevWallMs - 1000) {
          delta = p.cpuTime100ns; // created during the interval: all its CPU time is in it
        }
        cpu[i] = capacity100ns > 0 ? Math.min(100, (delta * 100) / capacity100ns) : 0;
        next.set(p.pid, { created: p.createdMs, time: p.cpuTime100ns });
      });
      prev = next;
      prevAt = at;
      prevWallMs = wallMs;
      if (firstRun || !(capacity100ns > 0)) return [];

      const memTotal = totalMem();
      const rows: ProcessRow[] = selectTop(n, opts.topN, cpu, mem, pids).map((i) => {
        const p = list[i]!;
        const s = summaries[i];
        return {
          pid: p.pid,
          name: p.name,
          cpuPercent: cpu[i]!,
          memPercent: memTotal > 0 ? (p.workingSetBytes * 100) / memTotal : 0,
          memRssBytes: p.workingSetBytes,
          state: s?.state ?? "",
          status: s?.status ?? "other",
          threadsTotal: p.threadCount,
          threadsRunning: s?.running,
          threadsRunnable: s?.runnable,
          threadsWaiting: s?.waiting,
          threadsByState: s?.byState ?? {},
        };
      });
      return [processListPayload(rows, { totalProcesses: n, totalThreads, processesByState, threadsByState })];
    },
    async close() {
      await lease?.release();
    },
  };
}
