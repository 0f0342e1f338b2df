import { spawn, type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../../common/logger.js";
import type { ProcessList } from "../../../gen/spectra/v1/metrics_pb.js";
import { createHostAccess } from "../../host/index.js";
import { defaultTimeoutMs } from "../../scheduler.js";
import { NO_DATA, type Collector, type Payload } from "../types.js";
import processes from "./index.js";

/**
 * The load case: a process table of 1,000+ processes, collected by the real collector against the real
 * /proc within the collector's timeout. The children are `sleep 30`: bounded in count and in lifetime (they end by
 * themselves even if this worker dies), and all killed in afterAll whatever happened.
 */
const CHILDREN = 1_000;
const children: ChildProcess[] = [];

beforeAll(async () => {
  for (let i = 0; i < CHILDREN; i++) {
    const child = spawn("sleep", ["30"], { stdio: "ignore", detached: false });
    children.push(child);
    child.on("error", () => {}); // reported below through the missing pid
  }
  // uv_spawn returns once the child has exec'd, so each is already `sleep` in /proc.
  expect(children.filter((c) => c.pid === undefined)).toHaveLength(0);
}, 120_000);

afterAll(async () => {
  const exits = children
    .filter((c) => c.exitCode === null && c.signalCode === null && c.pid !== undefined)
    .map((c) => new Promise<void>((resolve) => c.once("exit", () => resolve())));
  for (const c of children) {
    try {
      c.kill("SIGKILL");
    } catch {
      /* already gone */
    }
  }
  await Promise.race([Promise.all(exits), new Promise((resolve) => setTimeout(resolve, 10_000))]);
}, 30_000);

/** One run with the collector's own timeout (as the scheduler applies it), returning its output and duration. */
async function timedRun(c: Collector, timeoutMs: number): Promise<{ out: Payload[]; ms: number }> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
  const started = performance.now();
  try {
    const out = await Promise.race([
      c.collect(controller.signal),
      new Promise<never>((_, reject) => controller.signal.addEventListener("abort", () => reject(controller.signal.reason))),
    ]);
    if (out === NO_DATA) throw new Error("unexpected NO_DATA");
    return { out, ms: performance.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

describe("processes collector with 1,000+ processes", () => {
  it("collects the real process table within its timeout and finds every child", async () => {
    const timeoutMs = defaultTimeoutMs(processes.defaultIntervalMs);
    const host = createHostAccess({}, { platform: "linux" });
    const c = await processes.create({ host, logger: silentLogger(), options: {} });
    const times: number[] = [];
    let list: ProcessList | undefined;
    for (let run = 0; run < 4; run++) {
      const { out, ms } = await timedRun(c, timeoutMs);
      times.push(ms);
      if (run === 0) expect(out).toEqual([]);
      else list = out[0]!.value as ProcessList;
    }
    await c.close?.();
    expect(list!.totalProcesses).toBeGreaterThanOrEqual(CHILDREN);
    expect(list!.totalThreads).toBeGreaterThanOrEqual(list!.totalProcesses);
    expect(list!.processesByState["S"]).toBeGreaterThanOrEqual(CHILDREN);
    expect(list!.processes.length).toBeGreaterThanOrEqual(20);
    expect(list!.processes.length).toBeLessThanOrEqual(40);
    console.log(
      `processes: ${list!.totalProcesses} processes, ${list!.totalThreads} threads; ` +
        `ms per run (baseline, then 3 runs): ${times.map((t) => t.toFixed(1)).join(", ")} (timeout ${timeoutMs} ms)`,
    );

    // Every child is in the table with its name and state (a top_n large enough to list them all).
    const all = await processes.create({ host, logger: silentLogger(), options: { top_n: 10_000, all_thread_states: true } });
    await timedRun(all, timeoutMs);
    const { out, ms } = await timedRun(all, timeoutMs);
    await all.close?.();
    const full = out[0]!.value as ProcessList;
    const listed = new Map(full.processes.map((p) => [p.pid, p]));
    for (const child of children) {
      const p = listed.get(child.pid!);
      expect(p, `child ${child.pid}`).toBeDefined();
      expect(p).toMatchObject({ name: "sleep", state: "S", status: "waiting", threadsTotal: 1, threadsByState: { S: 1 } });
    }
    const threadSum = Object.values(full.threadsByState).reduce((a, b) => a + b, 0);
    expect(Math.abs(threadSum - full.totalThreads)).toBeLessThan(50); // threads come and go between the reads
    console.log(`processes: every process listed, with all thread states: ${ms.toFixed(1)} ms per run`);
  }, 120_000);
});
