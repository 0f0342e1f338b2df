/**
 * Builds the rows of the query benchmark's store, one host at a time, with the server's own codec and rollup code:
 * exactly the chunk rows, rollup rows and series watermarks the engine's flushes write for the same samples.
 *
 * Per host, a realistic subset of what the agent sends, at the collectors' default intervals (values move as in
 * fleet.ts): cpu.usage (full-precision %), cpu.load_1m (two decimals), cpu.steal (zero) every 5 s;
 * memory.ram_used (4 KiB pages), memory.ram_total (constant), temperature.temperature{sensor} (whole degrees) every
 * 10 s; disk.disk_used_pct{mountpoint="/"} every 60 s. Timestamps on the 5 s grid with one phase per host, each
 * 0–3 ms late, as the agent stamps them.
 *
 * What a server that has run for `rollupDays` with the default retention holds, except for the 1-minute tier:
 * - raw chunks from midnight UTC `rawDays` ago until now, so at least `rawDays` (chunks closed at 120 samples or at 2 h boundaries, as HeadSeries does);
 * - 1-minute rollup windows (one row per series and hour) for every hour before the rollup horizon in the raw period,
 *   computed from the raw samples with aggregate() as TsdbEngine.computeRollups does;
 * - 1-hour rollup windows (one row per series and day) for `rollupDays`: from the raw samples (collapse of the
 *   1-minute buckets, as the engine does) for the raw period; for the older days, synthesised per hour from the
 *   same value model (count as at the interval, min ≤ avg ≤ max, last). The older days' 1-minute rows are not
 *   built (a real server would keep them 90 days; no measured query reads them), which keeps the build short.
 * - the rollup horizon (meta) at the start of the current hour (the last closed hour is rolled up), raw data up to
 *   now, each series' newest sample as its last value.
 */
import { ChunkEncoder } from "../../server/tsdb/codec/chunk.js";
import { encodeRollupChunk } from "../../server/tsdb/codec/rollup-chunk.js";
import { aggregate, collapse, floorTo, replaceBuckets, TIERS, type Buckets } from "../../server/tsdb/rollup.js";
import { canonicalLabels } from "../../server/tsdb/series.js";
import { prng } from "../../common/prng.js";

export const HOUR = 3_600_000;
export const DAY = 86_400_000;
const CHUNK_TARGET = 120;
const CHUNK_SPAN = 2 * HOUR;

type Kind = "pct-ratio" | "load" | "zero" | "pages" | "const" | "pct" | "int";

export const QUERY_SERIES: ReadonlyArray<{ metric: string; labels: string; intervalMs: number; kind: Kind }> = [
  { metric: "cpu.usage", labels: "", intervalMs: 5_000, kind: "pct-ratio" },
  { metric: "cpu.load_1m", labels: "", intervalMs: 5_000, kind: "load" },
  { metric: "cpu.steal", labels: "", intervalMs: 5_000, kind: "zero" },
  { metric: "memory.ram_used", labels: "", intervalMs: 10_000, kind: "pages" },
  { metric: "memory.ram_total", labels: "", intervalMs: 10_000, kind: "const" },
  { metric: "temperature.temperature", labels: canonicalLabels([["sensor", "coretemp_package_id_0"]]), intervalMs: 10_000, kind: "int" },
  { metric: "disk.disk_used_pct", labels: canonicalLabels([["mountpoint", "/"]]), intervalMs: 60_000, kind: "pct" },
];

export interface BuildSpec {
  hosts: number;
  rawDays: number;
  rollupDays: number;
  /** "Now" of the store (ms); the horizon is the start of its hour. */
  nowMs: number;
}

export function hostName(i: number): string {
  return `host-${String(i).padStart(4, "0")}`;
}

/** Rows of one host, data packed in one buffer (transferable). */
export interface HostRows {
  host: number;
  data: Uint8Array;
  /** Per chunk: series index, minT, maxT, count, offset, length. */
  chunks: Float64Array;
  /** Per rollup row: tier (0: 1m, 1: 1h), series index, windowStart, offset, length. */
  rollups: Float64Array;
  /** Per series: lastT, lastV. */
  last: Float64Array;
  samples: number;
}

class Model {
  private v: number;
  constructor(
    private readonly kind: Kind,
    private readonly rnd: () => number,
    seedValue: number,
  ) {
    this.v = seedValue;
  }
  next(): number {
    const r = this.rnd;
    switch (this.kind) {
      case "pct-ratio": {
        this.v = Math.min(100, Math.max(0, this.v + (r() * 2 - 1) * 6));
        const tot = 2_000 + Math.floor(r() * 5) - 2; // jiffies of 4 cores in 5 s
        return (Math.round((this.v / 100) * tot) / tot) * 100;
      }
      case "load":
        this.v = Math.min(8, Math.max(0, this.v + (r() * 2 - 1) * 0.08));
        return Math.round(this.v * 100) / 100;
      case "zero":
        return 0;
      case "pages":
        this.v = Math.min(15e9, Math.max(5e8, this.v + (r() * 2 - 1) * 4e6));
        return Math.round(this.v / 4096) * 4096;
      case "const":
        return this.v;
      case "pct":
        this.v += r() * 0.002 - 0.0008;
        return this.v;
      case "int":
        this.v = Math.min(90, Math.max(30, this.v + (r() * 2 - 1) * 0.8));
        return Math.round(this.v);
    }
  }
}

