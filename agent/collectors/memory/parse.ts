/** The `/proc/meminfo` values the memory collector uses, in bytes. */
export interface Meminfo {
  total: number;
  free: number;
  /** MemAvailable, or free + buffers + cached + SReclaimable on kernels before 3.14. */
  available: number;
  swapTotal: number;
  swapFree: number;
}

const WANTED = new Set(["MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SReclaimable", "SwapTotal", "SwapFree"]);

/**
 * Parses `/proc/meminfo` (sample: testdata/proc/meminfo). Keys match exactly, so `SwapCached` is never taken for
 * `Cached`. Values are "kB" (KiB) in the file. Throws when MemTotal is missing.
 */
export function parseMeminfo(text: string): Meminfo {
  const v = new Map<string, number>();
  let pos = 0;
  while (pos < text.length) {
    let end = text.indexOf("\n", pos);
    if (end < 0) end = text.length;
    const colon = text.indexOf(":", pos);
    if (colon > pos && colon < end) {
      const key = text.slice(pos, colon);
      if (WANTED.has(key)) {
        const n = Number.parseInt(text.slice(colon + 1, end).trimStart(), 10);
        if (Number.isFinite(n)) v.set(key, n * 1024);
        // Everything needed is above SwapFree except the pre-3.14 fallback's SReclaimable.
        if (key === "SwapFree" && v.has("MemAvailable")) break;
      }
    }
    pos = end + 1;
  }
  const total = v.get("MemTotal");
  if (total === undefined) throw new Error("MemTotal missing from meminfo");
  const free = v.get("MemFree") ?? 0;
  const available =
    v.get("MemAvailable") ?? free + (v.get("Buffers") ?? 0) + (v.get("Cached") ?? 0) + (v.get("SReclaimable") ?? 0);
  return { total, free, available: Math.min(available, total), swapTotal: v.get("SwapTotal") ?? 0, swapFree: v.get("SwapFree") ?? 0 };
}

/** The plain values of a `memory` payload. */
export interface MemoryResult {
  ramTotal: number;
  ramUsed: number;
  ramAvailable: number;
  ramUsedPct: number;
  swapTotal: number;
  swapUsed: number;
  swapPct: number;
}

/** used = total − available (cache is not "used"); swap used = total − free; percentages 0 when a total is 0. */
export function memoryResult(ramTotal: number, ramAvailable: number, swapTotal: number, swapFree: number): MemoryResult {
  const ramUsed = Math.max(0, ramTotal - ramAvailable);
  const swapUsed = Math.max(0, swapTotal - swapFree);
  return {
    ramTotal,
    ramUsed,
    ramAvailable,
    ramUsedPct: ramTotal > 0 ? (ramUsed * 100) / ramTotal : 0,
    swapTotal,
    swapUsed,
    swapPct: swapTotal > 0 ? (swapUsed * 100) / swapTotal : 0,
  };
}
