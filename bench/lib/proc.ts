/**
 * Process helpers for the benchmarks: CPU and memory of a process from /proc, starting the compiled server and
 * VictoriaMetrics as children on loopback, stopping them (SIGTERM, then SIGKILL after a bound), and making sure no
 * child outlives the bench (exit handlers).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, readdirSync, readFileSync, type WriteStream } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { launchFromShebang } from "../../agent/v8-flags.js";

export const root = join(import.meta.dirname, "..", "..", "..");
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const CLK_TCK = 100; // USER_HZ on Linux

/** CPU seconds (user + system, all threads) of a process, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields after "(comm) ": state(0) … utime(11) stime(12)
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/** CPU seconds of every process with this command name (e.g. "postgres": the server and its backends), by pid. */
export function cpuSecondsByName(comm: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, "utf8").trim() !== comm) continue;
      out.set(Number(d), cpuSeconds(Number(d)));
    } catch {
      // gone
    }
  }
  return out;
}

/** CPU seconds spent between two cpuSecondsByName snapshots (processes that appeared count in full). */
export function cpuSecondsBetween(a: Map<number, number>, b: Map<number, number>): number {
  let s = 0;
  for (const [pid, v] of b) s += v - (a.get(pid) ?? 0);
  return s;
}

/** CPU seconds all processes of the machine spent busy (not idle or iowait), from /proc/stat. */
export function systemBusySeconds(): number {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0); // user nice system idle iowait irq softirq steal
  return (total - f[3]! - f[4]!) / CLK_TCK;
}

/** RSS and peak RSS in MiB, from /proc/<pid>/status. */
export function memoryMiB(pid: number): { rss: number; peak: number } {
  const out = { rss: Number.NaN, peak: Number.NaN };
  for (const line of readFileSync(`/proc/${pid}/status`, "utf8").split("\n")) {
    const m = /^(VmRSS|VmHWM):\s+(\d+) kB/.exec(line);
    if (m) out[m[1] === "VmRSS" ? "rss" : "peak"] = Number(m[2]) / 1024;
  }
  return out;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => (typeof a === "object" && a ? resolve(a.port) : reject(new Error("no port"))));
    });
  });
}

const live = new Set<ChildProcess>();
const cleanups = new Set<() => unknown>();
let hooked = false;

/** Runs `fn` when the bench is interrupted (SIGINT, SIGTERM, SIGHUP) before its own cleanup; returns the unregister. */
export function onInterrupt(fn: () => unknown): () => void {
  hookExit();
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

/** Kills every child still running when the bench exits, however it exits; runs the interrupt cleanups on signals. */
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const killAll = () => {
    for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  };
  process.on("exit", killAll);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(sig, () => {
      process.stderr.write(`\n${sig}: stopping children and cleaning up\n`);
      killAll();
      const all = Promise.allSettled([...cleanups].map(async (fn) => fn()));
      const bound = new Promise((r) => setTimeout(r, 15_000).unref());
      void Promise.race([all, bound]).then(() => process.exit(130));
    });
  }
}

/** A child process with its output in a log file. */
export interface Child {
  proc: ChildProcess;
  pid: number;
  log: string;
  /** Resolves with the exit code or signal name. */
  exited: Promise<string>;
  /** Lines of its stdout+stderr seen so far (last 200). */
  tail: string[];
}

export function startChild(cmd: string, args: string[], logFile: string, env: NodeJS.ProcessEnv = process.env): Child {
  hookExit();
  const proc = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env });
  live.add(proc);
  const out: WriteStream = createWriteStream(logFile);
  const tail: string[] = [];
  let partial = "";
  const onData = (d: Buffer) => {
    out.write(d);
    const text = partial + d.toString("utf8");
    const lines = text.split("\n");
    partial = lines.pop()!;
    for (const l of lines) {
      tail.push(l);
      if (tail.length > 200) tail.shift();
    }
  };
  proc.stdout!.on("data", onData);
  proc.stderr!.on("data", onData);
  const exited = new Promise<string>((resolve) => {
    proc.on("exit", (code, signal) => {
      live.delete(proc);
      out.end();
      resolve(signal ?? String(code));
    });
  });
  if (proc.pid === undefined) throw new Error(`cannot start ${cmd}`);
  return { proc, pid: proc.pid, log: logFile, exited, tail };
}

