/**
 * Reading stored metrics: hosts, series, ranges at a step with an aggregation (tier chosen from range and step),
 * latest values and snapshots, live samples. Transport-agnostic; server/rpc/history-service.ts maps it to Connect.
 */
import type { MetricEnvelope } from "../../gen/spectra/v1/metrics_pb.js";
import { InvalidInputError } from "../errors.js";
import type { RollupTier, Store } from "../store/store.js";
import type { TsdbEngine, LiveSample } from "../tsdb/engine.js";
import { isSnapshotCase } from "../tsdb/flatten/flatten.js";
import type { SeriesView } from "../tsdb/head.js";
import { floorTo, TIERS, type Buckets } from "../tsdb/rollup.js";
import { compileMatchers, type LabelMatcher } from "../tsdb/series.js";

export type TierName = "raw" | RollupTier;
export type AggregationName = "avg" | "min" | "max" | "sum" | "count" | "last";

export interface HistoryLimits {
  /** Series one query may return. */
  maxSeries: number;
  /** Points per series one query may return. */
  maxPointsPerSeries: number;
  /** Points the automatic step aims at. */
  defaultPoints: number;
}

export const DEFAULT_HISTORY_LIMITS: HistoryLimits = { maxSeries: 1_000, maxPointsPerSeries: 11_000, defaultPoints: 300 };

export interface SeriesInfo {
  hostname: string;
  metric: string;
  labels: ReadonlyArray<readonly [string, string]>;
}

export interface RangeQuery {
  metric: string;
  hostname?: string;
  matchers: LabelMatcher[];
  startMs: number;
  endMs: number;
  stepMs?: number;
  aggregation: AggregationName;
  tier?: TierName;
}

export interface RangeResult {
  tier: TierName;
  stepMs: number;
  series: Array<SeriesInfo & { times: number[]; values: number[] }>;
}

export interface LatestValue extends SeriesInfo {
  t: number;
  v: number;
}

export interface HistoryService {
  listHosts(): Array<{ hostname: string; series: number; lastSampleMs: number }>;
  listSeries(q: { hostname?: string; metric?: string; matchers: LabelMatcher[]; limit: number }): {
    series: SeriesInfo[];
    truncated: boolean;
  };
  queryRange(q: RangeQuery): Promise<RangeResult>;
  latest(q: { hostname?: string; metric?: string; matchers: LabelMatcher[] }): LatestValue[];
  latestSnapshots(hostname: string): Promise<MetricEnvelope[]>;
  listSnapshots(q: { hostname: string; type?: string; sinceMs?: number; untilMs?: number; limit: number }): Promise<MetricEnvelope[]>;
  watch(hostname: string, metricPrefix: string, signal: AbortSignal): AsyncIterable<LiveSample[]>;
}

/** Native resolution of raw data: steps finer than this read raw samples. */
const RAW_MAX_STEP = 60_000;

export function createHistoryService(deps: {
  store: Store;
  tsdb: TsdbEngine;
  clock: () => number;
  limits?: Partial<HistoryLimits>;
}): HistoryService {
  const { store, tsdb, clock } = deps;
  const limits = { ...DEFAULT_HISTORY_LIMITS, ...deps.limits };

  const pick = (q: { hostname?: string; metric?: string; matchers: LabelMatcher[] }): SeriesView[] => {
    let match: (s: SeriesView) => boolean;
    try {
      const m = compileMatchers(q.matchers);
      match = (s) => m(s.labels);
    } catch (err) {
      throw new InvalidInputError((err as Error).message);
    }
    return tsdb
      .select({ ...(q.metric ? { metric: q.metric } : {}), ...(q.hostname ? { hostname: q.hostname } : {}) })
      .filter(match)
      .sort(compareSeries);
  };

  const chooseTier = (q: RangeQuery, stepMs: number, now: number): TierName => {
    if (q.tier) return q.tier;
    const ret = tsdb.opts.retentionMs;
    if (stepMs < RAW_MAX_STEP && q.startMs >= now - ret.raw) return "raw";
    if (stepMs < 3_600_000 && q.startMs >= now - ret["1m"]) return "1m";
    return "1h";
  };

  return {
    listHosts() {
      return tsdb.hosts().map((hostname) => {
        const list = tsdb.select({ hostname });
        let last = Number.NEGATIVE_INFINITY;
        for (const s of list) if (s.lastT > last) last = s.lastT;
        return { hostname, series: list.length, lastSampleMs: last };
      });
    },

    listSeries(q) {
      if (!q.hostname && !q.metric) throw new InvalidInputError("give a hostname, a metric or both");
      const all = pick(q);
      const limit = q.limit > 0 ? Math.min(q.limit, 10_000) : 10_000;
      return { series: all.slice(0, limit).map(info), truncated: all.length > limit };
    },

    async queryRange(q) {
      if (!q.metric) throw new InvalidInputError("metric is required (for example cpu.usage)");
      if (!Number.isFinite(q.startMs) || !Number.isFinite(q.endMs) || q.startMs > q.endMs) {
        throw new InvalidInputError("start must be set and not after end");
      }
      const now = clock();
      const span = q.endMs - q.startMs;
      let stepMs = q.stepMs ?? Math.max(1_000, Math.ceil(span / limits.defaultPoints / 1_000) * 1_000);
      if (!(stepMs > 0)) throw new InvalidInputError("step must be positive");
      const tier = chooseTier(q, stepMs, now);
      if (tier !== "raw") stepMs = Math.max(stepMs, TIERS[tier].bucketMs);
      if (tier !== "raw" && stepMs % TIERS[tier].bucketMs !== 0) {
        stepMs = Math.ceil(stepMs / TIERS[tier].bucketMs) * TIERS[tier].bucketMs;
      }
      const points = Math.floor(span / stepMs) + 1;
      if (points > limits.maxPointsPerSeries) {
        throw new InvalidInputError(
          `the query asks for ${points} points per series; at most ${limits.maxPointsPerSeries}: use a larger step`,
        );
      }
      const series = pick(q);
      if (series.length > limits.maxSeries) {
        throw new InvalidInputError(
          `the query matches ${series.length} series; at most ${limits.maxSeries}: add a hostname or label matchers`,
        );
      }
      const from = floorTo(q.startMs, stepMs);
      const out: RangeResult["series"] = [];
      for (const s of series) {
        const r =
          tier === "raw"
            ? stepRaw(await tsdb.samples(s, from, q.endMs), from, stepMs, q.aggregation)
            : stepBuckets(await tsdb.buckets(s, tier, from, q.endMs), from, stepMs, q.aggregation);
        if (r.times.length > 0) out.push({ ...info(s), ...r });
      }
      return { tier, stepMs, series: out };
    },

    latest(q) {
      if (!q.hostname && !q.metric) throw new InvalidInputError("give a hostname, a metric or both");
      return pick(q)
        .filter((s) => Number.isFinite(s.lastT))
        .map((s) => ({ ...info(s), t: s.lastT, v: s.lastV }));
    },

    async latestSnapshots(hostname) {
      const latest = await tsdb.latest(hostname);
      return latest.filter((l) => isSnapshot(l.envelope)).map((l) => l.envelope);
    },

    async listSnapshots(q) {
      return (await store.listEnvelopes(q)).map((e) => e.envelope);
    },

    watch(hostname, metricPrefix, signal) {
      return watchHost(tsdb, hostname, metricPrefix, signal);
    },
  };
}

