import fs from "node:fs";
import { ProcFile } from "../../host/proc-file.js";
import type { Collector, CollectorContext } from "../types.js";
import { readProcessesOptions } from "./options.js";
import { readPageSize } from "./page-size.js";
import {
  bump,
  CLK_TCK,
  linuxLegacyCounts,
  linuxLegacyStatus,
  newPidStat,
  parseCpuTotalTicks,
  parseMemTotalBytes,
  parsePidStat,
  parseUptimeSeconds,
  statStateLetter,
} from "./parse.js";
import { processListPayload, type ProcessRow } from "./payload.js";
import { selectTop } from "./select.js";

/** Test seams for the Linux processes collector. */
export interface LinuxProcessesDeps {
  /** Bytes per page for `rss`; default read from the ELF auxiliary vector (see page-size.ts). */
  pageSize?: number;
}

/** Give the event loop a turn after this many pids, so a host with 10,000 processes does not stall heartbeats. */
const YIELD_EVERY = 512;

/** Errors that mean "this process or thread is gone": it exited between the listing and the read. */
function vanished(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOENT" || code === "ESRCH";
}

/** Errors that mean "exists, but hidden from us" (procfs mounted with hidepid=1, or a foreign pid namespace). */
function hidden(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "EACCES" || code === "EPERM";
}

/**
 * Reads whole small procfs files with open/read/close into one reused buffer (no Buffer or string per file).
 * Synchronous on purpose: procfs content is generated in memory, a read is a few µs, and the thread-pool round
 * trips of the asynchronous API would cost ten times more per file with thousands of files (see proc-file.ts).
 */
class SmallFileReader {
  buf = Buffer.allocUnsafe(1024);

  /** Reads `path` into `this.buf` and returns its length; throws the raw errno error. */
  read(path: string): number {
    const fd = fs.openSync(path, "r");
    try {
      for (;;) {
        const n = fs.readSync(fd, this.buf, 0, this.buf.length, 0);
        if (n < this.buf.length) return n;
        this.buf = Buffer.allocUnsafe(this.buf.length * 2);
      }
    } finally {
      fs.closeSync(fd);
    }
  }
}

/**
 * Growable struct-of-arrays table of one run's processes, reused from run to run (the typed arrays only grow).
 */
class ProcTable {
  size = 0;
  pid = new Int32Array(1024);
  ticks = new Float64Array(1024);
  start = new Float64Array(1024);
  rss = new Float64Array(1024);
  threads = new Int32Array(1024);
  cpu = new Float64Array(1024);
  names: string[] = [];
  states: string[] = [];

  push(pid: number, name: string, state: string, ticks: number, start: number, rss: number, threads: number): void {
    if (this.size === this.pid.length) this.grow();
    const i = this.size++;
    this.pid[i] = pid;
    this.ticks[i] = ticks;
    this.start[i] = start;
    this.rss[i] = rss;
    this.threads[i] = threads;
    this.cpu[i] = 0;
    this.names[i] = name;
    this.states[i] = state;
  }

  private grow(): void {
    const n = this.pid.length * 2;
    const g = <T extends Int32Array | Float64Array>(a: T, make: (n: number) => T): T => {
      const b = make(n);
      b.set(a);
      return b;
    };
    this.pid = g(this.pid, (k) => new Int32Array(k));
    this.ticks = g(this.ticks, (k) => new Float64Array(k));
    this.start = g(this.start, (k) => new Float64Array(k));
    this.rss = g(this.rss, (k) => new Float64Array(k));
    this.threads = g(this.threads, (k) => new Int32Array(k));
    this.cpu = g(this.cpu, (k) => new Float64Array(k));
  }
}

/** Previous reading of one process, for its CPU delta. */
interface PrevSample {
  start: number;
  ticks: number;
}

