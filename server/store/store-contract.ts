import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { HostInfoSchema } from "../../gen/spectra/v1/agent_service_pb.js";
import {
  CommandOutcomeSchema,
  CommandSchema,
  CommandState,
  CommandType,
} from "../../gen/spectra/v1/diagnostics_pb.js";
import {
  CollectorHealth,
  CollectorStatusSchema,
  MetricBatchSchema,
  MetricEnvelopeSchema,
  type MetricEnvelope,
} from "../../gen/spectra/v1/metrics_pb.js";
import { QueueFullError } from "../errors.js";
import type { BatchWrite, ChunkRow, RollupRow, Store } from "./store.js";

/** How the contract suite gets a backend: a fresh empty store, and the same store reopened (persistence). */
export interface StoreFactory {
  open(): Promise<Store>;
  /** Opens the same database again after close(); omit for backends without persistence. */
  reopen?(): Promise<Store>;
}

function cpu(ms: number, usage: number): MetricEnvelope {
  return create(MetricEnvelopeSchema, {
    type: "cpu",
    hostname: "web-01",
    timestamp: timestampFromMs(ms),
    payload: { case: "cpu", value: { usage, cores: [usage], load1m: 0.5 } },
  });
}

function disk(ms: number, mount: string, used: bigint): MetricEnvelope {
  return create(MetricEnvelopeSchema, {
    type: "disk",
    hostname: "web-01",
    timestamp: timestampFromMs(ms),
    payload: { case: "disk", value: { mountpoint: mount, diskUsed: used, diskTotal: 1000n } },
  });
}

/** A snapshot envelope (process_list has the `snapshot` option): kept by listEnvelopes. */
function procs(ms: number, total: number, hostname = "web-01"): MetricEnvelope {
  return create(MetricEnvelopeSchema, {
    type: "process_list",
    hostname,
    timestamp: timestampFromMs(ms),
    payload: { case: "processList", value: { totalProcesses: total, processes: [{ pid: 1, name: "init" }] } },
  });
}

function batch(seq: bigint, envelopes: MetricEnvelope[], sessionId = "s1", hostname = "web-01"): BatchWrite {
  return { hostname, sessionId, sequence: seq, envelopes, collectorStatus: [], receivedAtMs: 1_000 };
}

/** Opaque bytes standing for a compressed chunk or rollup window: the store never looks inside. */
function bytes(...values: number[]): Uint8Array {
  return new Uint8Array(values);
}

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

/** Chunk rows without their (backend-assigned) ids, data as hex: comparable across backends. */
function chunkView(rows: ChunkRow[]): Array<[number, number, number, number, string]> {
  return rows.map((c) => [c.seriesId, c.minT, c.maxT, c.count, hex(c.data)]);
}

function rollupView(rows: RollupRow[]): Array<[string, number, number, string]> {
  return rows.map((r) => [r.tier, r.seriesId, r.windowStart, hex(r.data)]);
}

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 0, 1);

const host = create(HostInfoSchema, { hostname: "web-01", os: "linux", arch: "amd64", ramTotal: 16n << 30n });

function command(id: string) {
  return create(CommandSchema, {
    id,
    type: CommandType.LIST_MOUNTS,
    params: { case: "listMounts", value: {} },
    createdAt: timestampFromMs(1_000),
  });
}

