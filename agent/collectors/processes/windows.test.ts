import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../../common/logger.js";
import type { ProcessList } from "../../../gen/spectra/v1/metrics_pb.js";
import { createHostAccess } from "../../host/index.js";
import type { PowerShellQuery } from "../../host/powershell.js";
import type { Payload } from "../types.js";
import { createWindowsProcessesCollector, PROCESSES_SCRIPT } from "./windows.js";
import { parseWindowsProcesses, summarizeWindowsThreads } from "./windows-parse.js";

const testdata = path.join(import.meta.dirname, "testdata/windows");
const read = (f: string): string => fs.readFileSync(path.join(testdata, f), "utf8");
const signal = new AbortController().signal;

describe("parseWindowsProcesses", () => {
  it("reads the rows, CPU times in 100 ns and the thread counts", () => {
    const snap = parseWindowsProcesses(read("processes.t0.json"));
    expect(snap.timestampMs).toBe(1000000.125);
    expect(snap.processes).toHaveLength(6);
    expect(snap.processes[2]).toEqual({
      pid: 1234,
      name: "chrome.exe",
      threadCount: 40,
      workingSetBytes: 314572800,
      cpuTime100ns: 500000000,
      createdMs: Date.parse("2026-11-20T07:00:00Z"),
      threadCounts: [0, 1, 2, 0, 0, 37, 0, 0, 0],
    });
    expect(snap.processes[0]!.createdMs).toBeUndefined();
    expect(snap.processes[5]!.threadCounts).toBeUndefined();
  });

  it("accepts a lone object after a BOM, numbers as strings and /Date(ms)/", () => {
    const snap = parseWindowsProcesses(read("processes-single-bom.json"));
    expect(snap.processes).toEqual([
      {
        pid: 812,
        name: "notepad.exe",
        threadCount: 3,
        workingSetBytes: 16777216,
        cpuTime100ns: 468750,
        createdMs: 1795158000000,
        threadCounts: [0, 0, 0, 0, 0, 3, 0, 0, 0],
      },
    ]);
  });

  it("throws the error answer", () => {
    expect(() => parseWindowsProcesses(read("processes-error.json"))).toThrow(/Win32_Process: Invalid class/);
  });
});

describe("summarizeWindowsThreads", () => {
  it("maps thread states to the legacy counts and a process state", () => {
    expect(summarizeWindowsThreads([0, 1, 2, 1, 0, 37, 0, 0, 0])).toEqual({
      byState: { Ready: 1, Running: 2, Standby: 1, Wait: 37 },
      running: 2,
      runnable: 2,
      waiting: 37,
      state: "Running",
      status: "running",
    });
    expect(summarizeWindowsThreads([0, 1, 0, 0, 0, 3, 0, 0, 0])).toMatchObject({ state: "Ready", status: "runnable" });
    expect(summarizeWindowsThreads([0, 0, 0, 0, 0, 11, 1, 0, 0])).toMatchObject({ state: "Wait", status: "waiting", waiting: 12 });
    expect(summarizeWindowsThreads([0, 0, 0, 0, 0, 18, 0, 0, 18])).toMatchObject({ state: "Suspended", status: "waiting" });
    expect(summarizeWindowsThreads([0, 0, 0, 0, 2, 0, 0, 0, 0])).toMatchObject({ state: "Unknown", status: "other" });
    expect(summarizeWindowsThreads(new Array(9).fill(0))).toMatchObject({ state: "", status: "other" });
  });
});

describe("windows processes collector", () => {
  it("computes CPU % of the whole machine from two snapshots and fills the totals", async () => {
    const answers = [read("processes.t0.json"), read("processes.t1.json")];
    let i = 0;
    const ps: PowerShellQuery = {
      query: async (script) => {
        expect(script).toBe(PROCESSES_SCRIPT);
        return answers[i++]!;
      },
    };
    let wall = Date.parse("2026-11-20T08:00:00Z");
    const c = createWindowsProcessesCollector(
      { host: createHostAccess({}, { platform: "windows" }), logger: silentLogger(), options: { top_n: 2 } },
      { ps, cpuCount: () => 4, totalMemBytes: () => 8 * 1024 ** 3, nowMs: () => (wall += 5000) - 5000 },
    );
    expect(await c.collect(signal)).toEqual([]);
    const l = (await c.collect(signal) as Payload[])[0]!.value as ProcessList;

    // Top 2 by CPU (chrome 50 %, msbuild 2 %), then top 2 by memory not already in (MsMpEng).
    expect(l.processes.map((p) => p.pid)).toEqual([1234, 9100, 7000]);
    const [chrome, msbuild, defender] = l.processes;
    expect(chrome).toMatchObject({
      name: "chrome.exe",
      state: "Running",
      status: "running",
      threadsTotal: 41,
      threadsRunning: 2,
      threadsRunnable: 2,
      threadsWaiting: 37,
      memRss: 324572800n,
    });
    expect(chrome!.cpuPercent).toBeCloseTo(50, 9);
    expect(chrome!.memPercent).toBeCloseTo((324572800 * 100) / (8 * 1024 ** 3), 9);
    expect(msbuild!.cpuPercent).toBeCloseTo(2, 9); // created during the interval: all its time counts
    expect(defender).toMatchObject({ state: "", status: "other", threadsByState: {} });
    expect(defender!.threadsRunning).toBeUndefined();

    expect(l.totalProcesses).toBe(6); // the Idle pseudo-process is left out
    expect(l.totalThreads).toBe(160 + 41 + 12 + 18 + 50 + 9);
    expect(l.processesByState).toEqual({ Wait: 3, Running: 1, Suspended: 1 });
    expect(l.threadsByState).toEqual({ Wait: 160 + 37 + 11 + 18 + 8, Ready: 1, Running: 2, Standby: 1, Transition: 1, Initialized: 1 });
  });

  it("fails the run on the error answer", async () => {
    const c = createWindowsProcessesCollector(
      { host: createHostAccess({}, { platform: "windows" }), logger: silentLogger(), options: {} },
      { ps: { query: async () => read("processes-error.json") } },
    );
    await expect(c.collect(signal)).rejects.toThrow(/Invalid class/);
  });
});