function seedValue(kind: Kind, r: () => number): number {
  switch (kind) {
    case "pct-ratio":
      return 5 + r() * 50;
    case "load":
      return r() * 2;
    case "pages":
      return 2e9 + r() * 6e9;
    case "const":
      return 17_179_869_184 - 314_572_800;
    case "pct":
      return 20 + r() * 50;
    case "int":
      return 40 + r() * 15;
    default:
      return 0;
  }
}

function toColumns(b: Buckets) {
  return { t: b.t, min: b.min, max: b.max, sum: b.sum, count: b.count, last: b.last, lastT: b.lastT };
}

class Packer {
  private parts: Uint8Array[] = [];
  private size = 0;
  add(b: Uint8Array): [number, number] {
    const off = this.size;
    this.parts.push(b);
    this.size += b.length;
    return [off, b.length];
  }
  finish(): Uint8Array {
    const out = new Uint8Array(this.size);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

/** Every row of one host (deterministic for a given spec and host). */
export function buildHost(spec: BuildSpec, host: number): HostRows {
  const rnd = prng(host * 2_654_435 + 99);
  const horizon = floorTo(spec.nowMs - 120_000, HOUR);
  // raw from midnight (UTC) `rawDays` ago: at least rawDays of raw data, whole days of older rollups before it
  const rawStart = floorTo(spec.nowMs - spec.rawDays * DAY, DAY);
  const rollupStart = floorTo(spec.nowMs - spec.rollupDays * DAY, DAY);
  const phase = Math.floor(rnd() * 5_000);
  const pack = new Packer();
  const chunks: number[] = [];
  const rollups: number[] = [];
  const last: number[] = [];
  let samples = 0;

  QUERY_SERIES.forEach((def, si) => {
    const model = new Model(def.kind, rnd, seedValue(def.kind, rnd));
    // Older days: synthesised 1-hour buckets, one row per day.
    const perHour = HOUR / def.intervalMs;
    for (let day = rollupStart; day < rawStart; day += DAY) {
      const b: Buckets = { t: [], min: [], max: [], sum: [], count: [], last: [], lastT: [] };
      for (let h = day; h < day + DAY; h += HOUR) {
        let mn = Infinity;
        let mx = -Infinity;
        let sum = 0;
        let v = 0;
        // a few draws stand in for the hour's samples: min, max, mean and last move like the series does
        for (let k = 0; k < 12; k++) {
          v = model.next();
          if (v < mn) mn = v;
          if (v > mx) mx = v;
          sum += v;
        }
        b.t.push(h);
        b.min.push(mn);
        b.max.push(mx);
        b.sum.push((sum / 12) * perHour);
        b.count.push(perHour);
        b.last.push(v);
        b.lastT.push(h + HOUR - def.intervalMs + phase + 1);
      }
      if (b.t.length > 0) {
        const [o, l] = pack.add(encodeRollupChunk(toColumns(b)));
        rollups.push(1, si, day, o, l);
      }
    }

    // Raw period: samples → chunks (HeadSeries rules) and rollups (engine rules).
    let enc: ChunkEncoder | undefined;
    const closeChunk = () => {
      if (!enc || enc.count === 0) return;
      const [o, l] = pack.add(enc.bytes());
      chunks.push(si, enc.minT, enc.maxT, enc.count, o, l);
      enc = undefined;
    };
    let hourT: number[] = [];
    let hourV: number[] = [];
    let curHour = rawStart;
    let dayBuckets: Buckets | undefined;
    let curDay = floorTo(rawStart, DAY);
    const flushDay = () => {
      if (dayBuckets && dayBuckets.t.length > 0) {
        const [o, l] = pack.add(encodeRollupChunk(toColumns(dayBuckets)));
        rollups.push(1, si, curDay, o, l);
      }
      dayBuckets = undefined;
    };
    const closeHour = () => {
      if (curHour < horizon && hourT.length > 0) {
        const minute = aggregate(hourT, hourV, TIERS["1m"].bucketMs);
        const [o, l] = pack.add(encodeRollupChunk(toColumns(minute)));
        rollups.push(0, si, curHour, o, l);
        const day = floorTo(curHour, DAY);
        if (day !== curDay) {
          flushDay();
          curDay = day;
        }
        const hb = collapse(minute, HOUR);
        dayBuckets = dayBuckets ? replaceBuckets(dayBuckets, hb) : hb;
      }
      hourT = [];
      hourV = [];
    };
    let lastT = Number.NaN;
    let lastV = Number.NaN;
    for (let t0 = rawStart + (phase % def.intervalMs); t0 <= spec.nowMs; t0 += def.intervalMs) {
      const t = t0 + Math.floor(rnd() * 4);
      const v = model.next();
      const hour = floorTo(t, HOUR);
      if (hour !== curHour) {
        closeHour();
        curHour = hour;
      }
      hourT.push(t);
      hourV.push(v);
      if (enc && (enc.count >= CHUNK_TARGET || Math.floor(t / CHUNK_SPAN) !== Math.floor(enc.minT / CHUNK_SPAN))) closeChunk();
      (enc ??= new ChunkEncoder()).append(t, v);
      lastT = t;
      lastV = v;
      samples++;
    }
    closeHour();
    flushDay();
    closeChunk();
    last.push(lastT, lastV);
  });
  return {
    host,
    data: pack.finish(),
    chunks: Float64Array.from(chunks),
    rollups: Float64Array.from(rollups),
    last: Float64Array.from(last),
    samples,
  };
}
