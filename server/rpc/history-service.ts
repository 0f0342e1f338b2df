import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampDate, timestampFromMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  Aggregation,
  GetLatestResponseSchema,
  HistoryService,
  LabelMatcher_Op,
  ListHostsResponseSchema,
  ListSeriesResponseSchema,
  ListSnapshotsResponseSchema,
  QueryRangeResponseSchema,
  Tier,
  WatchHostResponseSchema,
  type LabelMatcher as LabelMatcherMsg,
} from "../../gen/spectra/v1/history_service_pb.js";
import { checkHostname } from "../agents/hostname.js";
import type { AggregationName, SeriesInfo, TierName } from "../history/history-service.js";
import type { Services } from "../services.js";
import { parseLabels, type LabelMatcher } from "../tsdb/series.js";

const OPS: Record<LabelMatcher_Op, LabelMatcher["op"]> = {
  [LabelMatcher_Op.UNSPECIFIED]: "=",
  [LabelMatcher_Op.EQUAL]: "=",
  [LabelMatcher_Op.NOT_EQUAL]: "!=",
  [LabelMatcher_Op.REGEX]: "=~",
  [LabelMatcher_Op.NOT_REGEX]: "!~",
};
const AGGS: Record<Aggregation, AggregationName> = {
  [Aggregation.UNSPECIFIED]: "avg",
  [Aggregation.AVG]: "avg",
  [Aggregation.MIN]: "min",
  [Aggregation.MAX]: "max",
  [Aggregation.SUM]: "sum",
  [Aggregation.COUNT]: "count",
  [Aggregation.LAST]: "last",
};
const TIER_IN: Record<Tier, TierName | undefined> = {
  [Tier.TIER_UNSPECIFIED]: undefined,
  [Tier.TIER_RAW]: "raw",
  [Tier.TIER_1M]: "1m",
  [Tier.TIER_1H]: "1h",
};
const TIER_OUT: Record<TierName, Tier> = { raw: Tier.TIER_RAW, "1m": Tier.TIER_1M, "1h": Tier.TIER_1H };

const matchers = (list: LabelMatcherMsg[]): LabelMatcher[] =>
  list.map((m) => ({ name: m.name, op: OPS[m.op] ?? "=", value: m.value }));
const series = (s: SeriesInfo) => ({ hostname: s.hostname, metric: s.metric, labels: Object.fromEntries(s.labels) });
const ms = (t: Timestamp | undefined): number | undefined => (t ? timestampDate(t).getTime() : undefined);
const optHost = (h: string) => {
  if (h !== "") checkHostname(h);
  return h ? { hostname: h } : {};
};

/** HistoryService over the shared services. */
export function createHistoryServiceImpl(s: Services): ServiceImpl<typeof HistoryService> {
  const h = s.history;
  return {
    async listHosts() {
      return create(ListHostsResponseSchema, {
        hosts: h.listHosts().map((x) => ({
          hostname: x.hostname,
          series: x.series,
          ...(Number.isFinite(x.lastSampleMs) ? { lastSample: timestampFromMs(x.lastSampleMs) } : {}),
        })),
      });
    },
    async listSeries(req) {
      const r = h.listSeries({
        ...optHost(req.hostname),
        ...(req.metric ? { metric: req.metric } : {}),
        matchers: matchers(req.matchers),
        limit: req.limit,
      });
      return create(ListSeriesResponseSchema, { series: r.series.map(series), truncated: r.truncated });
    },
    async queryRange(req) {
      const end = ms(req.end) ?? s.clock();
      const step = req.step ? Number(req.step.seconds) * 1000 + Math.floor(req.step.nanos / 1e6) : undefined;
      const tier = TIER_IN[req.tier];
      const r = await h.queryRange({
        metric: req.metric,
        ...optHost(req.hostname),
        matchers: matchers(req.matchers),
        startMs: ms(req.start) ?? Number.NaN,
        endMs: end,
        ...(step !== undefined ? { stepMs: step } : {}),
        aggregation: AGGS[req.aggregation] ?? "avg",
        ...(tier ? { tier } : {}),
      });
      return create(QueryRangeResponseSchema, {
        tier: TIER_OUT[r.tier],
        step: durationFromMs(r.stepMs),
        series: r.series.map((x) => ({ series: series(x), timesMs: x.times.map(BigInt), values: x.values })),
      });
    },
    async getLatest(req) {
      const values = h.latest({
        ...optHost(req.hostname),
        ...(req.metric ? { metric: req.metric } : {}),
        matchers: matchers(req.matchers),
      });
      const snapshots = req.hostname ? await h.latestSnapshots(req.hostname) : [];
      return create(GetLatestResponseSchema, {
        values: values.map((v) => ({ series: series(v), timeMs: BigInt(v.t), value: v.v })),
        snapshots,
      });
    },
    async listSnapshots(req) {
      checkHostname(req.hostname);
      const since = ms(req.start);
      const until = ms(req.end);
      const list = await h.listSnapshots({
        hostname: req.hostname,
        ...(req.type ? { type: req.type } : {}),
        ...(since !== undefined ? { sinceMs: since } : {}),
        ...(until !== undefined ? { untilMs: until } : {}),
        limit: req.limit === 0 ? 100 : Math.min(req.limit, 1000),
      });
      return create(ListSnapshotsResponseSchema, { snapshots: list });
    },
    async *watchHost(req, ctx) {
      checkHostname(req.hostname);
      for await (const batch of h.watch(req.hostname, req.metricPrefix, ctx.signal)) {
        yield create(WatchHostResponseSchema, {
          samples: batch.map((x) => ({
            metric: x.metric,
            labels: Object.fromEntries(parseLabels(x.labels)),
            timeMs: BigInt(x.t),
            value: x.v,
          })),
        });
      }
    },
  };
}