/**
 * Top processes on Linux from procfs, without any child process (docs/data-sources.md 3.6).
 *
 * Per run: `/proc/stat` (machine CPU time), `/proc/meminfo` (MemTotal), `/proc/uptime`, one listing of `/proc`
 * and ONE read of `/proc/<pid>/stat` per process, which alone gives the name, state, utime+stime, num_threads,
 * start time and rss. Only the listed processes (top N by CPU ∪ top N by memory) that have more than one thread
 * get their `task/<tid>/stat` files read for thread states; a single-threaded process's only thread is its leader,
 * whose state `stat` already gave. Processes that exit mid-run are skipped.
 *
 * CPU % is the process's share of the WHOLE machine over the interval: Δ(utime+stime) / Δ(sum of the `cpu` line
 * of /proc/stat) × 100, so all cores busy = 100 and one busy thread on a 4-core host = 25 (the convention of the
 * legacy API, where percentages are 0–100, and of docs/data-sources.md). A process identity is pid + start time
 * (pids are reused). A process that was not there at the previous run started during the interval, so all its
 * CPU time falls in it and counts in full (short-lived busy processes show up); a process whose counter went
 * backwards gets 0 this time. The first run only takes the baseline and returns [].
 *
 * Whole-host totals: processes by state (from every `stat`), total threads (sum of num_threads); threads by state
 * only with the option `all_thread_states` (it reads one file per thread of the host).
 */
