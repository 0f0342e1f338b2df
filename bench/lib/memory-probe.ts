/**
 * Loaded into the server child by bench/fleet.ts (`node --import …/memory-probe.js`): every second, the server's
 * memory split as V8 and the kernel see it, written to the file named by SPECTRA_BENCH_MEMORY_OUT (one JSON object,
 * replaced each time), so the bench can say where the RSS goes (heap used / committed, external, native) without
 * any endpoint in the server. Nothing else in the server changes; the timer is unref'd.
 */
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { getHeapSpaceStatistics, getHeapStatistics } from "node:v8";

export interface ServerMemory {
  atMs: number;
  rss: number;
  /** V8's heap: committed (heapTotal) and in use (live plus garbage not yet collected). */
  heapTotal: number;
  heapUsed: number;
  /** Memory outside the V8 heap that V8 knows of (ArrayBuffer backing stores, native objects); arrayBuffers of it. */
  external: number;
  arrayBuffers: number;
  /** Per V8 space: committed and used bytes. */
  spaces: Record<string, { size: number; used: number }>;
  /** /proc/self/smaps_rollup: anonymous (heap, malloc, stacks) and file-backed (the node binary, libraries) RSS. */
  anonymous: number;
  file: number;
  heapLimit: number;
}

export function readServerMemory(): ServerMemory {
  const mu = process.memoryUsage();
  const spaces: ServerMemory["spaces"] = {};
  for (const s of getHeapSpaceStatistics()) spaces[s.space_name] = { size: s.space_size, used: s.space_used_size };
  let anonymous = Number.NaN;
  let rssRollup = Number.NaN;
  try {
    for (const line of readFileSync("/proc/self/smaps_rollup", "utf8").split("\n")) {
      const m = /^(Rss|Anonymous):\s+(\d+) kB/.exec(line);
      if (m) {
        if (m[1] === "Rss") rssRollup = Number(m[2]) * 1024;
        else anonymous = Number(m[2]) * 1024;
      }
    }
  } catch {
    // not Linux
  }
  return {
    atMs: Date.now(),
    rss: mu.rss,
    heapTotal: mu.heapTotal,
    heapUsed: mu.heapUsed,
    external: mu.external,
    arrayBuffers: mu.arrayBuffers,
    spaces,
    anonymous,
    file: rssRollup - anonymous,
    heapLimit: getHeapStatistics().heap_size_limit,
  };
}

const out = process.env.SPECTRA_BENCH_MEMORY_OUT;
if (out) {
  const write = () => {
    try {
      writeFileSync(`${out}.tmp`, JSON.stringify(readServerMemory()));
      renameSync(`${out}.tmp`, out);
    } catch {
      // the bench's temp dir is gone: it is stopping us
    }
  };
  setInterval(write, 1_000).unref();
}
