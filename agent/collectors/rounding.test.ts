/**
 * The values the collectors compute as ratios leave the agent rounded (common/round.ts): percentages and counts per
 * second with two decimals, bytes per second whole. Checked on each payload builder with inputs at full precision.
 */
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { containerListPayload } from "./containers/payload.js";
import { cpuResultFromRates, cpuUsageFromDeltas, parseProcStatCpu } from "./cpu/parse.js";
import { diskIoFromRates } from "./disk-io/parse.js";
import { diskIoPayload } from "./disk-io/payload.js";
import { diskUsageFromStatfs } from "./disk/parse.js";
import { memoryResult } from "./memory/parse.js";
import { memoryPayload } from "./memory/payload.js";
import { networkPayload } from "./network/payload.js";
import { computeRates } from "./rate.js";

/** v has at most `d` decimals (v · 10^d is an integer, as the chunk codec's decimal mode needs). */
function decimals(v: number, d: number): boolean {
  const n = Math.round(v * 10 ** d);
  return n / 10 ** d === v;
}

describe("collectors send rounded ratios", () => {
  it("cpu: total, cores, iowait and steal with two decimals", () => {
    const read = (p: string) => fs.readFileSync(path.join(import.meta.dirname, "cpu", "testdata", p), "latin1");
    const rates = computeRates(parseProcStatCpu(read("deltas/proc-stat.t0")), parseProcStatCpu(read("deltas/proc-stat.t1")), 1276);
    const r = cpuResultFromRates(rates)!;
    const raw = cpuUsageFromDeltas(rates.get("cpu")!.deltas);
    expect(decimals(raw.busy, 4)).toBe(false); // the fixture's ratio has many decimals
    expect(r.usage).toBe(Math.round(raw.busy * 100) / 100);
    expect(r.iowait).toBe(Math.round(raw.iowait * 100) / 100);
    expect(r.cores[1]).toBe(Math.round(cpuUsageFromDeltas(rates.get("cpu1")!.deltas).busy * 100) / 100);
    for (const v of [r.usage, r.iowait, r.steal, ...r.cores]) expect(decimals(v, 2)).toBe(true);
  });

  it("memory: percentages with two decimals, byte counts unchanged", () => {
    const p = memoryPayload(memoryResult(16_473_849_856, 9_123_456_789, 2_147_479_552, 1_234_567_890));
    if (p.case !== "memory") throw new Error(p.case);
    expect(p.value.ramUsedPct).toBe(44.62); // 44.6195…
    expect(p.value.swapPct).toBe(42.51); // 42.5103…
    expect(p.value.ramUsed).toBe(16_473_849_856n - 9_123_456_789n);
  });

  it("disk: used and inode percentages with two decimals", () => {
    const u = diskUsageFromStatfs({ bsize: 4096n, blocks: 1_000_003n, bfree: 333_333n, bavail: 300_001n, files: 65_536n, ffree: 12_345n });
    expect(u.usedPct).toBe(68.97); // 666,670 / (666,670 + 300,001) = 68.966…%
    expect(u.inodesPct).toBe(81.16); // 53,191 / 65,536 = 81.163…%
  });

  it("disk_io: bytes per second whole, operations and latencies with two decimals", () => {
    const r = diskIoFromRates({ deltas: new Array<number>(11).fill(0), perSecond: new Array<number>(11).fill(0) });
    const p = diskIoPayload("vda", {
      ...r,
      readBytesPerSec: 164_397_021.94,
      writeBytesPerSec: 0.4,
      readOpsPerSec: 163.79310344827587,
      writeOpsPerSec: 199.8432601880878,
      readTimeMs: 159,
      writeTimeMs: 99.00000000000001,
      readLatencyMs: 159 / 209,
      writeLatencyMs: 99 / 255,
    }, 1.2);
    if (p.case !== "diskIo") throw new Error(p.case);
    expect(p.value.readBytes).toBe(164_397_022);
    expect(p.value.writeBytes).toBe(0);
    expect(p.value.readOps).toBe(163.79);
    expect(p.value.writeOps).toBe(199.84);
    expect(p.value.writeTimeMs).toBe(99);
    expect(p.value.readLatencyMs).toBe(0.76);
    expect(p.value.writeLatencyMs).toBe(0.39);
    expect(p.value.ioInProgress).toBe(1n);
  });

  it("network: bytes per second whole, packets, errors and drops with two decimals", () => {
    const s = 5.003;
    const perSecond = [1_234_567 / s, 1_372 / s, 0, 1 / s, 98_765 / s, 91 / s, 0, 0];
    const p = networkPayload("eth0", { deltas: perSecond.map((x) => x * s), perSecond }, { mac: "", mtu: 1500, speedMbps: 1000 });
    if (p.case !== "network") throw new Error(p.case);
    expect(p.value.rxBytes).toBe(246_765); // 246,765.34…
    expect(p.value.txBytes).toBe(19_741); // 19,740.9…
    expect(p.value.rxPackets).toBe(274.24); // 274.235…
    expect(p.value.rxDrops).toBe(0.2); // 0.19988…
    expect(p.value.txPackets).toBe(18.19);
    expect(p.value.rxErrors).toBe(0);
  });

  it("containers: CPU % with two decimals, network rates whole; absent rates stay absent", () => {
    const p = containerListPayload([
      { id: "a", name: "web", state: "running", source: "docker", kind: "container", cpuPercent: 12.345678, memoryBytes: 1, netRxRate: 1234.5678, netTxRate: 0.49 },
      { id: "b", name: "db", state: "running", source: "docker", kind: "container", cpuPercent: Number.NaN, memoryBytes: 1 },
    ]);
    if (p.case !== "containerList") throw new Error(p.case);
    const [db, web] = p.value.containers;
    expect(web!.cpuPercent).toBe(12.35);
    expect(web!.netRxRate).toBe(1235);
    expect(web!.netTxRate).toBe(0);
    expect(db!.cpuPercent).toBe(0);
    expect(db!.netRxRate).toBeUndefined();
  });
});
