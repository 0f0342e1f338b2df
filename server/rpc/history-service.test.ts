import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../common/logger.js";
import { Aggregation, HistoryService, LabelMatcher_Op, Tier } from "../../gen/spectra/v1/history_service_pb.js";
import { MetricEnvelopeSchema, type MetricEnvelope } from "../../gen/spectra/v1/metrics_pb.js";
import { testServices } from "../testing/services.js";
import { errorInterceptor } from "./errors.js";
import { createHistoryServiceImpl } from "./history-service.js";

const T0 = Date.UTC(2026, 10, 27, 0, 0, 0);
let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup) await c();
  cleanup = [];
});

function setup(now = T0 + 3 * 3_600_000) {
  const clock = { now };
  const s = testServices({ clock: () => clock.now });
  const transport = createRouterTransport((router) => router.service(HistoryService, createHistoryServiceImpl(s)), {
    router: { interceptors: [errorInterceptor(silentLogger())] },
  });
  cleanup.push(async () => {
    s.commands.stop();
    await s.store.close();
  });
  let seq = 0n;
  const ingest = (hostname: string, envelopes: MetricEnvelope[]) =>
    s.ingest.ingest({ hostname, sessionId: "s", sequence: ++seq, envelopes, collectorStatus: [] });
  return { s, clock, ingest, history: createClient(HistoryService, transport) };
}

const disk = (t: number, mountpoint: string, pct: number) =>
  create(MetricEnvelopeSchema, {
    timestamp: timestampFromMs(t),
    payload: { case: "disk", value: { mountpoint, diskUsedPct: pct, diskTotal: 100n } },
  });
const cpu = (t: number, usage: number) =>
  create(MetricEnvelopeSchema, { timestamp: timestampFromMs(t), payload: { case: "cpu", value: { usage, cores: [usage] } } });
const procs = (t: number) =>
  create(MetricEnvelopeSchema, {
    timestamp: timestampFromMs(t),
    payload: { case: "processList", value: { totalProcesses: 120, processes: [{ pid: 1, name: "init", cpuPercent: 0.5 }] } },
  });

