import { CPU_FIELDS, CPU_IDLE, CPU_NICE, CPU_SYSTEM, CPU_USER } from "./parse.js";

/** The `times` of one entry of Node's `os.cpus()`, in ms. */
export interface OsCpuTimes {
  user: number;
  nice: number;
  sys: number;
  idle: number;
  irq: number;
}

/**
 * Converts `os.cpus()` (sample: testdata/windows/os-cpus-t0.json) into the same time vectors as `/proc/stat`:
 * keys `cpu0…cpuN` plus the sum as `cpu`. On Windows libuv derives `sys` from KernelTime − IdleTime, which already
 * contains interrupt time, so `irq` is not added again; Windows has no iowait or steal.
 */
export function cpuVectorsFromOsCpus(cpus: ReadonlyArray<{ times: OsCpuTimes }>): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const total = new Array<number>(CPU_FIELDS).fill(0);
  out.set("cpu", total);
  cpus.forEach((c, i) => {
    const v = new Array<number>(CPU_FIELDS).fill(0);
    v[CPU_USER] = c.times.user;
    v[CPU_NICE] = c.times.nice;
    v[CPU_SYSTEM] = c.times.sys;
    v[CPU_IDLE] = c.times.idle;
    for (let k = 0; k < CPU_FIELDS; k++) total[k]! += v[k]!;
    out.set(`cpu${i}`, v);
  });
  return out;
}
