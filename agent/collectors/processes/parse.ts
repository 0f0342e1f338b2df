/**
 * Pure parsers for the Linux processes collector. Samples: testdata/proc/<pid>/stat (captured, including a comm
 * with spaces and ')'), testdata/proc/stat, testdata/proc/meminfo, testdata/proc/uptime.
 */

/** USER_HZ: the unit of utime/stime/starttime. 100 on every mainstream Linux (x86, arm, arm64, ppc, s390, riscv). */
export const CLK_TCK = 100;

/** The fields of `/proc/<pid>/stat` the collector uses. A scratch object the parser fills (no allocation per pid). */
export interface PidStat {
  /** comm: at most 15 bytes for user processes; may contain spaces and ')'. */
  name: string;
  /** Kernel state letter (R, S, D, Z, T, t, X, I, …). */
  state: string;
  /** utime + stime, in USER_HZ ticks. */
  ticks: number;
  numThreads: number;
  /** Start time in ticks since boot (with the pid, the identity of a process across runs: pids get reused). */
  startTicks: number;
  /** Resident set in pages. */
  rssPages: number;
}

/** A fresh scratch object for {@link parsePidStat}. */
export function newPidStat(): PidStat {
  return { name: "", state: "", ticks: 0, numThreads: 0, startTicks: 0, rssPages: 0 };
}

const OPEN_PAREN = 0x28;
const CLOSE_PAREN = 0x29;
const SPACE = 0x20;
const MINUS = 0x2d;

// Field positions counted from the state letter (state = 0): stat(5) numbers them from 1 with pid = 1, comm = 2.
const F_UTIME = 11;
const F_STIME = 12;
const F_NUM_THREADS = 17;
const F_STARTTIME = 19;
const F_RSS = 21;

/**
 * Parses `/proc/<pid>/stat` from the first `len` bytes of `buf` into `out`; returns false for anything that is not
 * a complete stat line. The comm is taken between the FIRST '(' and the LAST ')': a comm may itself contain spaces
 * and ')' (captured pid 21732 has comm `a b) (c`), but nothing after the comm can contain ')'. Works on bytes so a
 * run over a thousand processes allocates only the names.
 */
export function parsePidStat(buf: Buffer, len: number, out: PidStat): boolean {
  const end = Math.min(len, buf.length);
  let open = -1;
  for (let i = 0; i < end; i++) {
    if (buf[i] === OPEN_PAREN) {
      open = i;
      break;
    }
  }
  let close = -1;
  for (let i = end - 1; i > open; i--) {
    if (buf[i] === CLOSE_PAREN) {
      close = i;
      break;
    }
  }
  if (open < 0 || close < 0 || close + 2 >= end) return false;
  const stateCode = buf[close + 2]!;
  if (stateCode === SPACE) return false;

  let utime = -1;
  let stime = -1;
  let threads = -1;
  let start = -1;
  let rss = -1;
  let field = 0;
  let pos = close + 3;
  while (pos < end && field < F_RSS) {
    // At a separator: the next field starts after it.
    if (buf[pos] !== SPACE) return false;
    pos++;
    field++;
    let neg = false;
    if (buf[pos] === MINUS) {
      neg = true;
      pos++;
    }
    let n = 0;
    let digits = 0;
    while (pos < end) {
      const c = buf[pos]!;
      if (c < 0x30 || c > 0x39) break;
      n = n * 10 + (c - 0x30);
      digits++;
      pos++;
    }
    if (digits === 0) return false;
    if (neg) n = -n;
    switch (field) {
      case F_UTIME:
        utime = n;
        break;
      case F_STIME:
        stime = n;
        break;
      case F_NUM_THREADS:
        threads = n;
        break;
      case F_STARTTIME:
        start = n;
        break;
      case F_RSS:
        rss = n;
        break;
    }
  }
  if (rss < 0 || utime < 0 || stime < 0 || threads < 0 || start < 0) return false;
  out.name = buf.toString("utf8", open + 1, close);
  out.state = String.fromCharCode(stateCode);
  out.ticks = utime + stime;
  out.numThreads = threads;
  out.startTicks = start;
  out.rssPages = rss;
  return true;
}