/** The behaviour every Store backend must have. */
export function describeStoreContract(name: string, factory: StoreFactory): void {
  describe(`Store contract: ${name}`, () => {
    it("stores a batch and reads snapshot envelopes back in time order", async () => {
      const store = await factory.open();
      const r = await store.writeBatch(batch(1n, [procs(2_000, 10), procs(1_000, 5)]));
      expect(r).toMatchObject({ duplicate: false, stored: 2 });
      expect(r.walId).toBeGreaterThan(0);
      const rows = await store.listEnvelopes({ hostname: "web-01", limit: 10 });
      expect(rows.map((e) => e.timestampMs)).toEqual([1_000, 2_000]);
      expect(rows[0]).toMatchObject({ hostname: "web-01", type: "process_list", key: "" });
      expect(rows[0]!.envelope.payload).toMatchObject({ case: "processList", value: { totalProcesses: 5 } });
      expect(await store.countEnvelopes("web-01")).toBe(2);
      expect(await store.countEnvelopes("other")).toBe(0);
      await store.close();
    });

    it("stores a replayed (hostname, session, sequence) once", async () => {
      const store = await factory.open();
      await store.writeBatch(batch(7n, [cpu(1_000, 1)]));
      const again = await store.writeBatch(batch(7n, [cpu(1_000, 1)]));
      expect(again).toEqual({ duplicate: true, stored: 0, walId: 0 });
      // Another session with the same sequence number is a different batch.
      expect((await store.writeBatch(batch(7n, [cpu(1_500, 1)], "s2"))).duplicate).toBe(false);
      // Batches without a session (legacy REST) are never de-duplicated.
      await store.writeBatch(batch(0n, [cpu(3_000, 1)], ""));
      await store.writeBatch(batch(0n, [cpu(3_000, 1)], ""));
      expect(await store.countEnvelopes()).toBe(4);
      await store.close();
    });

    it("keeps the latest envelope per type and key written by flushes, never replaced by older data", async () => {
      const store = await factory.open();
      const row = (e: MetricEnvelope, key = "") => ({
        hostname: "web-01",
        type: e.type,
        key,
        timestampMs: Number(e.timestamp!.seconds) * 1000 + e.timestamp!.nanos / 1e6,
        payload: toBinary(MetricEnvelopeSchema, e),
      });
      await store.writeBatch(batch(1n, [cpu(2_000, 50)]));
      expect(await store.latest("web-01")).toEqual([]); // batches alone do not write it
      await store.commitFlush({
        chunks: [],
        rollups: [],
        flushed: [],
        latest: [row(disk(2_000, "/", 20n), "/"), row(disk(2_000, "/home", 30n), "/home"), row(cpu(2_000, 50))],
      });
      await store.commitFlush({ chunks: [], rollups: [], flushed: [], latest: [row(disk(1_000, "/", 10n), "/")] }); // late replay
      await store.commitFlush({ chunks: [], rollups: [], flushed: [], latest: [row(cpu(3_000, 60)), row(cpu(2_500, 55))] });
      const latest = await store.latest("web-01");
      expect(latest.map((l) => [l.type, l.key, l.timestampMs])).toEqual([
        ["cpu", "", 3_000],
        ["disk", "/", 2_000],
        ["disk", "/home", 2_000],
      ]);
      const p = latest[1]!.envelope.payload;
      expect(p.case === "disk" && p.value.diskUsed).toBe(20n);
      expect(await store.latest("nobody")).toEqual([]);
      await store.close();
    });

    it("writes concurrent batches and resolves each", async () => {
      const store = await factory.open();
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => store.writeBatch(batch(BigInt(i + 1), [cpu(i, i)]))),
      );
      expect(results.every((r) => !r.duplicate && r.stored === 1)).toBe(true);
      expect(await store.countEnvelopes()).toBe(50);
      await store.close();
    });

    it("gives every written batch a WAL id, increasing in the order the writes resolve", async () => {
      const store = await factory.open();
      const first = await store.writeBatch(batch(1n, [cpu(1_000, 1)]));
      const second = await store.writeBatch(batch(2n, [cpu(2_000, 2)]));
      expect(second.walId).toBeGreaterThan(first.walId);
      const resolved: number[] = [];
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          store.writeBatch(batch(BigInt(i + 3), [cpu(3_000 + i, i)], i % 2 === 0 ? "s1" : "")).then((r) => {
            resolved.push(r.walId);
            return r;
          }),
        ),
      );
      // Resolution follows call order, and ids increase along it.
      expect(resolved).toEqual(results.map((r) => r.walId));
      for (let i = 1; i < resolved.length; i++) expect(resolved[i]!).toBeGreaterThan(resolved[i - 1]!);
      expect(resolved[0]!).toBeGreaterThan(second.walId);
      await store.close();
    });

    it("writes nothing for a duplicate batch: WAL id 0, no WAL row, no count", async () => {
      const store = await factory.open();
      const r = await store.writeBatch(batch(1n, [procs(1_000, 1), cpu(1_000, 10)]));
      const dup = await store.writeBatch(batch(1n, [procs(5_000, 2), cpu(5_000, 20), cpu(6_000, 30)]));
      expect(dup).toEqual({ duplicate: true, stored: 0, walId: 0 });
      // The same key twice in one group: the first is stored, the second is the duplicate.
      const [a, b] = await Promise.all([
        store.writeBatch(batch(2n, [cpu(2_000, 1)])),
        store.writeBatch(batch(2n, [cpu(2_000, 1)])),
      ]);
      expect(a).toMatchObject({ duplicate: false, stored: 1 });
      expect(b).toEqual({ duplicate: true, stored: 0, walId: 0 });
      expect((await store.readWal(0, 100)).map((w) => w.id)).toEqual([r.walId, a.walId]);
      expect(await store.countEnvelopes("web-01")).toBe(3);
      expect((await store.listEnvelopes({ hostname: "web-01", limit: 10 })).map((e) => e.timestampMs)).toEqual([1_000]);
      await store.close();
    });

    it("reads the WAL after an id, oldest first, limited, each row a MetricBatch of its envelopes", async () => {
      const store = await factory.open();
      const ids: number[] = [];
      for (let i = 0; i < 5; i++) {
        const env = i === 2 ? [cpu(1_000 + i, i), procs(1_000 + i, i)] : [cpu(1_000 + i, i)];
        ids.push((await store.writeBatch(batch(BigInt(i + 1), env, "s1", i === 4 ? "db-01" : "web-01"))).walId);
      }
      expect(await store.readWal(ids[4]!, 10)).toEqual([]);
      const all = await store.readWal(0, 10);
      expect(all.map((w) => w.id)).toEqual(ids);
      expect(all.map((w) => w.hostname)).toEqual(["web-01", "web-01", "web-01", "web-01", "db-01"]);
      const third = fromBinary(MetricBatchSchema, all[2]!.payload);
      expect(third.hostname).toBe("web-01");
      expect(third.envelopes.map((e) => [e.type, e.payload.case])).toEqual([
        ["cpu", "cpu"],
        ["process_list", "processList"],
      ]);
      expect(third.envelopes[0]!.payload).toMatchObject({ case: "cpu", value: { usage: 2 } });
      expect(fromBinary(MetricBatchSchema, all[4]!.payload).hostname).toBe("db-01");
      expect((await store.readWal(ids[1]!, 2)).map((w) => w.id)).toEqual([ids[2], ids[3]]);
      await store.close();
    });

    it("lists snapshot envelopes only, by type and inclusive time range, limited", async () => {
      const store = await factory.open();
      const svc = create(MetricEnvelopeSchema, {
        type: "service_list",
        hostname: "web-01",
        timestamp: timestampFromMs(1_500),
        payload: { case: "serviceList", value: { services: [{ name: "sshd.service" }] } },
      });
      await store.writeBatch(batch(1n, [cpu(1_000, 1), procs(1_000, 1), disk(1_000, "/", 1n), svc]));
      await store.writeBatch(batch(2n, [procs(2_000, 2), procs(3_000, 3), cpu(2_000, 2)]));
      await store.writeBatch(batch(1n, [procs(2_500, 9, "db-01")], "s1", "db-01"));
      const list = (q: { type?: string; sinceMs?: number; untilMs?: number; limit?: number }) =>
        store
          .listEnvelopes({ hostname: "web-01", limit: 100, ...q })
          .then((rows) => rows.map((e) => [e.type, e.timestampMs]));
      expect(await list({})).toEqual([
        ["process_list", 1_000],
        ["service_list", 1_500],
        ["process_list", 2_000],
        ["process_list", 3_000],
      ]);
      expect(await list({ type: "cpu" })).toEqual([]);
      expect(await list({ type: "process_list", sinceMs: 2_000 })).toEqual([
        ["process_list", 2_000],
        ["process_list", 3_000],
      ]);
      expect(await list({ sinceMs: 1_001, untilMs: 2_000 })).toEqual([
        ["service_list", 1_500],
        ["process_list", 2_000],
      ]);
      expect(await list({ untilMs: 1_999 })).toEqual([
        ["process_list", 1_000],
        ["service_list", 1_500],
      ]);
      expect(await list({ limit: 1 })).toEqual([["process_list", 1_000]]);
      expect((await store.listEnvelopes({ hostname: "db-01", limit: 10 })).map((e) => e.timestampMs)).toEqual([2_500]);
      // Every envelope counts, snapshot or not.
      expect(await store.countEnvelopes("web-01")).toBe(7);
      expect(await store.countEnvelopes("db-01")).toBe(1);
      expect(await store.countEnvelopes()).toBe(8);
      await store.close();
    });

    it("creates series once, returns ids in input order, lists them by host and metric", async () => {
      const store = await factory.open();
      const a = { hostname: "web-01", metric: "cpu_usage", labels: "" };
      const b = { hostname: "web-01", metric: "disk_used", labels: 'mountpoint="/"' };
      const c = { hostname: "db-01", metric: "cpu_usage", labels: "" };
      const d = { hostname: "web-01", metric: "disk_used", labels: 'mountpoint="/home"' };
      expect(await store.ensureSeries([])).toEqual([]);
      const [ia, ib] = await store.ensureSeries([a, b]);
      expect(ia).not.toBe(ib);
      const again = await store.ensureSeries([c, b, a, d, c]);
      expect(again[1]).toBe(ib);
      expect(again[2]).toBe(ia);
      expect(again[0]).toBe(again[4]);
      expect(new Set(again).size).toBe(4);
      expect(await store.ensureSeries([d, c, b, a])).toEqual([again[3], again[0], ib, ia]);
      const all = await store.listSeries({});
      expect(all.length).toBe(4);
      expect(all.map((s) => s.id)).toEqual([...all.map((s) => s.id)].sort((x, y) => x - y));
      const first = all.find((s) => s.id === ia)!;
      expect(first).toMatchObject({ hostname: "web-01", metric: "cpu_usage", labels: "", flushedWalId: 0 });
      expect(first.lastT).toBeNaN();
      expect(first.lastV).toBeNaN();
      expect((await store.listSeries({ hostname: "web-01" })).map((s) => s.id).sort((x, y) => x - y)).toEqual(
        [ia!, ib!, again[3]!].sort((x, y) => x - y),
      );
      expect((await store.listSeries({ metric: "cpu_usage" })).map((s) => s.hostname).sort()).toEqual(["db-01", "web-01"]);
      expect((await store.listSeries({ hostname: "db-01", metric: "disk_used" }))).toEqual([]);
      // Concurrent creation of the same new series gives one id.
      const e = { hostname: "web-01", metric: "mem_used", labels: "" };
      const [x, y] = await Promise.all([store.ensureSeries([e]), store.ensureSeries([e, a])]);
      expect(x[0]).toBe(y[0]);
      await store.close();
    });

    it("commits a flush: chunks, rollups replaced by key, watermarks, last samples, WAL deletion, meta", async () => {
      const store = await factory.open();
      const [s1, s2] = await store.ensureSeries([
        { hostname: "web-01", metric: "cpu_usage", labels: "" },
        { hostname: "web-01", metric: "mem_used", labels: "" },
      ]);
      await store.writeBatch(batch(1n, [cpu(T0, 1)]));
      const w2 = (await store.writeBatch(batch(2n, [cpu(T0 + 1, 1)]))).walId;
      const w3 = (await store.writeBatch(batch(3n, [cpu(T0 + 2, 1)]))).walId;
      const { chunkIds } = await store.commitFlush({
        chunks: [
          { seriesId: s1!, minT: T0, maxT: T0 + 60_000, count: 13, data: bytes(1, 2, 3) },
          { seriesId: s2!, minT: T0, maxT: T0 + 30_000, count: 7, data: bytes(4) },
        ],
        rollups: [
          { tier: "1m", seriesId: s1!, windowStart: T0, data: bytes(9) },
          { tier: "1h", seriesId: s1!, windowStart: T0, data: bytes(8) },
        ],
        flushed: [
          { seriesId: s1!, walId: w2, lastT: T0 + 60_000, lastV: 42.5 },
          { seriesId: s2!, walId: w2, lastT: NaN, lastV: NaN },
        ],
        deleteWalBelow: w2,
        meta: { horizon: "123" },
      });
      expect(chunkIds.length).toBe(2);
      expect(chunkIds[0]).not.toBe(chunkIds[1]);
      expect((await store.readWal(0, 10)).map((w) => w.id)).toEqual([w2, w3]);
      expect(await store.getMeta("horizon")).toBe("123");
      expect(await store.getMeta("nothing")).toBeUndefined();
      const series = await store.listSeries({ hostname: "web-01" });
      expect(series.map((s) => [s.id, s.flushedWalId, s.lastT])).toEqual([
        [s1, w2, T0 + 60_000],
        [s2, w2, NaN],
      ]);
      expect(series[0]!.lastV).toBe(42.5);

      // The open chunk grew (same id, replaced, into the next day); a new one; a rollup window replaced.
      const second = await store.commitFlush({
        chunks: [
          { id: chunkIds[0]!, seriesId: s1!, minT: T0, maxT: T0 + DAY + 5, count: 20, data: bytes(1, 2, 3, 4) },
          { seriesId: s2!, minT: T0 + 40_000, maxT: T0 + 50_000, count: 2, data: bytes(5) },
        ],
        rollups: [{ tier: "1m", seriesId: s1!, windowStart: T0, data: bytes(10, 11) }],
        flushed: [{ seriesId: s1!, walId: w3, lastT: T0 + DAY + 5, lastV: -1 }],
        meta: { horizon: "456" },
      });
      expect(second.chunkIds[0]).toBe(chunkIds[0]);
      expect([chunkIds[0], chunkIds[1]]).not.toContain(second.chunkIds[1]);
      const chunks = await store.readChunks([s1!, s2!], T0, T0 + 2 * DAY);
      expect(chunkView(chunks)).toEqual([
        [s1, T0, T0 + DAY + 5, 20, "01020304"],
        [s2, T0, T0 + 30_000, 7, "04"],
        [s2, T0 + 40_000, T0 + 50_000, 2, "05"],
      ]);
      expect(chunks.map((c) => c.id)).toEqual([chunkIds[0], chunkIds[1], second.chunkIds[1]]);
      expect(rollupView(await store.readRollups("1m", [s1!], 0, T0 + DAY))).toEqual([["1m", s1, T0, "0a0b"]]);
      expect(rollupView(await store.readRollups("1h", [s1!], 0, T0 + DAY))).toEqual([["1h", s1, T0, "08"]]);
      expect(await store.getMeta("horizon")).toBe("456");
      const after = await store.listSeries({ hostname: "web-01" });
      expect(after.map((s) => [s.flushedWalId, s.lastT, s.lastV])).toEqual([
        [w3, T0 + DAY + 5, -1],
        [w2, NaN, NaN],
      ]);
      // An older last sample does not replace a newer one.
      await store.commitFlush({ chunks: [], rollups: [], flushed: [{ seriesId: s1!, walId: w3, lastT: T0, lastV: 7 }] });
      expect((await store.listSeries({ metric: "cpu_usage" }))[0]).toMatchObject({ lastT: T0 + DAY + 5, lastV: -1 });
      // A grown chunk whose row is gone (retention removed it meanwhile) is inserted again.
      await store.applyRetention({ raw: T0 + 3 * DAY, "1m": 0, "1h": 0 }, { "1m": 3_600_000, "1h": 86_400_000 });
      const re = await store.commitFlush({
        chunks: [{ id: chunkIds[0]!, seriesId: s1!, minT: T0 + 3 * DAY, maxT: T0 + 3 * DAY + 9, count: 3, data: bytes(6) }],
        rollups: [],
        flushed: [],
      });
      expect(re.chunkIds.length).toBe(1);
      expect(chunkView(await store.readChunks([s1!], 0, T0 + 9 * DAY))).toEqual([[s1, T0 + 3 * DAY, T0 + 3 * DAY + 9, 3, "06"]]);
      await store.close();
    });

    it("commits a flush all or nothing", async () => {
      const store = await factory.open();
      const [s1] = await store.ensureSeries([{ hostname: "web-01", metric: "cpu_usage", labels: "" }]);
      const w1 = (await store.writeBatch(batch(1n, [cpu(T0, 1)]))).walId;
      const w2 = (await store.writeBatch(batch(2n, [cpu(T0 + 1, 1)]))).walId;
      await expect(
        store.commitFlush({
          chunks: [{ seriesId: s1!, minT: T0, maxT: T0 + 10, count: 2, data: bytes(1) }],
          // A window start that is not a number cannot be stored: the whole flush fails.
          rollups: [
            { tier: "1m", seriesId: s1!, windowStart: T0, data: bytes(2) },
            { tier: "1m", seriesId: s1!, windowStart: NaN, data: bytes(3) },
          ],
          flushed: [{ seriesId: s1!, walId: w1, lastT: T0 + 10, lastV: 1 }],
          deleteWalBelow: w2,
          meta: { horizon: "1" },
        }),
      ).rejects.toThrow();
      expect(await store.readChunks([s1!], 0, T0 + DAY)).toEqual([]);
      expect(await store.readRollups("1m", [s1!], 0, T0 + DAY)).toEqual([]);
      expect((await store.listSeries({}))[0]).toMatchObject({ flushedWalId: 0 });
      expect((await store.readWal(0, 10)).map((w) => w.id)).toEqual([w1, w2]);
      expect(await store.getMeta("horizon")).toBeUndefined();
      await store.close();
    });

    it("reads chunks overlapping a closed range, by series then start, and rollup windows starting in it", async () => {
      const store = await factory.open();
      const [a, b, c] = await store.ensureSeries([
        { hostname: "web-01", metric: "m", labels: 'k="a"' },
        { hostname: "web-01", metric: "m", labels: 'k="b"' },
        { hostname: "web-01", metric: "m", labels: 'k="c"' },
      ]);
      await store.commitFlush({
        chunks: [
          { seriesId: b!, minT: T0 + 300, maxT: T0 + 400, count: 2, data: bytes(0xb2) },
          { seriesId: a!, minT: T0 + 100, maxT: T0 + 200, count: 2, data: bytes(0xa1) },
          { seriesId: b!, minT: T0 + 100, maxT: T0 + 200, count: 2, data: bytes(0xb1) },
          { seriesId: a!, minT: T0 + 201, maxT: T0 + 300, count: 2, data: bytes(0xa2) },
          { seriesId: c!, minT: T0 + 100, maxT: T0 + 200, count: 2, data: bytes(0xc1) },
        ],
        rollups: [
          { tier: "1m", seriesId: a!, windowStart: T0 + 3_600_000, data: bytes(2) },
          { tier: "1m", seriesId: a!, windowStart: T0, data: bytes(1) },
          { tier: "1m", seriesId: b!, windowStart: T0, data: bytes(3) },
          { tier: "1h", seriesId: a!, windowStart: T0, data: bytes(4) },
        ],
        flushed: [],
      });
      const view = async (from: number, to: number) =>
        (await store.readChunks([a!, b!], T0 + from, T0 + to)).map((x) => hex(x.data));
      expect(await view(0, 1_000)).toEqual(["a1", "a2", "b1", "b2"]);
      expect(await view(200, 200)).toEqual(["a1", "b1"]); // maxT == from and minT <= to: overlap
      expect(await view(201, 299)).toEqual(["a2"]); // b has a gap there
      expect(await view(0, 100)).toEqual(["a1", "b1"]); // minT == to
      expect(await view(0, 99)).toEqual([]);
      expect(await view(401, 2_000)).toEqual([]);
      expect(await view(150, 160)).toEqual(["a1", "b1"]); // range inside a chunk
      expect(await store.readChunks([], 0, T0 + DAY)).toEqual([]);
      expect((await store.readChunks([c!], 0, T0 + DAY)).map((x) => x.seriesId)).toEqual([c]);

      const windows = async (tier: "1m" | "1h", ids: number[], from: number, to: number) =>
        (await store.readRollups(tier, ids, from, to)).map((r) => [r.seriesId, r.windowStart - T0, hex(r.data)]);
      expect(await windows("1m", [a!, b!], T0, T0 + 3_600_000)).toEqual([
        [a, 0, "01"],
        [a, 3_600_000, "02"],
        [b, 0, "03"],
      ]);
      expect(await windows("1m", [a!], T0 + 1, T0 + 3_600_000)).toEqual([[a, 3_600_000, "02"]]);
      expect(await windows("1m", [a!], T0, T0 + 3_599_999)).toEqual([[a, 0, "01"]]);
      // A window that started before `from` is not returned even though it covers it.
      expect(await windows("1m", [a!], T0 + 60_000, T0 + 120_000)).toEqual([]);
      expect(await windows("1h", [a!, b!], 0, T0 + DAY)).toEqual([[a, 0, "04"]]);
      expect((await store.readRollups("1h", [a!], 0, T0 + DAY))[0]).toMatchObject({ tier: "1h" });
      await store.close();
    });

    it("applies retention: removes exactly the chunks, windows and snapshots older than the cutoffs", async () => {
      const store = await factory.open();
      const [s] = await store.ensureSeries([{ hostname: "web-01", metric: "cpu_usage", labels: "" }]);
      const H = 3_600_000;
      const windowMs = { "1m": H, "1h": DAY };
      // Raw chunks over ten days (one every 6 hours), 1m windows (1 h long) hourly over 10 days,
      // 1h windows (a day long) daily over 120 days: several day and month partitions.
      const chunks: ChunkRow[] = [];
      for (let t = T0; t < T0 + 10 * DAY; t += 6 * H) chunks.push({ seriesId: s!, minT: t, maxT: t + H, count: 60, data: bytes(1) });
      const rollups: RollupRow[] = [];
      for (let t = T0; t < T0 + 10 * DAY; t += H) rollups.push({ tier: "1m", seriesId: s!, windowStart: t, data: bytes(2) });
      for (let t = T0; t < T0 + 120 * DAY; t += DAY) rollups.push({ tier: "1h", seriesId: s!, windowStart: t, data: bytes(3) });
      await store.commitFlush({ chunks, rollups, flushed: [] });
      for (let i = 0; i < 10; i++) {
        await store.writeBatch(batch(BigInt(i + 1), [procs(T0 + i * DAY, i), cpu(T0 + i * DAY, i)]));
      }
      const latestBefore = await store.latest("web-01");

      const cutoffs = { raw: T0 + 4 * DAY + 7 * H, "1m": T0 + 5 * DAY, "1h": T0 + 45 * DAY };
      const expectChunks = chunks.filter((c) => c.maxT >= cutoffs.raw);
      const expect1m = rollups.filter((r) => r.tier === "1m" && r.windowStart + H > cutoffs["1m"]);
      const expect1h = rollups.filter((r) => r.tier === "1h" && r.windowStart + DAY > cutoffs["1h"]);
      const r = await store.applyRetention(cutoffs, windowMs);
      expect(r).toEqual({
        chunks: chunks.length - expectChunks.length,
        rollups: rollups.length - expect1m.length - expect1h.length,
        snapshots: 5, // days 0..4 are older than day 4 + 7 h
      });
      expect(chunkView(await store.readChunks([s!], 0, T0 + 200 * DAY))).toEqual(chunkView(expectChunks));
      expect(rollupView(await store.readRollups("1m", [s!], 0, T0 + 200 * DAY))).toEqual(rollupView(expect1m));
      expect(rollupView(await store.readRollups("1h", [s!], 0, T0 + 200 * DAY))).toEqual(rollupView(expect1h));
      expect((await store.listEnvelopes({ hostname: "web-01", limit: 100 })).map((e) => (e.timestampMs - T0) / DAY)).toEqual([
        5, 6, 7, 8, 9,
      ]);
      // Boundaries: a chunk ending exactly at the cutoff stays; a window ending exactly at it goes.
      expect(expectChunks[0]!.maxT).toBe(T0 + 4 * DAY + 7 * H);
      expect(expect1m[0]!.windowStart).toBe(T0 + 5 * DAY);
      // Latest values and series stay; a second run finds nothing more.
      expect(await store.latest("web-01")).toEqual(latestBefore);
      expect((await store.listSeries({})).length).toBe(1);
      expect(await store.applyRetention(cutoffs, windowMs)).toEqual({ chunks: 0, rollups: 0, snapshots: 0 });
      // Data can still be written into the retained range and beyond.
      await store.commitFlush({
        chunks: [{ seriesId: s!, minT: T0 + 5 * DAY, maxT: T0 + 5 * DAY + 1, count: 1, data: bytes(7) }],
        rollups: [{ tier: "1h", seriesId: s!, windowStart: T0 + 200 * DAY, data: bytes(8) }],
        flushed: [],
      });
      expect((await store.readChunks([s!], T0 + 5 * DAY, T0 + 5 * DAY)).map((c) => hex(c.data))).toContain("07");
      expect((await store.readRollups("1h", [s!], T0 + 200 * DAY, T0 + 200 * DAY)).length).toBe(1);
      await store.close();
    });

    it("reports its size, growing as data is written", async () => {
      const store = await factory.open();
      const empty = await store.sizeBytes();
      expect(empty).toBeGreaterThan(0);
      const ids = await store.ensureSeries(
        Array.from({ length: 50 }, (_, i) => ({ hostname: "web-01", metric: "m", labels: `k="${i}"` })),
      );
      const chunk = (seriesId: number, i: number): ChunkRow => ({
        seriesId,
        minT: T0 + i * 1000,
        maxT: T0 + i * 1000 + 999,
        count: 120,
        // Incompressible bytes, so the size cannot hide in compression.
        data: new Uint8Array(randomBytes(4096)),
      });
      await store.commitFlush({ chunks: ids.flatMap((id) => [0, 1, 2, 3].map((i) => chunk(id, i))), rollups: [], flushed: [] });
      const full = await store.sizeBytes();
      expect(full).toBeGreaterThan(empty + 50 * 4 * 4096 * 0.9);
      await store.close();
    });

    it("registers agents, keeps registration time, records contact and collector status", async () => {
      const store = await factory.open();
      await store.upsertAgent(host, ["cpu"], 1_000);
      await store.upsertAgent(create(HostInfoSchema, { ...host, agentVersion: "0.2.0" }), ["cpu", "memory"], 2_000);
      const status = create(CollectorStatusSchema, { name: "cpu", health: CollectorHealth.OK, intervalMs: 5000 });
      await store.touchAgent("web-01", 3_000, [status]);
      await store.touchAgent("unknown", 3_000);
      const a = await store.getAgent("web-01");
      expect(a).toMatchObject({ registeredAtMs: 1_000, lastSeenMs: 3_000, collectors: ["cpu", "memory"] });
      expect(a!.host.agentVersion).toBe("0.2.0");
      expect(a!.host.ramTotal).toBe(16n << 30n);
      expect(a!.collectorStatus[0]).toMatchObject({ name: "cpu", health: CollectorHealth.OK });
      expect(await store.getAgent("unknown")).toBeUndefined();
      expect((await store.listAgents()).map((x) => x.host.hostname)).toEqual(["web-01"]);
      await store.close();
    });

    it("queues commands in order, caps the queue, delivers each once", async () => {
      const store = await factory.open();
      for (let i = 0; i < 3; i++) await store.enqueueCommand({ command: command(`c${i}`), hostname: "web-01", createdAtMs: 1_000 + i, requestedBy: "test" }, 3);
      await expect(
        store.enqueueCommand({ command: command("c3"), hostname: "web-01", createdAtMs: 2_000, requestedBy: "test" }, 3),
      ).rejects.toBeInstanceOf(QueueFullError);
      const first = await store.claimNextCommand("web-01", 5_000);
      expect(first).toMatchObject({ state: CommandState.DELIVERED, deliveredAtMs: 5_000 });
      expect(first!.command.id).toBe("c0");
      // Delivered commands leave the queue: there is room again.
      await store.enqueueCommand({ command: command("c3"), hostname: "web-01", createdAtMs: 2_000, requestedBy: "test" }, 3);
      const claims = await Promise.all([1, 2, 3, 4].map(() => store.claimNextCommand("web-01", 6_000)));
      expect(claims.map((c) => c?.command.id)).toEqual(["c1", "c2", "c3", undefined]);
      expect(await store.countPendingCommands("web-01")).toBe(4);
      const audit = await store.listCommands({ hostname: "web-01", limit: 2 });
      expect(audit.map((c) => [c.command.id, c.requestedBy])).toEqual([["c3", "test"], ["c2", "test"]]);
      expect(await store.listCommands({ hostname: "nobody", limit: 10 })).toEqual([]);
      expect((await store.listCommands({ limit: 10 })).length).toBe(4);
      // A command whose poller vanished goes back in front of newer ones.
      expect(await store.requeueCommand("c2", "other-host")).toBe(false);
      expect(await store.requeueCommand("c2", "web-01")).toBe(true);
      expect(await store.requeueCommand("c2", "web-01")).toBe(false);
      await store.enqueueCommand({ command: command("c4"), hostname: "web-01", createdAtMs: 9_000, requestedBy: "test" }, 3);
      const again = await store.claimNextCommand("web-01", 7_000);
      expect(again).toMatchObject({ state: CommandState.DELIVERED, deliveredAtMs: 7_000 });
      expect(again!.command.id).toBe("c2");
      await store.close();
    });

    it("finishes a command once, only for its own host, and expires overdue ones", async () => {
      const store = await factory.open();
      await store.enqueueCommand({ command: command("a"), hostname: "web-01", createdAtMs: 1_000, requestedBy: "test" }, 10);
      await store.enqueueCommand({ command: command("b"), hostname: "web-01", createdAtMs: 9_000, requestedBy: "test" }, 10);
      await store.claimNextCommand("web-01", 1_500);
      const outcome = create(CommandOutcomeSchema, {
        commandId: "a",
        type: CommandType.LIST_MOUNTS,
        result: { case: "listMounts", value: { mounts: [{ mountpoint: "/", device: "/dev/vda1", fstype: "ext4" }] } },
      });
      expect(await store.finishCommand("a", "intruder", CommandState.COMPLETED, outcome, 2_000)).toBeUndefined();
      const done = await store.finishCommand("a", "web-01", CommandState.COMPLETED, outcome, 2_000);
      expect(done).toMatchObject({ state: CommandState.COMPLETED, finishedAtMs: 2_000 });
      const retry = await store.finishCommand("a", "web-01", CommandState.FAILED, undefined, 3_000);
      expect(retry).toMatchObject({ state: CommandState.COMPLETED, finishedAtMs: 2_000 });
      expect(await store.expireCommands(5_000, 10_000)).toEqual([]);
      expect(await store.expireCommands(10_000, 10_000)).toEqual(["b"]);
      const b = await store.getCommand("b");
      expect(b).toMatchObject({ state: CommandState.EXPIRED, finishedAtMs: 10_000 });
      const a = await store.getCommand("a");
      expect(a!.outcome!.result).toMatchObject({ case: "listMounts" });
      expect(await store.getCommand("nope")).toBeUndefined();
      await store.close();
    });

    if (factory.reopen) {
      const reopen = factory.reopen;
      it("keeps metrics, series, the WAL, agents, commands and replay keys across a restart", async () => {
        const store = await factory.open();
        await store.upsertAgent(host, [], 1_000);
        const w = await store.writeBatch(batch(1n, [cpu(1_000, 1), procs(1_000, 3)]));
        const [s] = await store.ensureSeries([{ hostname: "web-01", metric: "cpu_usage", labels: "" }]);
        await store.commitFlush({
          chunks: [{ seriesId: s!, minT: T0, maxT: T0 + 5, count: 2, data: bytes(1, 2) }],
          rollups: [{ tier: "1m", seriesId: s!, windowStart: T0, data: bytes(3) }],
          flushed: [{ seriesId: s!, walId: w.walId, lastT: T0 + 5, lastV: 2 }],
          meta: { horizon: "9" },
        });
        await store.enqueueCommand({ command: command("x"), hostname: "web-01", createdAtMs: 1_000, requestedBy: "test" }, 10);
        await store.close();
        const again = await reopen();
        expect(await again.countEnvelopes()).toBe(2);
        expect(await again.countEnvelopes("web-01")).toBe(2);
        expect((await again.writeBatch(batch(1n, [cpu(1_000, 1)]))).duplicate).toBe(true);
        expect((await again.readWal(0, 10)).map((r) => r.id)).toEqual([w.walId]);
        expect((await again.listEnvelopes({ hostname: "web-01", limit: 10 })).length).toBe(1);
        expect(await again.ensureSeries([{ hostname: "web-01", metric: "cpu_usage", labels: "" }])).toEqual([s]);
        expect((await again.listSeries({}))[0]).toMatchObject({ id: s, flushedWalId: w.walId, lastT: T0 + 5, lastV: 2 });
        expect(chunkView(await again.readChunks([s!], T0, T0))).toEqual([[s, T0, T0 + 5, 2, "0102"]]);
        expect((await again.readRollups("1m", [s!], T0, T0)).length).toBe(1);
        expect(await again.getMeta("horizon")).toBe("9");
        const next = await again.writeBatch(batch(2n, [cpu(2_000, 1)]));
        expect(next.walId).toBeGreaterThan(w.walId);
        expect(await again.getAgent("web-01")).toBeDefined();
        expect((await again.claimNextCommand("web-01", 2_000))?.command.id).toBe("x");
        await again.close();
      });
    }
  });
}
