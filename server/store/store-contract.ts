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
import type { AgentAccessRecord, BatchWrite, ChunkRow, EnrollmentTokenRecord, RollupRow, Store } from "./store.js";

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

function accessRecord(hostname: string, over: Partial<AgentAccessRecord> = {}): AgentAccessRecord {
  return {
    hostname,
    version: 0,
    state: "pending",
    labels: {},
    keyUsed: false,
    keyPickup: false,
    diagnostics: [],
    createdAtMs: 1_000,
    updatedAtMs: 1_000,
    ...over,
  };
}

function enrollmentToken(id: string, over: Partial<EnrollmentTokenRecord> = {}): EnrollmentTokenRecord {
  return {
    id,
    name: `token ${id}`,
    secretHash: "ab".repeat(32),
    singleUse: true,
    autoApprove: false,
    createdAtMs: 1_000,
    labels: {},
    uses: 0,
    createdBy: "test",
    ...over,
  };
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

    it("records many agents' contact at once, never backwards, and leaves it to them (not to batches)", async () => {
      const store = await factory.open();
      await store.upsertAgent(host, ["cpu"], 1_000);
      await store.upsertAgent(create(HostInfoSchema, { hostname: "db-01" }), [], 1_000);
      const status = create(CollectorStatusSchema, { name: "cpu", health: CollectorHealth.ERROR, error: "boom" });
      await store.writeBatch({ ...batch(1n, [cpu(9_000, 1)]), receivedAtMs: 9_000, collectorStatus: [status] });
      expect(await store.getAgent("web-01")).toMatchObject({ lastSeenMs: 1_000, collectorStatus: [] });
      await store.touchAgents([
        { hostname: "web-01", atMs: 5_000, collectorStatus: [status] },
        { hostname: "db-01", atMs: 4_000 },
        { hostname: "ghost", atMs: 4_000 },
      ]);
      await store.touchAgents([
        { hostname: "web-01", atMs: 3_000 },
        { hostname: "db-01", atMs: 6_000, collectorStatus: [] },
      ]);
      await store.touchAgents([]);
      const web = await store.getAgent("web-01");
      expect(web).toMatchObject({ lastSeenMs: 5_000, registeredAtMs: 1_000 });
      expect(web!.collectorStatus[0]).toMatchObject({ name: "cpu", health: CollectorHealth.ERROR, error: "boom" });
      expect(await store.getAgent("db-01")).toMatchObject({ lastSeenMs: 6_000, collectorStatus: [] });
      expect(await store.getAgent("ghost")).toBeUndefined();
      expect(await store.listAgentContacts()).toEqual([
        { hostname: "db-01", lastSeenMs: 6_000 },
        { hostname: "web-01", lastSeenMs: 5_000 },
      ]);
      await store.close();
    });

    it("keeps a status timeline per agent: changes only, in time order, with the status in force before a range", async () => {
      const store = await factory.open();
      const rec = async (hostname: string, status: "online" | "stale" | "offline", atMs: number) =>
        (await store.recordAgentStatuses([{ hostname, status, atMs }]))[0];
      expect(await rec("web-01", "online", 1_000)).toBe(true);
      expect(await rec("web-01", "online", 2_000)).toBe(false); // a repeat is not a change
      expect(await rec("web-01", "stale", 16_000)).toBe(true);
      expect(await rec("web-01", "offline", 61_000)).toBe(true);
      expect(await rec("web-01", "stale", 50_000)).toBe(false); // older than the latest change
      expect(await rec("web-01", "online", 90_000)).toBe(true);
      expect(await rec("db-01", "offline", 5_000)).toBe(true);
      expect(await store.agentTimeline({ hostname: "web-01", fromMs: 0, toMs: 100_000, limit: 100 })).toEqual({
        changes: [
          { hostname: "web-01", status: "online", atMs: 1_000 },
          { hostname: "web-01", status: "stale", atMs: 16_000 },
          { hostname: "web-01", status: "offline", atMs: 61_000 },
          { hostname: "web-01", status: "online", atMs: 90_000 },
        ],
      });
      // The status in force at 20 s was stale (since 16 s); then the changes in [20 s, 80 s].
      expect(await store.agentTimeline({ hostname: "web-01", fromMs: 20_000, toMs: 80_000, limit: 100 })).toEqual({
        initial: { hostname: "web-01", status: "stale", atMs: 16_000 },
        changes: [{ hostname: "web-01", status: "offline", atMs: 61_000 }],
      });
      // A change exactly at the start belongs to the range; limit keeps the oldest.
      const at = await store.agentTimeline({ hostname: "web-01", fromMs: 16_000, toMs: 100_000, limit: 2 });
      expect(at.initial?.status).toBe("online");
      expect(at.changes.map((c) => c.atMs)).toEqual([16_000, 61_000]);
      expect(await store.agentTimeline({ hostname: "nobody", fromMs: 0, toMs: 100_000, limit: 10 })).toEqual({ changes: [] });
      expect(await store.latestAgentStatuses()).toEqual([
        { hostname: "db-01", status: "offline", atMs: 5_000 },
        { hostname: "web-01", status: "online", atMs: 90_000 },
      ]);
      await store.close();
    });

    it("stores a list of changes in order, each judged against the ones before it", async () => {
      const store = await factory.open();
      expect(
        await store.recordAgentStatuses([
          { hostname: "web-01", status: "online", atMs: 1_000 },
          { hostname: "web-01", status: "online", atMs: 2_000 }, // repeats the change just before it
          { hostname: "db-01", status: "offline", atMs: 1_000 },
          { hostname: "web-01", status: "stale", atMs: 16_000 },
          { hostname: "web-01", status: "offline", atMs: 10_000 }, // older than the stale one before it
        ]),
      ).toEqual([true, false, true, true, false]);
      expect(await store.recordAgentStatuses([])).toEqual([]);
      expect((await store.agentTimeline({ hostname: "web-01", fromMs: 0, toMs: 100_000, limit: 10 })).changes.map((c) => c.status)).toEqual(["online", "stale"]);
      await store.close();
    });

    it("stores each change once when many writers race", async () => {
      const store = await factory.open();
      // Several servers noticing the same change at once: one of them stores it.
      const results = await Promise.all(
        [0, 1, 2, 3, 4, 5].map((i) => store.recordAgentStatuses([{ hostname: "web-01", status: "offline", atMs: 5_000 + (i % 2) }])),
      );
      expect(results.flat().filter(Boolean)).toHaveLength(1);
      expect((await store.agentTimeline({ hostname: "web-01", fromMs: 0, toMs: 10_000, limit: 100 })).changes).toHaveLength(1);
      await store.close();
    });

    it("removes an agent: commands expired with the reason, agent and access gone, data kept or deleted", async () => {
      const store = await factory.open();
      for (const h of ["web-01", "db-01"]) {
        await store.upsertAgent(create(HostInfoSchema, { hostname: h }), ["cpu"], 1_000);
        await store.putAgentAccess(accessRecord(h, { state: "approved", keyId: `key-${h}`, keyHash: "ab".repeat(32) }), undefined);
        await store.writeBatch(batch(1n, [cpu(T0, 1), procs(T0, 3, h)], "s", h));
        await store.recordAgentStatuses([{ hostname: h, status: "online", atMs: 1_000 }]);
        const [sid] = await store.ensureSeries([{ hostname: h, metric: "cpu.usage", labels: "" }]);
        await store.commitFlush({
          chunks: [{ seriesId: sid!, minT: T0, maxT: T0 + 1, count: 1, data: bytes(1) }],
          rollups: [{ tier: "1m", seriesId: sid!, windowStart: T0, data: bytes(2) }, { tier: "1h", seriesId: sid!, windowStart: T0, data: bytes(3) }],
          flushed: [],
          latest: [{ hostname: h, type: "cpu", key: "", timestampMs: T0, payload: toBinary(MetricEnvelopeSchema, cpu(T0, 1)) }],
        });
      }
      await store.enqueueCommand({ command: command("q1"), hostname: "web-01", createdAtMs: 1_000, requestedBy: "test" }, 10);
      await store.enqueueCommand({ command: command("q2"), hostname: "web-01", createdAtMs: 1_001, requestedBy: "test" }, 10);
      await store.enqueueCommand({ command: command("d1"), hostname: "db-01", createdAtMs: 1_002, requestedBy: "test" }, 10);
      await store.claimNextCommand("web-01", 2_000); // q1 delivered, q2 queued

      // Data kept: only the registration, the access record and the queue go.
      const kept = await store.removeAgent("web-01", { atMs: 3_000, reason: "agent removed by test", deleteData: false });
      expect(kept).toEqual({ agent: true, access: true, expiredCommands: ["q1", "q2"], series: 0, snapshots: 0, timeline: 0 });
      for (const id of ["q1", "q2"]) {
        const c = await store.getCommand(id);
        expect(c).toMatchObject({ state: CommandState.EXPIRED, finishedAtMs: 3_000 });
        expect(c!.outcome).toMatchObject({ commandId: id, type: CommandType.LIST_MOUNTS, error: "agent removed by test" });
      }
      expect(await store.getAgent("web-01")).toBeUndefined();
      expect(await store.getAgentAccess("web-01")).toBeUndefined();
      expect(await store.findAgentAccessByKeyId("key-web-01")).toBeUndefined();
      expect(await store.countPendingCommands("web-01")).toBe(0);
      const sid = (await store.listSeries({ hostname: "web-01" }))[0]!.id;
      expect(chunkView(await store.readChunks([sid], T0, T0 + 1))).toHaveLength(1);
      expect(await store.readRollups("1h", [sid], T0, T0)).toHaveLength(1);
      expect(await store.listEnvelopes({ hostname: "web-01", limit: 10 })).toHaveLength(1);
      expect(await store.latest("web-01")).toHaveLength(1);
      expect((await store.agentTimeline({ hostname: "web-01", fromMs: 0, toMs: 10_000, limit: 10 })).changes).toHaveLength(1);
      expect((await store.writeBatch(batch(1n, [cpu(T0, 1)], "s", "web-01"))).duplicate).toBe(true);

      // Again with its data: everything of the host goes, nothing of the other host.
      const gone = await store.removeAgent("web-01", { atMs: 4_000, reason: "agent removed by test", deleteData: true });
      expect(gone).toEqual({ agent: false, access: false, expiredCommands: [], series: 1, snapshots: 1, timeline: 1 });
      expect(await store.listSeries({ hostname: "web-01" })).toEqual([]);
      expect(await store.readChunks([sid], 0, Number.MAX_SAFE_INTEGER)).toEqual([]);
      expect(await store.readRollups("1m", [sid], 0, Number.MAX_SAFE_INTEGER)).toEqual([]);
      expect(await store.readRollups("1h", [sid], 0, Number.MAX_SAFE_INTEGER)).toEqual([]);
      expect(await store.listEnvelopes({ hostname: "web-01", limit: 10 })).toEqual([]);
      expect(await store.latest("web-01")).toEqual([]);
      expect(await store.countEnvelopes("web-01")).toBe(0);
      expect((await store.readWal(0, 100)).map((w) => w.hostname)).toEqual(["db-01"]);
      expect(await store.agentTimeline({ hostname: "web-01", fromMs: 0, toMs: 10_000, limit: 10 })).toEqual({ changes: [] });
      expect((await store.writeBatch(batch(1n, [cpu(T0, 1)], "s", "web-01"))).duplicate).toBe(false); // replay keys gone too
      // The audit trail stays.
      expect((await store.listCommands({ hostname: "web-01", limit: 10 })).map((c) => c.command.id).sort()).toEqual(["q1", "q2"]);

      // The other host is untouched.
      expect(await store.getAgent("db-01")).toBeDefined();
      expect(await store.getAgentAccess("db-01")).toBeDefined();
      expect(await store.getCommand("d1")).toMatchObject({ state: CommandState.QUEUED });
      const other = (await store.listSeries({ hostname: "db-01" }))[0]!.id;
      expect(await store.readChunks([other], T0, T0 + 1)).toHaveLength(1);
      expect(await store.readRollups("1m", [other], T0, T0)).toHaveLength(1);
      expect(await store.listEnvelopes({ hostname: "db-01", limit: 10 })).toHaveLength(1);
      expect(await store.latest("db-01")).toHaveLength(1);
      expect(await store.countEnvelopes("db-01")).toBe(2);
      expect(await store.latestAgentStatuses()).toEqual([{ hostname: "db-01", status: "online", atMs: 1_000 }]);
      expect(await store.removeAgent("nobody", { atMs: 5_000, reason: "x", deleteData: true })).toEqual({
        agent: false,
        access: false,
        expiredCommands: [],
        series: 0,
        snapshots: 0,
        timeline: 0,
      });
      await store.close();
    });

    it("caps the queue under concurrent enqueues for one host", async () => {
      const store = await factory.open();
      // On PostgreSQL these run on several pool connections at once (opened first, so that the enqueues start
      // together): the cap holds only if the count and the insert of one enqueue do not interleave with another's.
      await Promise.all(Array.from({ length: 10 }, () => store.countPendingCommands("web-02")));
      const results = await Promise.allSettled(
        Array.from({ length: 12 }, (_, i) =>
          store.enqueueCommand({ command: command(`race${i}`), hostname: "web-02", createdAtMs: 1_000 + i, requestedBy: "test" }, 3),
        ),
      );
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(3);
      for (const r of results) if (r.status === "rejected") expect(r.reason).toBeInstanceOf(QueueFullError);
      expect(await store.countPendingCommands("web-02")).toBe(3);
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

    it("stores admin tokens: unique names, listing, last use, revocation by id or name", async () => {
      const store = await factory.open();
      const base = { role: "admin" as const, secretHash: "00".repeat(32), createdAtMs: 1_000, createdBy: "bootstrap" };
      expect(await store.countAdminTokens()).toBe(0);
      expect(await store.createAdminToken({ id: "0000000000000001", name: "ops", ...base })).toBe(true);
      expect(await store.createAdminToken({ id: "0000000000000002", name: "ops", ...base })).toBe(false);
      expect(await store.createAdminToken({ id: "0000000000000003", name: "alice", ...base, role: "viewer" })).toBe(true);
      expect(await store.countAdminTokens()).toBe(2);
      expect((await store.listAdminTokens()).map((t) => [t.name, t.role])).toEqual([["alice", "viewer"], ["ops", "admin"]]);
      expect(await store.getAdminToken("0000000000000001")).toEqual({ id: "0000000000000001", name: "ops", ...base });
      expect(await store.getAdminToken("0000000000000002")).toBeUndefined();
      await store.touchAdminToken("0000000000000001", 5_000);
      await store.touchAdminToken("0000000000000001", 4_000); // never backwards
      expect((await store.getAdminToken("0000000000000001"))?.lastUsedMs).toBe(5_000);
      expect(await store.revokeAdminToken("alice", 6_000)).toMatchObject({ id: "0000000000000003", revokedAtMs: 6_000 });
      expect(await store.revokeAdminToken("0000000000000001", 7_000)).toMatchObject({ name: "ops", revokedAtMs: 7_000 });
      expect(await store.revokeAdminToken("0000000000000001", 8_000)).toMatchObject({ revokedAtMs: 7_000 }); // idempotent
      expect(await store.revokeAdminToken("nobody", 8_000)).toBeUndefined();
      expect(await store.countAdminTokens()).toBe(2); // revoked ones count: the bootstrap token is made once
      await store.close();
    });

    it("stores enrollment tokens newest first and revokes them", async () => {
      const store = await factory.open();
      await store.createEnrollmentToken(enrollmentToken("e1", { labels: { site: "lab" }, expiresAtMs: 9_000 }));
      await store.createEnrollmentToken(enrollmentToken("e2", { createdAtMs: 2_000, singleUse: false, autoApprove: true }));
      expect((await store.listEnrollmentTokens()).map((t) => t.id)).toEqual(["e2", "e1"]);
      expect(await store.getEnrollmentToken("e1")).toEqual(enrollmentToken("e1", { labels: { site: "lab" }, expiresAtMs: 9_000 }));
      expect(await store.getEnrollmentToken("e2")).toMatchObject({ singleUse: false, autoApprove: true, uses: 0 });
      expect(await store.revokeEnrollmentToken("e2", 3_000)).toBe(true);
      expect(await store.revokeEnrollmentToken("e2", 4_000)).toBe(true);
      expect((await store.getEnrollmentToken("e2"))?.revokedAtMs).toBe(3_000);
      expect(await store.revokeEnrollmentToken("nope", 4_000)).toBe(false);
      await store.close();
    });

    it("writes agent access records with optimistic concurrency and finds them by key and enrollment", async () => {
      const store = await factory.open();
      const full = accessRecord("web-01", {
        state: "approved",
        enrollmentId: "enr-1",
        enrollmentSecretHash: "11".repeat(32),
        tokenId: "e1",
        labels: { site: "lab", tier: "web" },
        requestedHost: host,
        keyId: "00000000000000aa",
        keyHash: "22".repeat(32),
        keyUsed: true,
        keyPickup: false,
        nextKeyId: "00000000000000bb",
        nextKeyHash: "33".repeat(32),
        nextKeyIssuedMs: 3_000,
        rotationRequestedMs: 2_500,
        reportIntervalMs: 5_000,
        diagnostics: ["fetch_logs", "disk_usage"],
        certFingerprint: `sha256:${"ab".repeat(32)}`,
      });
      expect(await store.putAgentAccess(full, undefined)).toEqual({ ok: true, version: 1 });
      expect(await store.putAgentAccess(full, undefined)).toEqual({ ok: false, reason: "conflict" });
      const got = await store.getAgentAccess("web-01");
      expect(got).toEqual({ ...full, version: 1 });
      expect(await store.findAgentAccessByKeyId("00000000000000aa")).toEqual(got);
      expect(await store.findAgentAccessByKeyId("00000000000000bb")).toEqual(got);
      expect(await store.findAgentAccessByKeyId("00000000000000cc")).toBeUndefined();
      expect(await store.findAgentAccessByEnrollmentId("enr-1")).toEqual(got);
      expect(await store.findAgentAccessByEnrollmentId("enr-2")).toBeUndefined();
      // The rotation completes: next becomes current, optional fields cleared.
      const promoted: AgentAccessRecord = { ...got!, keyId: "00000000000000bb", keyHash: "33".repeat(32) };
      delete promoted.nextKeyId;
      delete promoted.nextKeyHash;
      delete promoted.nextKeyIssuedMs;
      delete promoted.rotationRequestedMs;
      expect(await store.putAgentAccess(promoted, 1)).toEqual({ ok: true, version: 2 });
      expect(await store.putAgentAccess({ ...promoted, state: "revoked" }, 1)).toEqual({ ok: false, reason: "conflict" });
      expect(await store.getAgentAccess("web-01")).toEqual({ ...promoted, version: 2 });
      expect(await store.findAgentAccessByKeyId("00000000000000aa")).toBeUndefined();
      // The certificate pin stayed through the rotation (asserted above); an admin clears it.
      const unpinned: AgentAccessRecord = { ...promoted, version: 2 };
      delete unpinned.certFingerprint;
      expect(await store.putAgentAccess(unpinned, 2)).toEqual({ ok: true, version: 3 });
      expect(await store.getAgentAccess("web-01")).toEqual({ ...unpinned, version: 3 });
      expect((await store.findAgentAccessByKeyId("00000000000000bb"))?.certFingerprint).toBeUndefined();
      expect(await store.putAgentAccess(accessRecord("db-01"), 4)).toEqual({ ok: false, reason: "conflict" });
      expect(await store.putAgentAccess(accessRecord("db-01"), undefined)).toEqual({ ok: true, version: 1 });
      expect(await store.getAgentAccess("db-01")).toEqual({ ...accessRecord("db-01"), version: 1 });
      expect((await store.listAgentAccess()).map((r) => r.hostname)).toEqual(["db-01", "web-01"]);
      expect(await store.deleteAgentAccess("db-01")).toBe(true);
      expect(await store.deleteAgentAccess("db-01")).toBe(false);
      expect(await store.getAgentAccess("db-01")).toBeUndefined();
      await store.close();
    });

    it("consumes an enrollment token with the write, or writes nothing", async () => {
      const store = await factory.open();
      await store.createEnrollmentToken(enrollmentToken("single"));
      await store.createEnrollmentToken(enrollmentToken("multi", { singleUse: false }));
      await store.createEnrollmentToken(enrollmentToken("expired", { singleUse: false, expiresAtMs: 5_000 }));
      await store.createEnrollmentToken(enrollmentToken("revoked", { singleUse: false }));
      await store.revokeEnrollmentToken("revoked", 2_000);
      const use = (id: string, atMs = 4_000) => ({ id, atMs });
      expect(await store.putAgentAccess(accessRecord("a"), undefined, use("single"))).toEqual({ ok: true, version: 1 });
      expect(await store.putAgentAccess(accessRecord("b"), undefined, use("single"))).toEqual({ ok: false, reason: "token-unusable" });
      expect(await store.getAgentAccess("b")).toBeUndefined();
      expect((await store.getEnrollmentToken("single"))?.uses).toBe(1);
      expect(await store.putAgentAccess(accessRecord("b"), undefined, use("multi"))).toMatchObject({ ok: true });
      expect(await store.putAgentAccess(accessRecord("c"), undefined, use("multi"))).toMatchObject({ ok: true });
      expect((await store.getEnrollmentToken("multi"))?.uses).toBe(2);
      // A conflict rolls the token use back.
      expect(await store.putAgentAccess(accessRecord("c"), undefined, use("multi"))).toEqual({ ok: false, reason: "conflict" });
      expect((await store.getEnrollmentToken("multi"))?.uses).toBe(2);
      expect(await store.putAgentAccess(accessRecord("d"), undefined, use("expired", 4_999))).toMatchObject({ ok: true });
      expect(await store.putAgentAccess(accessRecord("e"), undefined, use("expired", 5_000))).toEqual({ ok: false, reason: "token-unusable" });
      expect(await store.putAgentAccess(accessRecord("e"), undefined, use("revoked"))).toEqual({ ok: false, reason: "token-unusable" });
      expect(await store.putAgentAccess(accessRecord("e"), undefined, use("unknown"))).toEqual({ ok: false, reason: "token-unusable" });
      expect(await store.getAgentAccess("e")).toBeUndefined();
      await store.close();
    });

    it("lets exactly one of many racing enrollments use a single-use token", async () => {
      const store = await factory.open();
      await store.createEnrollmentToken(enrollmentToken("race"));
      const hosts = Array.from({ length: 8 }, (_, i) => `racer-${i}`);
      const results = await Promise.all(hosts.map((h) => store.putAgentAccess(accessRecord(h), undefined, { id: "race", atMs: 2_000 })));
      expect(results.filter((r) => r.ok)).toHaveLength(1);
      expect(results.filter((r) => !r.ok && r.reason === "token-unusable")).toHaveLength(7);
      expect(await store.listAgentAccess()).toHaveLength(1);
      expect((await store.getEnrollmentToken("race"))?.uses).toBe(1);
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