/** Waits until a line of the child's output matches (bounded). */
export async function waitForLine(c: Child, re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeoutMs;
  let seen = 0;
  for (;;) {
    for (; seen < c.tail.length; seen++) {
      const m = re.exec(c.tail[seen]!);
      if (m) return m;
    }
    if (c.proc.exitCode !== null || c.proc.signalCode !== null) {
      throw new Error(`${c.log}: the process exited before it was ready:\n${c.tail.slice(-20).join("\n")}`);
    }
    if (Date.now() > deadline) throw new Error(`${c.log}: not ready after ${timeoutMs} ms:\n${c.tail.slice(-20).join("\n")}`);
    // lines may have been dropped from the front of tail; rescan from the start is fine (bounded by 200)
    if (seen > c.tail.length) seen = 0;
    await sleep(50);
  }
}

/** SIGTERM, wait up to `graceMs` for exit, then SIGKILL. Returns how it ended and how long it took. */
export async function stopChild(c: Child, graceMs: number): Promise<{ how: string; ms: number; killed: boolean }> {
  const t0 = Date.now();
  if (c.proc.exitCode !== null || c.proc.signalCode !== null) return { how: await c.exited, ms: 0, killed: false };
  c.proc.kill("SIGTERM");
  const timer = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), graceMs).unref());
  const r = await Promise.race([c.exited, timer]);
  if (r === "timeout") {
    c.proc.kill("SIGKILL");
    return { how: `SIGKILL after ${graceMs} ms (${await c.exited})`, ms: Date.now() - t0, killed: true };
  }
  return { how: r, ms: Date.now() - t0, killed: false };
}

export function median(xs: number[]): number {
  return percentile(xs, 50);
}

/** Nearest-rank percentile. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * s.length);
  return s[Math.min(s.length - 1, Math.max(0, rank - 1))]!;
}

export function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return "–";
  return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

export function argNumber(name: string, def: number): number {
  const v = argValue(name);
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name} needs a number, got ${v}`);
  return n;
}

export function hasFlag(name: string): boolean {
  return process.argv.includes(`--${name}`);
}

/**
 * Waits (at most `maxWaitS`) until the machine's CPU use over 3 s is under 25 % of one core, so that other processes
 * do not take the cores a measurement needs; says so when it never gets quiet.
 */
export async function waitQuiet(what: string, maxWaitS: number, log: (msg: string) => void): Promise<void> {
  const deadline = Date.now() + maxWaitS * 1000;
  for (;;) {
    const b0 = systemBusySeconds();
    await sleep(3_000);
    const busy = ((systemBusySeconds() - b0) / 3) * 100;
    if (busy < 25) {
      log(`${what}: machine quiet (${fmt(busy)} % of one core busy over 3 s)`);
      return;
    }
    if (Date.now() > deadline) {
      log(`${what}: the machine is NOT quiet (${fmt(busy)} % of one core busy): other processes will distort the figures`);
      return;
    }
    log(`${what}: waiting for a quiet machine (${fmt(busy)} % of one core busy)`);
  }
}

/**
 * How the agent at `file` is started as installed: its `#!` line's environment and node flags (the `spectra-agent`
 * bin runs through `env -S`; agent/v8-flags.ts AGENT_LAUNCH), here with this process's node. `plain` gives
 * `node <file>` without them, the way the agent was started before its launch line existed (for comparisons).
 */
export function agentCommand(file: string, args: string[], plain = false): { cmd: string; args: string[]; env: NodeJS.ProcessEnv } {
  const launch = plain ? { env: {}, nodeFlags: [] } : launchFromShebang(readFileSync(file, "utf8").slice(0, 512).split("\n")[0] ?? "");
  return { cmd: process.execPath, args: [...launch.nodeFlags, file, ...args], env: { ...process.env, ...launch.env } };
}

/** Memory of a process from /proc/<pid>/status, in MiB: RSS, peak RSS (VmHWM), anonymous and file-backed RSS. */
export function memoryDetailMiB(pid: number): { rss: number; peak: number; anon: number; file: number } {
  const out = { rss: Number.NaN, peak: Number.NaN, anon: Number.NaN, file: Number.NaN };
  const keys: Record<string, keyof typeof out> = { VmRSS: "rss", VmHWM: "peak", RssAnon: "anon", RssFile: "file" };
  for (const line of readFileSync(`/proc/${pid}/status`, "utf8").split("\n")) {
    const m = /^(VmRSS|VmHWM|RssAnon|RssFile):\s+(\d+) kB/.exec(line);
    if (m) out[keys[m[1]!]!] = Number(m[2]) / 1024;
  }
  return out;
}

/** On-CPU nanoseconds of every thread of a process, from /proc/<pid>/task/<tid>/schedstat (finer than stat's ticks). */
export function threadsCpuNs(pid: number): number {
  let total = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    } catch {
      // a thread that ended between readdir and read
    }
  }
  return total;
}
