import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../../common/logger.js";
import type { ProcessInfo, ProcessList } from "../../../gen/spectra/v1/metrics_pb.js";
import { createHostAccess, type HostPaths } from "../../host/index.js";
import type { CollectorContext, Payload } from "../types.js";
import processes from "./index.js";
import { createLinuxProcessesCollector } from "./linux.js";

const testdata = path.join(import.meta.dirname, "testdata");
const signal = new AbortController().signal;
const ctxFor = (paths: Partial<HostPaths>, options: Record<string, unknown> = {}): CollectorContext => ({
  host: createHostAccess(paths, { platform: "linux" }),
  logger: silentLogger(),
  options,
});
const listOf = (p: Payload[] | symbol): ProcessList => {
  expect(Array.isArray(p)).toBe(true);
  const first = (p as Payload[])[0]!;
  expect(first.case).toBe("processList");
  return first.value as ProcessList;
};
const byPid = (l: ProcessList, pid: number): ProcessInfo => {
  const p = l.processes.find((x) => x.pid === pid);
  expect(p, `pid ${pid} listed`).toBeDefined();
  return p!;
};

const tmp: string[] = [];
afterEach(() => {
  for (const d of tmp.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A writable copy of the captured /proc pieces, with /proc/stat at the t0 snapshot. */
function fixtureProc(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "spectra-processes-"));
  tmp.push(root);
  const proc = path.join(root, "proc");
  fs.cpSync(path.join(testdata, "proc"), proc, { recursive: true });
  fs.copyFileSync(path.join(testdata, "deltas/proc-stat.t0"), path.join(proc, "stat"));
  // Directories that are not processes must be ignored.
  for (const d of ["self", "net", "sys"]) fs.mkdirSync(path.join(proc, d), { recursive: true });
  return proc;
}

/** Replaces fields (numbered as in proc(5): 14 utime, 15 stime, 22 starttime…) of a stat line. */
function withFields(line: string, fields: Record<number, number>): string {
  const close = line.lastIndexOf(")");
  const head = line.slice(0, close + 1);
  const rest = line.slice(close + 2).trimEnd().split(" ");
  for (const [k, v] of Object.entries(fields)) rest[Number(k) - 3] = String(v);
  return `${head} ${rest.join(" ")}\n`;
}

const PAGE = 4096;
const MEM_TOTAL = 24684084 * 1024;

describe("linux processes collector on the captured /proc pieces", () => {
  it("returns a baseline first, then every process with state, threads, memory and whole-host totals", async () => {
    const proc = fixtureProc();
    const c = createLinuxProcessesCollector(ctxFor({ procRoot: proc }), { pageSize: PAGE });
    expect(await c.collect(signal)).toEqual([]);
    fs.copyFileSync(path.join(testdata, "deltas/proc-stat.t1"), path.join(proc, "stat"));
    const l = listOf(await c.collect(signal));

    expect(l.totalProcesses).toBe(6);
    expect(l.totalThreads).toBe(14); // 9 for node, 1 each for the others
    expect(l.processesByState).toEqual({ S: 3, I: 1, T: 1, Z: 1 });
    expect(l.threadsByState).toEqual({}); // only with all_thread_states
    expect(l.processes.map((p) => p.pid).sort((a, b) => a - b)).toEqual([2, 4, 21726, 21732, 21733, 21737]);

    const node = byPid(l, 21733);
    expect(node).toMatchObject({
      name: "node",
      state: "S",
      status: "waiting",
      threadsTotal: 9,
      threadsRunning: 0,
      threadsWaiting: 9,
      threadsByState: { S: 9 },
      memRss: BigInt(15187 * PAGE),
      cpuPercent: 0, // the t0 and t1 stat of this process are identical
    });
    expect(node.threadsRunnable).toBeUndefined(); // Linux cannot tell runnable from running
    expect(node.memPercent).toBeCloseTo((15187 * PAGE * 100) / MEM_TOTAL, 6);
    // Memory is the tie-breaker when no process used CPU: node (most RSS) comes first.
    expect(l.processes[0]!.pid).toBe(21733);

    expect(byPid(l, 21732)).toMatchObject({ name: "a b) (c", state: "S", status: "waiting", threadsByState: { S: 1 } });
    expect(byPid(l, 21737)).toMatchObject({ name: "sleep", state: "Z", status: "other", threadsByState: { Z: 1 }, memRss: 0n });
    expect(byPid(l, 21726)).toMatchObject({ name: "sleep", state: "T", status: "other", threadsRunning: 0, threadsWaiting: 0 });
    // The idle kworker has no task/ directory in the capture: a single thread's state is the process's own.
    expect(byPid(l, 4)).toMatchObject({ name: "kworker/R-rcu_gp", state: "I", status: "waiting", threadsTotal: 1, threadsByState: { I: 1 } });
    await c.close?.();
  });

  it("computes CPU % of the whole machine from two snapshots, counting new processes in full", async () => {
    const proc = fixtureProc();
    const nodeStat = fs.readFileSync(path.join(testdata, "deltas/proc-pid-stat.t0"), "latin1");
    fs.writeFileSync(path.join(proc, "21733/stat"), nodeStat);
    const c = createLinuxProcessesCollector(ctxFor({ procRoot: proc }, { top_n: 2 }), { pageSize: PAGE });
    expect(await c.collect(signal)).toEqual([]);

    // t1: the machine advanced 258 ticks (deltas/proc-stat.t1); node used 100 + 29 of them (synthetic numbers);
    // pid 30000 started after the baseline (start 60000 > uptime 545.16 s × 100) and used 25 ticks.
    fs.copyFileSync(path.join(testdata, "deltas/proc-stat.t1"), path.join(proc, "stat"));
    fs.writeFileSync(path.join(proc, "21733/stat"), withFields(nodeStat, { 14: 19 + 100, 15: 5 + 29 }));
    fs.mkdirSync(path.join(proc, "30000"));
    fs.writeFileSync(path.join(proc, "30000/stat"), withFields(nodeStat.replace(/^21733/, "30000"), { 14: 20, 15: 5, 20: 1, 22: 60000, 24: 10 }));
    // pid 21732 was replaced by another process with the same pid (a new start time): its old counters do not count.
    fs.writeFileSync(path.join(proc, "21732/stat"), withFields(fs.readFileSync(path.join(proc, "21732/stat"), "latin1"), { 14: 7, 22: 54000 }));
    const l = listOf(await c.collect(signal));

    expect(l.totalProcesses).toBe(7);
    const node = byPid(l, 21733);
    expect(node.cpuPercent).toBeCloseTo((129 * 100) / 258, 9); // 50 %: one of the two cores
    expect(byPid(l, 30000).cpuPercent).toBeCloseTo((25 * 100) / 258, 9);
    // top_n 2: the two busiest by CPU, then the two largest by memory not already in (node is in both).
    expect(l.processes.map((p) => p.pid)).toEqual([21733, 30000, 21732]);
    expect(byPid(l, 21732).cpuPercent).toBe(0); // started before the baseline, never seen with this start time

    // A counter that goes backwards yields 0 for that run, never a negative value.
    fs.writeFileSync(path.join(proc, "stat"), fs.readFileSync(path.join(testdata, "deltas/proc-stat.t1"), "latin1").replace("cpu  33085", "cpu  33185"));
    fs.writeFileSync(path.join(proc, "21733/stat"), nodeStat);
    const again = listOf(await c.collect(signal));
    expect(byPid(again, 21733).cpuPercent).toBe(0);
    await c.close?.();
  });

  it("skips processes that vanish mid-run (no stat, empty stat, no task/ directory) without failing", async () => {
    const proc = fixtureProc();
    // Listed but gone before its stat was read; an empty stat (being reaped); garbage.
    fs.mkdirSync(path.join(proc, "40000"));
    fs.mkdirSync(path.join(proc, "40001"));
    fs.writeFileSync(path.join(proc, "40001/stat"), "");
    fs.mkdirSync(path.join(proc, "40002"));
    fs.writeFileSync(path.join(proc, "40002/stat"), "\x00\x00garbage");
    const c = createLinuxProcessesCollector(ctxFor({ procRoot: proc }), { pageSize: PAGE });
    expect(await c.collect(signal)).toEqual([]);
    // node exits between its stat and its task/ listing: it is still listed, with its thread count from stat.
    fs.rmSync(path.join(proc, "21733/task"), { recursive: true });
    fs.copyFileSync(path.join(testdata, "deltas/proc-stat.t1"), path.join(proc, "stat"));
    const l = listOf(await c.collect(signal));
    expect(l.totalProcesses).toBe(6);
    expect(byPid(l, 21733)).toMatchObject({ threadsTotal: 9, threadsByState: {}, status: "waiting" });
    expect(byPid(l, 21733).threadsRunning).toBeUndefined();
    await c.close?.();
  });

  it("counts the threads of the whole host by state with all_thread_states", async () => {
    const proc = fixtureProc();
    const c = createLinuxProcessesCollector(ctxFor({ procRoot: proc }, { all_thread_states: true, top_n: 1 }), { pageSize: PAGE });
    await c.collect(signal);
    fs.copyFileSync(path.join(testdata, "deltas/proc-stat.t1"), path.join(proc, "stat"));
    const l = listOf(await c.collect(signal));
    expect(l.threadsByState).toEqual({ S: 11, I: 1, T: 1, Z: 1 });
    expect(l.processes.map((p) => p.pid)).toEqual([21733]);
    expect(byPid(l, 21733).threadsByState).toEqual({ S: 9 });
  });

  it("validates its options once, at creation", () => {
    for (const bad of [0, -1, 1.5, "20", 10_001]) {
      expect(() => createLinuxProcessesCollector(ctxFor({}, { top_n: bad }))).toThrow(/top_n must be an integer/);
    }
    expect(() => createLinuxProcessesCollector(ctxFor({}, { all_thread_states: "yes" }))).toThrow(/all_thread_states/);
  });

  it("fails with the path when procfs is unreadable", async () => {
    const c = createLinuxProcessesCollector(ctxFor({ procRoot: "/nonexistent/proc" }));
    await expect(c.collect(signal)).rejects.toThrow("read /nonexistent/proc/stat");
  });

  it("lists this machine's processes, including this test's own", async () => {
    const c = await processes.create(ctxFor({}, { top_n: 10_000 }));
    expect(await c.collect(signal)).toEqual([]);
    const end = Date.now() + 500;
    while (Date.now() < end) Math.sqrt(Math.random()); // some CPU time for this process
    const before = fs.readdirSync("/proc").filter((n) => /^\d+$/.test(n)).length;
    const l = listOf(await c.collect(signal));
    const after = fs.readdirSync("/proc").filter((n) => /^\d+$/.test(n)).length;
    // Other work on the machine starts and ends processes meanwhile: a loose bound.
    expect(l.totalProcesses).toBeGreaterThanOrEqual(Math.min(before, after) * 0.75);
    expect(l.totalProcesses).toBeLessThanOrEqual(Math.max(before, after) * 1.25 + 10);
    expect(l.totalThreads).toBeGreaterThanOrEqual(l.totalProcesses);
    const me = byPid(l, process.pid);
    expect(me.cpuPercent).toBeGreaterThan(0);
    expect(me.cpuPercent).toBeLessThanOrEqual(100);
    expect(me.threadsTotal).toBeGreaterThan(1); // node has worker threads
    expect(Object.values(me.threadsByState).reduce((a, b) => a + b, 0)).toBe(me.threadsTotal);
    const rss = process.memoryUsage().rss;
    expect(Number(me.memRss)).toBeGreaterThan(rss / 2);
    expect(Number(me.memRss)).toBeLessThan(rss * 2);
    // Each process is a share of the whole machine; over a short interval the per-process tick sampling jitters
    // by a tick or two, so the sum gets a small margin.
    let sum = 0;
    for (const p of l.processes) {
      expect(p.cpuPercent).toBeGreaterThanOrEqual(0);
      expect(p.cpuPercent).toBeLessThanOrEqual(100);
      sum += p.cpuPercent;
    }
    expect(sum).toBeLessThanOrEqual(115);
    await c.close?.();
  });
});