function info(s: SeriesView): SeriesInfo {
  return { hostname: s.hostname, metric: s.metric, labels: s.labels };
}

/** Host, then metric, then labels. */
function compareSeries(a: SeriesView, b: SeriesView): number {
  const cmp = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
  return cmp(a.hostname, b.hostname) || cmp(a.metric, b.metric) || cmp(a.labelsText, b.labelsText);
}

function isSnapshot(env: MetricEnvelope): boolean {
  return env.payload.case !== undefined && isSnapshotCase(env.payload.case);
}

/** Aggregates raw samples (sorted) into steps starting at `from`: each sample is a bucket of one. */
export function stepRaw(
  raw: { t: number[]; v: number[] },
  from: number,
  stepMs: number,
  agg: AggregationName,
): { times: number[]; values: number[] } {
  const ones = raw.t.map(() => 1);
  return stepBuckets({ t: raw.t, min: raw.v, max: raw.v, sum: raw.v, count: ones, last: raw.v, lastT: raw.t }, from, stepMs, agg);
}

/** Aggregates rollup buckets (sorted) into steps starting at `from` (a step is a whole number of buckets). */
export function stepBuckets(b: Buckets, from: number, stepMs: number, agg: AggregationName): { times: number[]; values: number[] } {
  const times: number[] = [];
  const values: number[] = [];
  let cur = Number.NaN;
  let min = 0;
  let max = 0;
  let sum = 0;
  let count = 0;
  let last = 0;
  let lastT = 0;
  const emit = () => {
    if (count === 0) return;
    times.push(cur);
    values.push(pickAgg(agg, min, max, sum, count, last));
  };
  for (let i = 0; i < b.t.length; i++) {
    if (b.count[i]! === 0) continue;
    const start = from + Math.floor((b.t[i]! - from) / stepMs) * stepMs;
    if (start !== cur) {
      emit();
      cur = start;
      min = b.min[i]!;
      max = b.max[i]!;
      sum = b.sum[i]!;
      count = b.count[i]!;
      last = b.last[i]!;
      lastT = b.lastT[i]!;
      continue;
    }
    if (b.min[i]! < min) min = b.min[i]!;
    if (b.max[i]! > max) max = b.max[i]!;
    sum += b.sum[i]!;
    count += b.count[i]!;
    if (b.lastT[i]! >= lastT) {
      last = b.last[i]!;
      lastT = b.lastT[i]!;
    }
  }
  emit();
  return { times, values };
}

function pickAgg(agg: AggregationName, min: number, max: number, sum: number, count: number, last: number): number {
  switch (agg) {
    case "min":
      return min;
    case "max":
      return max;
    case "sum":
      return sum;
    case "count":
      return count;
    case "last":
      return last;
    default:
      return sum / count;
  }
}

/** Live samples of a host as an async iterable that ends when `signal` aborts; slow readers lose oldest batches. */
async function* watchHost(tsdb: TsdbEngine, hostname: string, prefix: string, signal: AbortSignal): AsyncIterable<LiveSample[]> {
  const queue: LiveSample[][] = [];
  let wake: (() => void) | undefined;
  const unsubscribe = tsdb.subscribe(hostname, (samples) => {
    const picked = prefix ? samples.filter((s) => s.metric.startsWith(prefix)) : samples;
    if (picked.length === 0) return;
    queue.push(picked);
    if (queue.length > 100) queue.shift();
    wake?.();
  });
  const onAbort = () => wake?.();
  signal.addEventListener("abort", onAbort);
  try {
    while (!signal.aborted) {
      const next = queue.shift();
      if (next) {
        yield next;
        continue;
      }
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
  } finally {
    unsubscribe();
    signal.removeEventListener("abort", onAbort);
  }
}
