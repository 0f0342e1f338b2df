/**
 * Rollup tiers: buckets holding min, max, sum, count and last (with the time of last, so partial buckets merge).
 * A 1-minute window row holds one hour of 1-minute buckets; a 1-hour window row one day of 1-hour buckets.
 * The 1-hour bucket of an hour is computed from that hour's complete 1-minute window, so it is always what a direct
 * computation over the raw samples gives.
 */
import type { RollupTier } from "../store/store.js";

export interface TierSpec {
  bucketMs: number;
  windowMs: number;
}

export const TIERS: Record<RollupTier, TierSpec> = {
  "1m": { bucketMs: 60_000, windowMs: 3_600_000 },
  "1h": { bucketMs: 3_600_000, windowMs: 86_400_000 },
};

/** Buckets in column form, sorted by bucket start `t`. */
export interface Buckets {
  t: number[];
  min: number[];
  max: number[];
  sum: number[];
  count: number[];
  last: number[];
  lastT: number[];
}

export function emptyBuckets(): Buckets {
  return { t: [], min: [], max: [], sum: [], count: [], last: [], lastT: [] };
}

export function floorTo(t: number, stepMs: number): number {
  return Math.floor(t / stepMs) * stepMs;
}

/** Aggregates samples (any order) into buckets of `bucketMs`, sorted by bucket start. */
export function aggregate(t: ArrayLike<number>, v: ArrayLike<number>, bucketMs: number): Buckets {
  const byStart = new Map<number, number>();
  const b = emptyBuckets();
  for (let i = 0; i < t.length; i++) {
    const ti = t[i]!;
    const vi = v[i]!;
    const start = floorTo(ti, bucketMs);
    let k = byStart.get(start);
    if (k === undefined) {
      k = b.t.length;
      byStart.set(start, k);
      b.t.push(start);
      b.min.push(vi);
      b.max.push(vi);
      b.sum.push(vi);
      b.count.push(1);
      b.last.push(vi);
      b.lastT.push(ti);
      continue;
    }
    if (vi < b.min[k]!) b.min[k] = vi;
    if (vi > b.max[k]!) b.max[k] = vi;
    b.sum[k]! += vi;
    b.count[k]! += 1;
    if (ti >= b.lastT[k]!) {
      b.last[k] = vi;
      b.lastT[k] = ti;
    }
  }
  return sortBuckets(b);
}

/** Collapses buckets into coarser buckets of `bucketMs` (merging min/max/sum/count/last). */
export function collapse(src: Buckets, bucketMs: number): Buckets {
  const out = emptyBuckets();
  for (let i = 0; i < src.t.length; i++) {
    const start = floorTo(src.t[i]!, bucketMs);
    const k = out.t.length - 1;
    if (k >= 0 && out.t[k] === start) {
      mergeInto(out, k, src, i);
    } else {
      pushFrom(out, src, i, start);
    }
  }
  return out;
}

/** Replaces (not merges) the buckets of `repl` inside `base`: used when a bucket was recomputed from raw data. */
export function replaceBuckets(base: Buckets, repl: Buckets): Buckets {
  const out = emptyBuckets();
  const replaced = new Set(repl.t);
  for (let i = 0; i < base.t.length; i++) if (!replaced.has(base.t[i]!)) pushFrom(out, base, i, base.t[i]!);
  for (let i = 0; i < repl.t.length; i++) pushFrom(out, repl, i, repl.t[i]!);
  return sortBuckets(out);
}

/** Keeps buckets whose start lies in [from, to]. */
export function sliceBuckets(b: Buckets, from: number, to: number): Buckets {
  const out = emptyBuckets();
  for (let i = 0; i < b.t.length; i++) if (b.t[i]! >= from && b.t[i]! <= to) pushFrom(out, b, i, b.t[i]!);
  return out;
}

function pushFrom(out: Buckets, src: Buckets, i: number, start: number): void {
  out.t.push(start);
  out.min.push(src.min[i]!);
  out.max.push(src.max[i]!);
  out.sum.push(src.sum[i]!);
  out.count.push(src.count[i]!);
  out.last.push(src.last[i]!);
  out.lastT.push(src.lastT[i]!);
}

function mergeInto(out: Buckets, k: number, src: Buckets, i: number): void {
  if (src.min[i]! < out.min[k]!) out.min[k] = src.min[i]!;
  if (src.max[i]! > out.max[k]!) out.max[k] = src.max[i]!;
  out.sum[k]! += src.sum[i]!;
  out.count[k]! += src.count[i]!;
  if (src.lastT[i]! >= out.lastT[k]!) {
    out.last[k] = src.last[i]!;
    out.lastT[k] = src.lastT[i]!;
  }
}

function sortBuckets(b: Buckets): Buckets {
  let sorted = true;
  for (let i = 1; i < b.t.length; i++) if (b.t[i - 1]! > b.t[i]!) sorted = false;
  if (sorted) return b;
  const order = b.t.map((_, i) => i).sort((x, y) => b.t[x]! - b.t[y]!);
  const pick = (a: number[]) => order.map((i) => a[i]!);
  return {
    t: pick(b.t),
    min: pick(b.min),
    max: pick(b.max),
    sum: pick(b.sum),
    count: pick(b.count),
    last: pick(b.last),
    lastT: pick(b.lastT),
  };
}