async function code(p: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await p;
    return "ok";
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

describe("HistoryService (in memory, real SQLite)", () => {
  it("queries a range at a step with each aggregation from raw samples, and says which tier served it", async () => {
    const { ingest, history } = setup();
    // one sample every 10 s for 10 minutes: 1, 2, 3, ...
    for (let i = 0; i < 60; i++) await ingest("web-01", [cpu(T0 + i * 10_000, i + 1)]);
    const q = (aggregation: Aggregation) =>
      history.queryRange({
        metric: "cpu.usage",
        hostname: "web-01",
        start: timestampFromMs(T0),
        end: timestampFromMs(T0 + 599_999),
        step: durationFromMs(60_000),
        aggregation,
        tier: Tier.TIER_RAW,
      });
    const avg = await q(Aggregation.AVG);
    expect(avg.tier).toBe(Tier.TIER_RAW);
    expect(avg.series).toHaveLength(1);
    expect(avg.series[0]!.series?.labels).toEqual({});
    expect(avg.series[0]!.timesMs.slice(0, 2)).toEqual([BigInt(T0), BigInt(T0 + 60_000)]);
    expect(avg.series[0]!.values).toEqual([3.5, 9.5, 15.5, 21.5, 27.5, 33.5, 39.5, 45.5, 51.5, 57.5]);
    expect((await q(Aggregation.MIN)).series[0]!.values[0]).toBe(1);
    expect((await q(Aggregation.MAX)).series[0]!.values[0]).toBe(6);
    expect((await q(Aggregation.SUM)).series[0]!.values[0]).toBe(21);
    expect((await q(Aggregation.COUNT)).series[0]!.values[0]).toBe(6);
    expect((await q(Aggregation.LAST)).series[0]!.values.at(-1)).toBe(60);
  });

  it("chooses the tier from the step and serves 1m and 1h buckets equal to the raw data", async () => {
    const { s, clock, ingest, history } = setup(T0);
    for (let i = 0; i < 3 * 360; i++) await ingest("web-01", [cpu(T0 + i * 10_000, i % 100)]);
    clock.now = T0 + 3 * 3_600_000 + 300_000;
    for (let i = 0; i < 4; i++) await s.tsdb.flush(); // rolls up the closed hours
    const range = { metric: "cpu.usage", start: timestampFromMs(T0), end: timestampFromMs(T0 + 3 * 3_600_000 - 1) };
    const minute = await history.queryRange({ ...range, step: durationFromMs(300_000), aggregation: Aggregation.MAX });
    expect(minute.tier).toBe(Tier.TIER_1M);
    const raw = await history.queryRange({ ...range, step: durationFromMs(300_000), aggregation: Aggregation.MAX, tier: Tier.TIER_RAW });
    expect(minute.series[0]!.values).toEqual(raw.series[0]!.values);
    expect(minute.series[0]!.timesMs).toEqual(raw.series[0]!.timesMs);
    const hour = await history.queryRange({ ...range, step: durationFromMs(3_600_000), aggregation: Aggregation.AVG });
    expect(hour.tier).toBe(Tier.TIER_1H);
    const rawHour = await history.queryRange({ ...range, step: durationFromMs(3_600_000), aggregation: Aggregation.AVG, tier: Tier.TIER_RAW });
    expect(hour.series[0]!.values).toHaveLength(3);
    hour.series[0]!.values.forEach((v, i) => expect(v).toBeCloseTo(rawHour.series[0]!.values[i]!, 9));
    // no step: about 300 points, never finer than the tier
    const auto = await history.queryRange({ metric: "cpu.usage", start: timestampFromMs(T0 - 30 * 86_400_000) });
    expect(auto.tier).toBe(Tier.TIER_1H);
    expect(Number(auto.step?.seconds)).toBeGreaterThanOrEqual(3_600);
  });

  it("selects series with label matchers across hosts, lists hosts, series and latest values", async () => {
    const { ingest, history } = setup();
    await ingest("web-01", [disk(T0, "/", 40), disk(T0, "/home", 70), procs(T0)]);
    await ingest("web-02", [disk(T0 + 5, "/", 41)]);
    await ingest("web-01", [disk(T0 + 10_000, "/", 42)]);
    const hosts = await history.listHosts({});
    expect(hosts.hosts.map((h) => [h.hostname, h.lastSample?.seconds])).toEqual([
      ["web-01", BigInt(Math.floor((T0 + 10_000) / 1000))],
      ["web-02", BigInt(Math.floor(T0 / 1000))],
    ]);
    const series = await history.listSeries({
      metric: "disk.disk_used_pct",
      matchers: [{ name: "mountpoint", op: LabelMatcher_Op.REGEX, value: "/h.*" }],
    });
    expect(series.series.map((x) => [x.hostname, x.labels])).toEqual([["web-01", { mountpoint: "/home" }]]);
    const latest = await history.getLatest({ metric: "disk.disk_used_pct", matchers: [{ name: "mountpoint", value: "/" }] });
    expect(latest.values.map((v) => [v.series?.hostname, v.value, v.timeMs])).toEqual([
      ["web-01", 42, BigInt(T0 + 10_000)],
      ["web-02", 41, BigInt(T0 + 5)],
    ]);
    const host = await history.getLatest({ hostname: "web-01" });
    expect(host.snapshots.map((e) => e.type)).toEqual(["process_list"]);
    // per-process numbers are snapshot-only (series_skip); the totals are series
    expect(host.values.some((v) => v.series?.metric === "process_list.total_processes" && v.value === 120)).toBe(true);
    expect(host.values.some((v) => v.series?.metric.startsWith("process_list.processes"))).toBe(false);
    const snaps = await history.listSnapshots({ hostname: "web-01", type: "process_list" });
    expect(snaps.snapshots).toHaveLength(1);
  });

  it("refuses bad queries with InvalidArgument and clear limits", async () => {
    const { ingest, history } = setup();
    await ingest("web-01", [cpu(T0, 1)]);
    const start = timestampFromMs(T0);
    expect(await code(history.queryRange({ start }))).toBe(Code.InvalidArgument); // no metric
    expect(await code(history.queryRange({ metric: "cpu.usage" }))).toBe(Code.InvalidArgument); // no start
    expect(await code(history.queryRange({ metric: "cpu.usage", start, end: timestampFromMs(T0 - 1) }))).toBe(Code.InvalidArgument);
    const tooMany = history.queryRange({ metric: "cpu.usage", start, end: timestampFromMs(T0 + 86_400_000), step: durationFromMs(1_000) });
    await expect(tooMany).rejects.toThrow(/86401 points per series; at most 11000/);
    expect(await code(history.listSeries({}))).toBe(Code.InvalidArgument);
    expect(
      await code(history.listSeries({ metric: "cpu.usage", matchers: [{ name: "core", op: LabelMatcher_Op.REGEX, value: "(" }] })),
    ).toBe(Code.InvalidArgument);
    expect(await code(history.listSnapshots({ hostname: "bad host!" }))).toBe(Code.InvalidArgument);
  });

  it("refuses a query matching more series than the limit", async () => {
    const { s, ingest } = setup();
    for (let h = 0; h < 5; h++) await ingest(`host-${h}`, [cpu(T0, h)]);
    const limited = (await import("../history/history-service.js")).createHistoryService({
      store: s.store,
      tsdb: s.tsdb,
      clock: () => T0,
      limits: { maxSeries: 3 },
    });
    await expect(limited.queryRange({ metric: "cpu.usage", matchers: [], startMs: T0, endMs: T0 + 1, aggregation: "avg" })).rejects.toThrow(
      /matches 5 series; at most 3/,
    );
  });

  it("streams a host's samples as they arrive", async () => {
    const { ingest, history } = setup();
    const ac = new AbortController();
    const got: string[] = [];
    const done = (async () => {
      try {
        for await (const r of history.watchHost({ hostname: "web-01", metricPrefix: "disk.disk_used" }, { signal: ac.signal })) {
          got.push(...r.samples.map((x) => `${x.metric}{${x.labels["mountpoint"]}}=${x.value}@${x.timeMs}`));
          if (got.length >= 4) ac.abort();
        }
      } catch (err) {
        if (ConnectError.from(err).code !== Code.Canceled) throw err;
      }
    })();
    await new Promise((r) => setTimeout(r, 50));
    await ingest("web-02", [disk(T0, "/", 1)]); // another host: not seen
    await ingest("web-01", [disk(T0, "/", 40)]);
    await ingest("web-01", [disk(T0 + 1, "/", 41)]);
    await done;
    expect(got).toEqual([
      `disk.disk_used{/}=0@${T0}`,
      `disk.disk_used_pct{/}=40@${T0}`,
      `disk.disk_used{/}=0@${T0 + 1}`,
      `disk.disk_used_pct{/}=41@${T0 + 1}`,
    ]);
  });
});