export function createLinuxProcessesCollector(ctx: CollectorContext, deps: LinuxProcessesDeps = {}): Collector {
  const opts = readProcessesOptions(ctx.options);
  const procRoot = ctx.host.paths.procRoot;
  const statFile = new ProcFile(`${procRoot}/stat`, 8192);
  const meminfoFile = new ProcFile(`${procRoot}/meminfo`, 4096);
  const uptimeFile = new ProcFile(`${procRoot}/uptime`, 128);
  const pageSize = deps.pageSize ?? readPageSize();
  const reader = new SmallFileReader();
  const scratch = newPidStat();
  const table = new ProcTable();
  // Two maps swapped every run, so the per-pid history allocates nothing once the host is in a steady state.
  let prev = new Map<number, PrevSample>();
  let next = new Map<number, PrevSample>();
  let prevTotalTicks: number | undefined;
  let prevUptimeTicks = 0;
  let hiddenLogged = false;

  /** Thread counts by state letter of one process, or undefined when it vanished before its tasks were read. */
  const threadStates = (i: number): Record<string, number> | undefined => {
    if (table.threads[i]! <= 1) return { [table.states[i]!]: 1 };
    const dir = `${procRoot}/${table.pid[i]}/task`;
    let tids: string[];
    try {
      tids = fs.readdirSync(dir);
    } catch {
      return undefined; // gone, or hidden: the counts are unknown, not an error of the run
    }
    const counts: Record<string, number> = {};
    for (const tid of tids) {
      let n: number;
      try {
        n = reader.read(`${dir}/${tid}/stat`);
      } catch {
        continue; // the thread exited between the listing and the read
      }
      const letter = statStateLetter(reader.buf, n);
      if (letter !== "") bump(counts, letter);
    }
    return Object.keys(counts).length > 0 ? counts : undefined;
  };

  return {
    async collect(signal) {
      const totalTicks = parseCpuTotalTicks(statFile.read());
      if (totalTicks === undefined) throw new Error(`no cpu line in ${statFile.path}`);
      const memTotal = parseMemTotalBytes(meminfoFile.read());
      if (memTotal === undefined) throw new Error(`no MemTotal in ${meminfoFile.path}`);
      const uptime = parseUptimeSeconds(uptimeFile.read());
      if (uptime === undefined) throw new Error(`unexpected content in ${uptimeFile.path}`);
      const uptimeTicks = uptime * CLK_TCK;

      let names: string[];
      try {
        // Synchronous: listing procfs is in-memory work (see the system collector).
        names = fs.readdirSync(procRoot);
      } catch (cause) {
        throw new Error(`list ${procRoot}`, { cause });
      }

      table.size = 0;
      let failed = 0;
      let hiddenCount = 0;
      let firstError: unknown;
      let seen = 0;
      for (const name of names) {
        const c = name.charCodeAt(0);
        if (c < 48 || c > 57) continue;
        if (++seen % YIELD_EVERY === 0) {
          await new Promise<void>((resolve) => setImmediate(resolve));
          if (signal.aborted) throw new Error("processes run aborted", { cause: signal.reason });
        }
        let n: number;
        try {
          n = reader.read(`${procRoot}/${name}/stat`);
        } catch (err) {
          if (vanished(err)) continue;
          if (hidden(err)) {
            hiddenCount++;
            continue;
          }
          failed++;
          firstError ??= err;
          continue;
        }
        if (!parsePidStat(reader.buf, n, scratch)) continue; // an empty read: the process is being reaped
        const s = scratch;
        table.push(Number(name), s.name, s.state, s.ticks, s.startTicks, s.rssPages, s.numThreads);
      }
      if (table.size === 0 && failed > 0) throw new Error(`read ${procRoot}/<pid>/stat`, { cause: firstError });
      if (hiddenCount > 0 && !hiddenLogged) {
        hiddenLogged = true;
        ctx.logger.info({ hidden: hiddenCount }, "some processes are not readable (procfs hidepid?); they are left out");
      }

      // Whole-host totals and the CPU delta of every process.
      const processesByState: Record<string, number> = {};
      let totalThreads = 0;
      const dTotal = prevTotalTicks === undefined ? 0 : totalTicks - prevTotalTicks;
      const firstRun = prevTotalTicks === undefined;
      for (let i = 0; i < table.size; i++) {
        bump(processesByState, table.states[i]!);
        totalThreads += table.threads[i]!;
        const pid = table.pid[i]!;
        const start = table.start[i]!;
        const ticks = table.ticks[i]!;
        const before = prev.get(pid);
        let delta = 0;
        if (before !== undefined && before.start === start) {
          delta = ticks - before.ticks;
          if (!(delta >= 0)) delta = 0; // went backwards: no rate this time, never a negative one
        } else if (!firstRun && start >= prevUptimeTicks - CLK_TCK) {
          // New since the previous run (the one-tick margin covers uptime's rounding): all its time is ours.
          delta = ticks;
        }
        table.cpu[i] = dTotal > 0 ? Math.min(100, (delta * 100) / dTotal) : 0;
        // Reuse the entry objects of the previous map where possible.
        const entry = before ?? { start, ticks };
        entry.start = start;
        entry.ticks = ticks;
        next.set(pid, entry);
      }
      prev.clear();
      [prev, next] = [next, prev];
      prevTotalTicks = totalTicks;
      prevUptimeTicks = uptimeTicks;
      if (firstRun || !(dTotal > 0)) return [];

      // With all_thread_states every process's threads are counted (single-threaded ones cost nothing: their
      // leader's state is their only thread's); the listed ones then reuse their counts.
      const threadsByState: Record<string, number> = {};
      const known = new Map<number, Record<string, number> | undefined>();
      if (opts.allThreadStates) {
        for (let i = 0; i < table.size; i++) {
          if (i % YIELD_EVERY === YIELD_EVERY - 1) await new Promise<void>((resolve) => setImmediate(resolve));
          const byState = threadStates(i);
          known.set(i, byState);
          if (byState) for (const [k, v] of Object.entries(byState)) bump(threadsByState, k, v);
        }
      }

      const rows: ProcessRow[] = [];
      for (const i of selectTop(table.size, opts.topN, table.cpu, table.rss, table.pid)) {
        const byState = known.has(i) ? known.get(i) : threadStates(i);
        const counts = byState ? linuxLegacyCounts(byState) : undefined;
        const rssBytes = table.rss[i]! * pageSize;
        rows.push({
          pid: table.pid[i]!,
          name: table.names[i]!,
          cpuPercent: table.cpu[i]!,
          memPercent: (rssBytes * 100) / memTotal,
          memRssBytes: rssBytes,
          state: table.states[i]!,
          status: linuxLegacyStatus(byState ?? { [table.states[i]!]: 1 }),
          threadsTotal: byState ? Object.values(byState).reduce((a, b) => a + b, 0) : table.threads[i]!,
          threadsRunning: counts?.running,
          threadsRunnable: counts?.runnable,
          threadsWaiting: counts?.waiting,
          threadsByState: byState ?? {},
        });
      }
      return [
        processListPayload(rows, { totalProcesses: table.size, totalThreads, processesByState, threadsByState }),
      ];
    },
    close() {
      statFile.close();
      meminfoFile.close();
      uptimeFile.close();
    },
  };
}