/** The state letter of a `/proc/<pid>/task/<tid>/stat` line (the character after ") "), or "" for garbage. */
export function statStateLetter(buf: Buffer, len: number): string {
  const end = Math.min(len, buf.length);
  for (let i = end - 1; i >= 0; i--) {
    if (buf[i] !== CLOSE_PAREN) continue;
    if (i + 2 >= end || buf[i + 1] !== SPACE) return "";
    const c = buf[i + 2]!;
    return c === SPACE ? "" : String.fromCharCode(c);
  }
  return "";
}

/**
 * Sum of the aggregate `cpu` line of `/proc/stat` (user nice system idle iowait irq softirq steal) in USER_HZ: the
 * whole machine's elapsed CPU time, all cores together. guest/guest_nice are left out because the kernel already
 * counts them in user/nice (the same rule as the cpu collector). Undefined when the line is missing or garbled.
 */
export function parseCpuTotalTicks(text: string): number | undefined {
  if (!text.startsWith("cpu ")) return undefined;
  let end = text.indexOf("\n");
  if (end < 0) end = text.length;
  const parts = text.slice(4, end).trim().split(/\s+/);
  if (parts.length < 4) return undefined;
  let sum = 0;
  for (let i = 0; i < parts.length && i < 8; i++) {
    const n = Number(parts[i]);
    if (!Number.isFinite(n) || n < 0) return undefined;
    sum += n;
  }
  return sum;
}

/** `MemTotal` of `/proc/meminfo` in bytes, or undefined. */
export function parseMemTotalBytes(text: string): number | undefined {
  const m = /^MemTotal:\s+(\d+)\s*kB/m.exec(text);
  if (!m) return undefined;
  const kb = Number(m[1]);
  return kb > 0 ? kb * 1024 : undefined;
}

/** Seconds since boot: the first number of `/proc/uptime`, or undefined. */
export function parseUptimeSeconds(text: string): number | undefined {
  const n = Number.parseFloat(text);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

/** Legacy `status` values of `process_list` (docs legacy-api.md). */
export type LegacyStatus = "running" | "runnable" | "waiting" | "other";

/**
 * Linux letters that mean "waiting for something": S (sleeping), D (uninterruptible, usually I/O), I (idle kernel
 * thread), and the letters of old kernels P (parked), W (paging/waking), K (wakekill).
 */
const LINUX_WAITING = new Set(["S", "D", "I", "P", "W", "K"]);

/** The legacy thread counts of one Linux process. */
export interface LegacyThreadCounts {
  running: number;
  /** Undefined on Linux: the kernel's R covers both "on a CPU" and "queued for one" and does not tell them apart. */
  runnable: number | undefined;
  waiting: number;
}

/**
 * Legacy counts from Linux thread states: running = R, waiting = S + D + I (+ old P/W/K); Z, T, t, X count in
 * neither. runnable stays unknown (see {@link LegacyThreadCounts.runnable}).
 */
export function linuxLegacyCounts(byState: Readonly<Record<string, number>>): LegacyThreadCounts {
  let running = 0;
  let waiting = 0;
  for (const [letter, n] of Object.entries(byState)) {
    if (letter === "R") running += n;
    else if (LINUX_WAITING.has(letter)) waiting += n;
  }
  return { running, runnable: undefined, waiting };
}

/**
 * Legacy `status` of a Linux process from its threads' states: "running" when any thread is R (a process whose
 * leader sleeps while a worker computes is running — `/proc/<pid>/stat` alone shows only the leader), else
 * "waiting" when any thread waits (S, D, I…), else "other" (zombie, stopped, traced, dead). Linux never yields
 * "runnable".
 */
export function linuxLegacyStatus(byState: Readonly<Record<string, number>>): LegacyStatus {
  const c = linuxLegacyCounts(byState);
  if (c.running > 0) return "running";
  if (c.waiting > 0) return "waiting";
  return "other";
}

/** Adds `n` to `counts[key]`. */
export function bump(counts: Record<string, number>, key: string, n = 1): void {
  counts[key] = (counts[key] ?? 0) + n;
}
