import { roundPercent } from "../../../common/round.js";
import type { KeyRates } from "../rate.js";

/**
 * Indexes of the CPU time vector used by the CPU collector, in `/proc/stat` column order. guest and guest_nice are
 * left out on purpose: the kernel already counts them inside user and nice.
 */
export const CPU_USER = 0;
export const CPU_NICE = 1;
export const CPU_SYSTEM = 2;
export const CPU_IDLE = 3;
export const CPU_IOWAIT = 4;
export const CPU_IRQ = 5;
export const CPU_SOFTIRQ = 6;
export const CPU_STEAL = 7;
/** Length of a CPU time vector. */
export const CPU_FIELDS = 8;

/**
 * Parses the `cpu` and `cpuN` lines of `/proc/stat` (sample: testdata/proc/stat) into time vectors in USER_HZ,
 * keyed by name, in file order. Missing trailing columns (old kernels) are 0. Stops at the first non-cpu line:
 * the cpu lines come first and the rest of the file (intr, softirq) can be large.
 */
export function parseProcStatCpu(text: string): Map<string, number[]> {
  const out = new Map<string, number[]>();
  let pos = 0;
  while (pos < text.length) {
    let end = text.indexOf("\n", pos);
    if (end < 0) end = text.length;
    if (!text.startsWith("cpu", pos)) {
      // The cpu block is over once some other line was seen after it.
      if (out.size > 0) break;
      pos = end + 1;
      continue;
    }
    const parts = text.slice(pos, end).split(" ");
    pos = end + 1;
    const name = parts[0]!;
    const v = new Array<number>(CPU_FIELDS).fill(0);
    let i = 0;
    for (let j = 1; j < parts.length && i < CPU_FIELDS; j++) {
      const p = parts[j]!;
      if (p === "") continue; // "cpu  123": the aggregate line has two spaces
      v[i++] = Number(p);
    }
    if (i >= 4) out.set(name, v);
  }
  return out;
}

/** The three load averages of `/proc/loadavg` ("0.98 1.08 0.54 1/198 21373"). Throws on garbage. */
export function parseLoadavg(text: string): [number, number, number] {
  const parts = text.trim().split(" ", 3);
  const l1 = Number(parts[0]);
  const l5 = Number(parts[1]);
  const l15 = Number(parts[2]);
  if (parts.length < 3 || !Number.isFinite(l1) || !Number.isFinite(l5) || !Number.isFinite(l15)) {
    throw new Error(`unexpected loadavg: ${JSON.stringify(text.slice(0, 80))}`);
  }
  return [l1, l5, l15];
}

/** Percentages of one CPU (or the total) over an interval. */
export interface CpuUsage {
  /** user+nice+system+irq+softirq+steal over all time, in %. */
  busy: number;
  iowait: number;
  steal: number;
  idle: number;
  user: number;
  system: number;
}

/**
 * Turns deltas of a time vector into percentages: busy counts user+nice+system+irq+softirq+steal, the total adds
 * idle and iowait (iowait is neither busy nor idle-and-ignored). An interval with no ticks gives all zeros.
 */
export function cpuUsageFromDeltas(d: readonly number[]): CpuUsage {
  const user = (d[CPU_USER] ?? 0) + (d[CPU_NICE] ?? 0);
  const system = (d[CPU_SYSTEM] ?? 0) + (d[CPU_IRQ] ?? 0) + (d[CPU_SOFTIRQ] ?? 0);
  const steal = d[CPU_STEAL] ?? 0;
  const idle = d[CPU_IDLE] ?? 0;
  const iowait = d[CPU_IOWAIT] ?? 0;
  const busy = user + system + steal;
  const total = busy + idle + iowait;
  if (total <= 0) return { busy: 0, iowait: 0, steal: 0, idle: 0, user: 0, system: 0 };
  const pct = (x: number): number => (x * 100) / total;
  return { busy: pct(busy), iowait: pct(iowait), steal: pct(steal), idle: pct(idle), user: pct(user), system: pct(system) };
}

/** The plain values of a `cpu` payload, before they are put in the protobuf message. */
export interface CpuResult {
  usage: number;
  cores: number[];
  iowait: number;
  steal: number;
}

/**
 * Computes the cpu payload values from the per-key rates of the time vectors: the total from key `cpu`, cores
 * from `cpu0`, `cpu1`, … in numeric order (cores without a rate this time, e.g. just hot-plugged, are left out).
 * Percentages are rounded to two decimals (common/round.ts). Returns undefined when the total has no rate (first
 * reading, or a counter went backwards).
 */
export function cpuResultFromRates(rates: ReadonlyMap<string, KeyRates>): CpuResult | undefined {
  const total = rates.get("cpu");
  if (!total) return undefined;
  const t = cpuUsageFromDeltas(total.deltas);
  const cores: Array<[number, number]> = [];
  for (const [key, r] of rates) {
    if (key.length > 3 && key.startsWith("cpu")) {
      const n = Number(key.slice(3));
      if (Number.isInteger(n)) cores.push([n, roundPercent(cpuUsageFromDeltas(r.deltas).busy)]);
    }
  }
  cores.sort((a, b) => a[0] - b[0]);
  return { usage: roundPercent(t.busy), cores: cores.map((c) => c[1]), iowait: roundPercent(t.iowait), steal: roundPercent(t.steal) };
}
