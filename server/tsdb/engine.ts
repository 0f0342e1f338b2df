/**
 * The time-series engine: turns committed batches into series samples (flatten → head), writes the head to
 * compressed chunks and rollup windows (flush), replays the write-ahead log after a restart, answers queries and
 * enforces retention. Storage goes through the Store interface, so SQLite and PostgreSQL behave the same.
 *
 * Durability: a batch is acknowledged once its WAL row is committed (Store.writeBatch). A flush writes every dirty
 * series' chunks, the rollups due and the per-series watermarks in slices of series (one transaction each, ingest
 * running between them), and its last slice deletes the WAL rows the flush covered; after a crash the remaining WAL
 * rows are replayed into the head, skipping what a stored slice holds. Nothing acknowledged is lost or doubled.
 */
import { fromBinary } from "@bufbuild/protobuf";
import type { Logger } from "../../common/logger.js";
import { MetricBatchSchema, MetricEnvelopeSchema, type MetricEnvelope } from "../../gen/spectra/v1/metrics_pb.js";
import type { ChunkRow, LatestRow, RetentionCutoffs, RollupRow, RollupTier, Store, StoredEnvelope } from "../store/store.js";
import { envelopeKey, envelopeTimeMs } from "../store/envelope-key.js";
import { fastToBinary } from "../../common/proto/fast-encode.js";
import { fastFromBinary } from "../../common/proto/fast-decode.js";
import { envelopeSlices } from "../store/wal-payload.js";
import { decodeChunk } from "./codec/chunk.js";
import { decodeRollupChunk, encodeRollupChunk } from "./codec/rollup-chunk.js";
import { flattenEnvelope, type SeriesGroup } from "./flatten/flatten.js";
import { SeriesTable, type ClosedChunk, type SeriesView } from "./head.js";
import { aggregate, collapse, floorTo, replaceBuckets, sliceBuckets, TIERS, type Buckets } from "./rollup.js";
import { canonicalLabels, parseLabels, type Labels } from "./series.js";

export interface TsdbOptions {
  /** How often the head is written to chunks (and the WAL trimmed). */
  flushIntervalMs: number;
  /** Samples per chunk before it is closed. */
  chunkTarget: number;
  /** Chunks never span an aligned period of this length. */
  chunkSpanMs: number;
  /** An hour is rolled up this long after it ends (late samples within it need no recomputation). */
  rollupGraceMs: number;
  /** Series rolled up per flush when an hour closes (spreads the work over flushes). */
  rollupSeriesPerFlush: number;
  /** Most series written per flush transaction; the event loop runs between slices (ingest goes on during a flush). */
  flushSliceSeries: number;
  /**
   * Target time of one flush slice (its chunks, rollups and transaction): slices shrink when they take longer and
   * grow when they take under half of it, so a flush never holds the event loop for long, whatever the series cost.
   */
  flushSliceBudgetMs: number;
  /** How long each tier is kept. */
  retentionMs: RetentionCutoffs;
  retentionEveryMs: number;
  clock: () => number;
}

export const DEFAULT_TSDB_OPTIONS: Omit<TsdbOptions, "clock"> = {
  flushIntervalMs: 60_000,
  chunkTarget: 120,
  chunkSpanMs: 2 * 3_600_000,
  rollupGraceMs: 120_000,
  rollupSeriesPerFlush: 20_000,
  flushSliceSeries: 2_000,
  flushSliceBudgetMs: 10,
  retentionMs: { raw: 7 * 86_400_000, "1m": 90 * 86_400_000, "1h": 730 * 86_400_000 },
  retentionEveryMs: 3_600_000,
};

const HORIZON_KEY = "rollup_horizon";
/**
 * Fewest series per flush slice however slow they are: every slice costs a transaction and a wait for the disk, so
 * a flush of 124,000 series must not become 124,000 slices (at this floor, ~7,800).
 */
const MIN_SLICE = 16;
const HOUR = 3_600_000;
/**
 * Series-hours whose stored chunks (and day rows) the rollup job reads at once: one store call each instead of one
 * per series (on SQLite, a round trip to the store's thread). ~500 series × an hour's ~7 chunks of ~300 B: ~1 MB.
 */
const ROLLUP_READ_SERIES = 500;

/** Samples appended for one host in one batch, for live subscribers. */
export interface LiveSample {
  metric: string;
  labels: string;
  t: number;
  v: number;
}

/**
 * A latest envelope waiting for the next flush: its encoding in `bytes[0, len)` (the buffer is reused, in place, by
 * the next envelope of the same type and key until the flush takes it, so the head does not allocate, and leave
 * for the old generation to collect, a copy per envelope), or the message when no encoding was at hand.
 */
interface LatestEnvelope {
  type: string;
  key: string;
  t: number;
  bytes?: Uint8Array;
  len: number;
  env?: MetricEnvelope;
}

/** One label set's metrics on one host (a flattened group's key and metric names) and their series slots. */
interface GroupEntry {
  readonly key: string;
  readonly metrics: readonly string[];
  readonly series: Int32Array;
  readonly labels: Labels;
}

/**
 * A batch resolved to series by {@link TsdbEngine.prepare}, waiting for its commit: per flattened group (in order)
 * its entry, all values in one array (`entries[k].metrics.length` each, NaN where absent), and per envelope with a
 * timestamp its time, the end of its groups, and what its latest-envelope record needs.
 */
export interface PreparedAppend {
  readonly hostname: string;
  /** The host's group cache when prepared: a removed host gets a new one, and the entries are resolved again. */
  readonly cache: Map<string, GroupEntry[]>;
  readonly entries: readonly GroupEntry[];
  readonly values: Float64Array;
  readonly env: {
    t: number[];
    groupEnd: number[];
    type: string[];
    key: string[];
    bytes: (Uint8Array | undefined)[];
    /** The message itself, only for an envelope given without its bytes. */
    message: (MetricEnvelope | undefined)[];
  };
}

export interface FlushStats {
  series: number;
  chunks: number;
  rollups: number;
  walDeletedBelow: number;
}

export class TsdbEngine {
  /**
   * Every series: per host, by `metric \0 labels`. That key, the label text and the labels object are interned
   * (one copy shared by every host that has the series), so a series costs the head no strings of its own.
   */
  private readonly byHost = new Map<string, Map<string, number>>();
  /** Slots per metric name. */
  private readonly byMetric = new Map<string, number[]>();
  private readonly interned = new Map<string, string>();
  private readonly internedLabels = new Map<string, Labels>();
  /** Every series' state, by slot. */
  private readonly head = new SeriesTable();
  /** Per host: group key → (metrics array → slots parallel to it). */
  private readonly groupCache = new Map<string, Map<string, GroupEntry[]>>();
  private readonly live = new Map<string, Set<(samples: LiveSample[]) => void>>();
  /**
   * Per host: the newest envelope per (type, key) received since the last flush (stored by the next flush), as its
   * binary encoding (a fraction of the decoded message's memory), or as the message when no encoding was at hand.
   */
  private latestEnv = new Map<string, Map<string, LatestEnvelope>>();
  private readonly groups: SeriesGroup[] = [];
  /** prepare's values, before they are copied out at their final length. */
  private scratchValues = new Float64Array(4096);
  private maxAppendedWal = 0;
  /** Hours before this are rolled up (ms, hour aligned); undefined until the first sample. */
  private horizon: number | undefined;
  /** The hour being rolled up across flushes, and the series still to do. */
  private rollingHour: { start: number; todo: number[] } | undefined;
  /** Series (or hosts) per flush slice, learnt from the slices' durations (see flushSliceBudgetMs). */
  private sliceSize = 64;
  /**
   * How long the last flush slice held the event loop: from its start until its transaction was handed over, less
   * its waits for the store (series ids, reads for rollups: round trips to the store's thread on SQLite).
   */
  private lastSliceMs = 0;
  /** Time the flush spent waiting for the store's reads and series ids (see lastSliceMs). */
  private storeWaitMs = 0;
  /** The running flush (or host removal): one at a time. */
  private flushing: Promise<unknown> | undefined;
  private timers: NodeJS.Timeout[] = [];
  private closed = false;

  private constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    readonly opts: TsdbOptions,
  ) {}

  /** Loads known series, replays the WAL and starts the flush and retention jobs (when `start`). */
  static async open(store: Store, logger: Logger, opts: Partial<TsdbOptions> = {}, start = true): Promise<TsdbEngine> {
    const e = new TsdbEngine(store, logger, { ...DEFAULT_TSDB_OPTIONS, clock: Date.now, ...opts });
    await e.load();
    if (start) e.start();
    return e;
  }

  /** An engine over a store known to be empty (tests): nothing to load, no background jobs. */
  static fresh(store: Store, logger: Logger, opts: Partial<TsdbOptions> = {}): TsdbEngine {
    return new TsdbEngine(store, logger, { ...DEFAULT_TSDB_OPTIONS, clock: Date.now, ...opts });
  }

  private async load(): Promise<void> {
    await this.loadSeries();
    const h = await this.store.getMeta(HORIZON_KEY);
    if (h !== undefined) {
      this.horizon = Number(h);
    } else if (this.head.size > 0) {
      // Stored samples but no rollup yet (the server stopped within its first hour): start at the oldest latest.
      let oldest = Number.POSITIVE_INFINITY;
      for (const s of this.slots()) oldest = Math.min(oldest, this.head.lastT[s]!);
      if (Number.isFinite(oldest)) this.horizon = floorTo(oldest, HOUR);
    }
    if (this.horizon !== undefined) {
      const h = this.head;
      for (const s of this.slots()) if (h.lastT[s]! >= this.horizon) h.rollFrom[s] = this.horizon;
    }
    let after = 0;
    let replayed = 0;
    for (;;) {
      const rows = await this.store.readWal(after, 500);
      if (rows.length === 0) break;
      for (const row of rows) {
        const batch = fromBinary(MetricBatchSchema, row.payload);
        this.append(row.id, row.hostname, batch.envelopes, true, envelopeSlices(row.payload));
        after = row.id;
        replayed++;
      }
    }
    if (replayed > 0) this.logger.info({ batches: replayed }, "replayed the write-ahead log into the head");
  }

  /**
   * Adds stored series this engine does not know and takes newer stored latest values. At start, and after each
   * flush on a store several servers share (series and values another server flushed become visible here).
   */
  private async loadSeries(): Promise<void> {
    const h = this.head;
    for (const row of await this.store.listSeries({})) {
      const known = this.byHost.get(row.hostname)?.get(`${row.metric}\u0000${row.labels}`);
      const s = known ?? this.addSeries(row.hostname, row.metric, parseLabels(row.labels), row.labels);
      if (h.rowId(s) === undefined) h.id[s] = row.id;
      if (known === undefined) h.walMax[s] = row.flushedWalId;
      if (Number.isFinite(row.lastT) && row.lastT > h.lastT[s]!) {
        h.lastT[s] = row.lastT;
        h.lastV[s] = row.lastV;
      }
    }
  }

  private start(): void {
    const shared = this.store.subscribe !== undefined; // a database other servers write too
    const flushTimer = setInterval(() => {
      this.flush()
        .then(() => (shared ? this.loadSeries() : undefined))
        .catch((err: unknown) => this.logger.error({ err }, "flushing the time-series head failed"));
    }, this.opts.flushIntervalMs);
    const retentionTimer = setInterval(() => {
      this.applyRetention().catch((err: unknown) => this.logger.error({ err }, "retention job failed"));
    }, this.opts.retentionEveryMs);
    flushTimer.unref();
    retentionTimer.unref();
    this.timers.push(flushTimer, retentionTimer);
    setImmediate(() => {
      this.applyRetention().catch((err: unknown) => this.logger.error({ err }, "retention job failed"));
    });
  }

  /** Number of series in the head. */
  get size(): number {
    return this.head.size;
  }

  /** Every series' slot. */
  private *slots(): IterableIterator<number> {
    const h = this.head;
    for (let s = 0, n = h.limit; s < n; s++) if (h.live(s)) yield s;
  }

  /** One shared, flat copy of a string many series repeat. */
  private intern(text: string): string {
    let s = this.interned.get(text);
    if (s === undefined) {
      s = Buffer.from(text, "utf8").toString("utf8"); // flat, not a chain of concatenations
      this.interned.set(s, s);
    }
    return s;
  }

  private addSeries(hostname: string, metric: string, labels: Labels, labelsText: string): number {
    const key = this.intern(`${metric}\u0000${labelsText}`);
    let hs = this.byHost.get(hostname);
    if (!hs) this.byHost.set(this.intern(hostname), (hs = new Map()));
    const known = hs.get(key);
    if (known !== undefined) return known;
    const text = this.intern(labelsText);
    let shared = this.internedLabels.get(text);
    if (!shared) this.internedLabels.set(text, (shared = labels));
    const name = this.intern(metric);
    const s = this.head.add(this.intern(hostname), name, shared, text);
    hs.set(key, s);
    let m = this.byMetric.get(name);
    if (!m) this.byMetric.set(name, (m = []));
    m.push(s);
    return s;
  }

  /**
   * Appends the samples of a committed batch (WAL row `walId`): {@link prepare} and {@link appendPrepared} in one
   * step (WAL replay, tests). `replay` skips samples a flush already stored.
   */
  append(walId: number, hostname: string, envelopes: readonly MetricEnvelope[], replay = false, bytes?: readonly Uint8Array[]): void {
    this.appendPrepared(walId, this.prepare(hostname, envelopes, bytes), replay);
  }

  /**
   * Resolves a batch's samples to series without touching their data (new series are created, empty), before its
   * commit: the result holds numbers, series entries and the envelopes' bytes, not the decoded messages, so the
   * caller can let the messages go while the store commits. Decoded batches that lived through the commit wait were
   * most of what V8's young-generation collections had to copy (docs/benchmarks.md, "Storage"). `bytes[i]`, when
   * given, is envelope i's binary encoding (copied, when appended, as the host's latest envelope of its kind).
   */
  prepare(hostname: string, envelopes: readonly MetricEnvelope[], bytes?: readonly Uint8Array[]): PreparedAppend {
    let cache = this.groupCache.get(hostname);
    if (!cache) this.groupCache.set(hostname, (cache = new Map()));
    const withBytes = bytes !== undefined && bytes.length === envelopes.length ? bytes : undefined;
    const entries: GroupEntry[] = [];
    const env: PreparedAppend["env"] = { t: [], groupEnd: [], type: [], key: [], bytes: [], message: [] };
    const groups = this.groups;
    let values = this.scratchValues;
    let n = 0;
    for (let e = 0; e < envelopes.length; e++) {
      const m = envelopes[e]!;
      if (!m.timestamp) continue;
      groups.length = 0;
      flattenEnvelope(m, groups);
      for (let g = 0; g < groups.length; g++) {
        const group = groups[g]!;
        entries.push(this.entryFor(hostname, cache, group.key, group.metrics, group.labels));
        const vs = group.values;
        if (n + vs.length > values.length) {
          const grown = new Float64Array(Math.max(values.length * 2, n + vs.length));
          grown.set(values.subarray(0, n));
          this.scratchValues = values = grown;
        }
        for (let i = 0; i < vs.length; i++) values[n++] = vs[i]!;
      }
      const src = withBytes?.[e];
      env.t.push(envelopeTimeMs(m, 0));
      env.groupEnd.push(entries.length);
      env.type.push(m.type);
      env.key.push(envelopeKey(m));
      env.bytes.push(src);
      env.message.push(src ? undefined : m);
    }
    groups.length = 0;
    return { hostname, cache, entries, values: values.slice(0, n), env };
  }

  /** The cache entry (series slots) of one label set's metrics on a host, creating its series when new. */
  private entryFor(
    hostname: string,
    cache: Map<string, GroupEntry[]>,
    key: string,
    metrics: readonly string[],
    labels: Labels,
  ): GroupEntry {
    let list = cache.get(key);
    if (!list) cache.set(key, (list = []));
    for (let i = 0; i < list.length; i++) if (list[i]!.metrics === metrics) return list[i]!;
    const labelsText = canonicalLabels(labels);
    const series = Int32Array.from(metrics, (m) => this.addSeries(hostname, m, labels, labelsText));
    const entry: GroupEntry = { key, metrics, series, labels: this.internedLabels.get(labelsText) ?? labels };
    list.push(entry);
    return entry;
  }

  /**
   * Appends a prepared batch once it is committed (WAL row `walId`). Called right after Store.writeBatch resolves,
   * in commit order. Entries of a host removed since {@link prepare} are resolved again (new series).
   */
  appendPrepared(walId: number, p: PreparedAppend, replay = false): void {
    const hostname = p.hostname;
    let cache = this.groupCache.get(hostname);
    if (!cache) this.groupCache.set(hostname, (cache = new Map()));
    const entries = cache === p.cache ? p.entries : p.entries.map((x) => this.entryFor(hostname, cache, x.key, x.metrics, x.labels));
    const listeners = this.live.get(hostname);
    const liveOut: LiveSample[] | undefined = listeners && listeners.size > 0 ? [] : undefined;
    const target = this.opts.chunkTarget;
    const span = this.opts.chunkSpanMs;
    const h = this.head;
    let latest = this.latestEnv.get(hostname);
    if (!latest) this.latestEnv.set(hostname, (latest = new Map()));
    const env = p.env;
    const values = p.values;
    let o = 0;
    let vi = 0;
    for (let e = 0; e < env.t.length; e++) {
      const t = env.t[e]!;
      const type = env.type[e]!;
      const key = env.key[e]!;
      const lk = `${type}\u0000${key}`;
      const prev = latest.get(lk);
      if (!prev || t >= prev.t) {
        // a copy: the bytes given are views into the request or WAL row, which must not stay alive for this
        const src = env.bytes[e];
        if (src && prev?.bytes && prev.bytes.length >= src.length) {
          prev.bytes.set(src);
          prev.len = src.length;
          prev.t = t;
          prev.env = undefined;
        } else if (src) {
          const bytes = new Uint8Array(src.length + (src.length >>> 3) + 16); // room for the next one's varints
          bytes.set(src);
          latest.set(lk, { type, key, t, bytes, len: src.length });
        } else {
          latest.set(lk, { type, key, t, len: 0, env: env.message[e]! });
        }
      }
      const first = o;
      const end = env.groupEnd[e]!;
      for (; o < end; o++) {
        const series = entries[o]!.series;
        for (let i = 0; i < series.length; i++) {
          const v = values[vi++]!;
          if (Number.isNaN(v)) continue;
          const s = series[i]!;
          if (replay && walId <= h.walMax[s]! && h.dirty[s] === 0) continue; // already in a stored chunk
          h.append(s, t, v, walId, target, span);
          if (this.horizon !== undefined && t < this.horizon) (h.lateHours[s] ??= new Set()).add(floorTo(t, HOUR));
          else if (t < h.rollFrom[s]!) h.rollFrom[s] = t;
          if (liveOut) liveOut.push({ metric: h.metric[s]!, labels: h.labelsText[s]!, t, v });
        }
      }
      if (this.horizon === undefined) {
        this.horizon = floorTo(t, HOUR);
        for (let k = first; k < end; k++) for (const s of entries[k]!.series) h.rollFrom[s] = Math.min(h.rollFrom[s]!, t);
      }
    }
    if (walId > this.maxAppendedWal) this.maxAppendedWal = walId;
    if (liveOut && liveOut.length > 0) for (const l of listeners!) l(liveOut);
  }

  /** Puts back latest envelopes a failed flush did not store (unless newer ones arrived meanwhile). */
  private restoreLatest(old: Map<string, Map<string, LatestEnvelope>>): void {
    for (const [hostname, m] of old) {
      let cur = this.latestEnv.get(hostname);
      if (!cur) this.latestEnv.set(hostname, (cur = new Map()));
      for (const [k, v] of m) {
        const now = cur.get(k);
        if (!now || v.t > now.t) cur.set(k, v);
      }
    }
  }

  /** The latest envelope per (type, key) of a host: the stored ones, overlaid with newer ones not flushed yet. */
  async latest(hostname: string): Promise<StoredEnvelope[]> {
    const stored = await this.store.latest(hostname);
    const mem = this.latestEnv.get(hostname);
    if (!mem || mem.size === 0) return stored;
    const byKey = new Map(stored.map((s) => [`${s.type}\u0000${s.key}`, s]));
    for (const [k, l] of mem) {
      const s = byKey.get(k);
      if (!s || l.t >= s.timestampMs) {
        const envelope = l.env ?? fastFromBinary(MetricEnvelopeSchema, l.bytes!.subarray(0, l.len));
        byKey.set(k, { hostname, type: l.type, key: l.key, timestampMs: l.t, envelope });
      }
    }
    return [...byKey.values()].sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** Subscribes to live samples of a host; returns the unsubscribe function. */
  subscribe(hostname: string, cb: (samples: LiveSample[]) => void): () => void {
    let set = this.live.get(hostname);
    if (!set) this.live.set(hostname, (set = new Set()));
    set.add(cb);
    return () => {
      set!.delete(cb);
      if (set!.size === 0) this.live.delete(hostname);
    };
  }

  /** Writes the head to the store (one at a time; a call during a flush waits for it and flushes again). */
  flush(): Promise<FlushStats> {
    return this.exclusive(() => this.flushOnce());
  }

  /** Runs `fn` when no flush (or other exclusive work) runs; flushes started meanwhile wait for it. */
  private async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.flushing) await this.flushing.catch(() => undefined);
    const p = fn();
    this.flushing = p;
    try {
      return await p;
    } finally {
      if (this.flushing === p) this.flushing = undefined;
    }
  }

  /**
   * Forgets a host (its agent was removed with its data): runs `deleteStored` (which deletes the host's series,
   * chunks, rollups and WAL rows from the store) while no flush runs, then drops the host's series, latest envelopes
   * and caches from memory, so no later flush writes them back and queries no longer list it. Without
   * `deleteStored` only memory is cleared (another server deleted the data).
   */
  forgetHost(hostname: string): Promise<void>;
  forgetHost<T>(hostname: string, deleteStored: () => Promise<T>): Promise<T>;
  forgetHost<T>(hostname: string, deleteStored?: () => Promise<T>): Promise<T | undefined> {
    return this.exclusive(async () => {
      const result = deleteStored ? await deleteStored() : undefined;
      const gone = new Set(this.byHost.get(hostname)?.values() ?? []);
      const metrics = new Set<string>();
      for (const s of gone) {
        metrics.add(this.head.metric[s]!);
        this.head.remove(s);
      }
      for (const name of metrics) {
        const kept = (this.byMetric.get(name) ?? []).filter((s) => !gone.has(s));
        if (kept.length > 0) this.byMetric.set(name, kept);
        else this.byMetric.delete(name);
      }
      this.byHost.delete(hostname);
      this.groupCache.delete(hostname);
      this.latestEnv.delete(hostname);
      if (this.rollingHour) this.rollingHour.todo = this.rollingHour.todo.filter((s) => !gone.has(s));
      return result;
    });
  }

  /**
   * Writes the head in slices of at most `flushSliceSeries` series, one transaction each, yielding to the event
   * loop between them so ingest goes on during a flush (one transaction for every series of a large fleet held the
   * event loop for seconds). Each slice stores its series' chunks, rollups and watermarks together; the WAL rows
   * are deleted, and the rollup horizon moved, only by the last slice. A crash between slices is safe: replay skips
   * what a committed slice stored (per-series watermarks) and re-appends the rest from the WAL.
   */
  private async flushOnce(): Promise<FlushStats> {
    const h = this.head;
    const walBelow = this.maxAppendedWal + 1;
    const due = this.dueRollups();
    const work = new Map<number, number[]>();
    for (const w of due.work) {
      const hours = work.get(w.s);
      if (hours) hours.push(w.hour);
      else work.set(w.s, [w.hour]);
    }
    const todo = new Set<number>(work.keys());
    for (const s of this.slots()) if (h.dirty[s] === 1) todo.add(s);
    const list = [...todo];

    const latestEnv = this.latestEnv;
    this.latestEnv = new Map();
    const latestHosts = [...latestEnv.keys()];

    // Slices cover the dirty series and the hosts with latest envelopes in step: `units` is the longer list, and a
    // slice of units [u0, u1) writes the same share of both.
    const units = Math.max(1, list.length, latestHosts.length);
    const seriesAt = (u: number) => Math.floor((u * list.length) / units);
    const hostsAt = (u: number) => Math.floor((u * latestHosts.length) / units);
    const maxSize = Math.max(1, this.opts.flushSliceSeries);
    const budget = this.opts.flushSliceBudgetMs;
    const stats: FlushStats = { series: 0, chunks: 0, rollups: 0, walDeletedBelow: walBelow };
    let done = 0; // units stored
    try {
      while (true) {
        if (done > 0) await new Promise<void>((resolve) => setImmediate(resolve));
        const size = Math.min(maxSize, Math.max(MIN_SLICE, this.sliceSize));
        const end = Math.min(units, done + size);
        const last = end === units;
        const r = await this.flushSlice(
          list.slice(seriesAt(done), seriesAt(end)),
          work,
          latestEnv,
          latestHosts.slice(hostsAt(done), hostsAt(end)),
          last ? walBelow : undefined,
          last ? due.meta : undefined,
        );
        // Only the slice's own time counts (the wait for its commit to reach the disk lets other work run).
        const took = this.lastSliceMs;
        if (took > budget) this.sliceSize = Math.max(MIN_SLICE, Math.floor(((end - done) * budget) / took));
        else if (took < budget / 2 && end - done >= size) this.sliceSize = Math.min(maxSize, size * 2);
        done = end;
        stats.series += r.series;
        stats.chunks += r.chunks;
        stats.rollups += r.rollups;
        if (last) break;
      }
    } catch (err) {
      // Slices before `done` are stored; the rest goes back to the head for the next flush.
      const failed = new Set(list.slice(seriesAt(done)));
      due.undo((s) => failed.has(s));
      const failedHosts = new Set(latestHosts.slice(hostsAt(done)));
      this.restoreLatest(new Map([...latestEnv].filter(([host]) => failedHosts.has(host))));
      throw err;
    }
    if (due.meta) {
      const horizon = Number(due.meta[HORIZON_KEY]);
      this.horizon = horizon;
      // samples that arrived during this flush behind the new horizon are late data now
      for (const s of this.slots()) {
        const from = h.rollFrom[s]!;
        if (from < horizon) {
          (h.lateHours[s] ??= new Set()).add(floorTo(from, HOUR));
          h.rollFrom[s] = h.lastT[s]! >= horizon ? horizon : Number.POSITIVE_INFINITY;
        }
      }
    }
    return stats;
  }

  /** One flush transaction: the dirty series of `part` (and their due rollups), the latest envelopes of `hosts`. */
  private async flushSlice(
    part: number[],
    work: Map<number, number[]>,
    latestEnv: Map<string, Map<string, LatestEnvelope>>,
    hosts: string[],
    deleteWalBelow: number | undefined,
    meta: Record<string, string> | undefined,
  ): Promise<{ series: number; chunks: number; rollups: number }> {
    const h = this.head;
    const started = performance.now();
    const waitedBefore = this.storeWaitMs;
    await this.assignIds(part);
    const chunks: ChunkRow[] = [];
    /** Per chunk row: the open chunk it is (slot and open-chunk number), to give it the row id; else undefined. */
    const openOwners: Array<{ s: number; seq: number } | undefined> = [];
    const flushed: Array<{ seriesId: number; walId: number; lastT: number; lastV: number }> = [];
    const taken: Array<{ s: number; closed: ClosedChunk[]; ooo: { t: number[]; v: number[] } | undefined }> = [];
    for (const s of part) {
      if (h.dirty[s] === 0 || !h.live(s)) continue;
      h.dirty[s] = 0;
      const id = h.id[s]!;
      const closed = h.closed[s] ?? [];
      h.closed[s] = undefined;
      for (const c of closed) {
        chunks.push({ ...(c.id !== undefined ? { id: c.id } : {}), seriesId: id, minT: c.minT, maxT: c.maxT, count: c.count, data: c.bytes });
        openOwners.push(undefined);
      }
      if (h.enc.count(s) > 0) {
        const openId = h.openId[s]!;
        chunks.push({
          ...(openId === openId ? { id: openId } : {}),
          seriesId: id,
          minT: h.enc.minT(s),
          maxT: h.enc.maxT(s),
          count: h.enc.count(s),
          data: h.enc.bytes(s),
        });
        openOwners.push({ s, seq: h.openSeq[s]! });
      }
      const ot = h.oooT[s];
      const ooo = ot ? { t: ot, v: h.oooV[s]! } : undefined;
      const oooChunk = h.takeOutOfOrder(s);
      if (oooChunk) {
        const d = decodeChunk(oooChunk);
        chunks.push({ seriesId: id, minT: d.t[0]!, maxT: d.t[d.t.length - 1]!, count: d.t.length, data: oooChunk });
        openOwners.push(undefined);
      }
      taken.push({ s, closed, ooo });
      flushed.push({ seriesId: id, walId: h.walMax[s]!, lastT: h.lastT[s]!, lastV: h.lastV[s]! });
    }
    const latest: LatestRow[] = [];
    for (const hostname of hosts) {
      for (const l of latestEnv.get(hostname)!.values()) {
        latest.push({ hostname, type: l.type, key: l.key, timestampMs: l.t, payload: l.env ? fastToBinary(MetricEnvelopeSchema, l.env) : l.bytes!.subarray(0, l.len) });
      }
    }
    const due: Array<{ s: number; hour: number }> = [];
    for (const s of part) for (const hour of work.get(s) ?? []) due.push({ s, hour });
    let chunkIds: number[];
    let rollups: RollupRow[] = [];
    try {
      rollups = due.length > 0 ? await this.computeRollups(due, chunks) : [];
      const committing = this.store.commitFlush({
        chunks,
        rollups,
        flushed,
        ...(deleteWalBelow !== undefined ? { deleteWalBelow } : {}),
        latest,
        ...(meta ? { meta } : {}),
      });
      // Handed over: the transaction runs on the store's side; what follows is a wait.
      this.lastSliceMs = performance.now() - started - (this.storeWaitMs - waitedBefore);
      ({ chunkIds } = await committing);
    } catch (err) {
      // Back into the head: the closed chunks and out-of-order samples this slice took, and the dirty marks.
      for (const { s, closed, ooo } of taken) {
        if (!h.live(s)) continue;
        h.dirty[s] = 1;
        const now = h.closed[s];
        h.closed[s] = now ? [...closed, ...now] : closed.length > 0 ? closed : undefined;
        if (ooo) {
          h.oooT[s] = [...ooo.t, ...(h.oooT[s] ?? [])];
          h.oooV[s] = [...ooo.v, ...(h.oooV[s] ?? [])];
        }
      }
      throw err;
    }
    chunkIds.forEach((cid, i) => {
      const owner = openOwners[i];
      if (owner) h.assignOpenId(owner.s, owner.seq, cid);
    });
    return { series: taken.length, chunks: chunks.length, rollups: rollups.length };
  }

  private async assignIds(list: number[]): Promise<void> {
    const h = this.head;
    const missing = list.filter((s) => h.live(s) && h.rowId(s) === undefined);
    if (missing.length === 0) return;
    const ids = await this.waitFor(
      this.store.ensureSeries(missing.map((s) => ({ hostname: h.hostname[s]!, metric: h.metric[s]!, labels: h.labelsText[s]! }))),
    );
    missing.forEach((s, i) => (h.id[s] = ids[i]!));
  }

  /**
   * Rollup work of this flush: hours that received late samples (recomputed from raw), and closed hours past the
   * horizon (at most rollupSeriesPerFlush series-hours per flush; the horizon moves when an hour is done and skips
   * hours without samples). `undo(pred)` restores the bookkeeping of the series `pred` selects (their slice failed).
   */
  private dueRollups(): {
    work: Array<{ s: number; hour: number }>;
    meta?: Record<string, string>;
    undo: (pred: (s: number) => boolean) => void;
  } {
    const h = this.head;
    const work: Array<{ s: number; hour: number }> = [];
    const restore: Array<{ s: number; fn: () => void }> = [];
    for (const s of this.slots()) {
      const late = h.lateHours[s];
      if (!late) continue;
      for (const hour of late) work.push({ s, hour });
      h.lateHours[s] = undefined;
      restore.push({ s, fn: () => (h.lateHours[s] = late) });
    }
    let meta: Record<string, string> | undefined;
    const closedBefore = floorTo(this.opts.clock() - this.opts.rollupGraceMs, HOUR);
    let horizon = this.horizon;
    let budget = this.opts.rollupSeriesPerFlush;
    while (horizon !== undefined && horizon < closedBefore && budget > 0) {
      const hour: number = horizon;
      if (!this.rollingHour || this.rollingHour.start !== hour) {
        const todo: number[] = [];
        for (const s of this.slots()) if (h.rollFrom[s]! < hour + HOUR && h.lastT[s]! >= hour) todo.push(s);
        this.rollingHour = { start: hour, todo };
      }
      const batch = this.rollingHour.todo.splice(0, budget);
      budget -= batch.length;
      for (const s of batch) {
        work.push({ s, hour });
        const before = h.rollFrom[s]!;
        h.rollFrom[s] = h.lastT[s]! >= hour + HOUR ? Math.max(before, hour + HOUR) : Number.POSITIVE_INFINITY;
        restore.push({ s, fn: () => (h.rollFrom[s] = before) });
      }
      if (this.rollingHour.todo.length > 0) break;
      // hour done: the next hour holding samples, or the newest closed hour
      let next = Number.POSITIVE_INFINITY;
      for (const s of this.slots()) if (h.rollFrom[s]! < next) next = h.rollFrom[s]!;
      horizon = Math.min(closedBefore, Math.max(hour + HOUR, floorTo(next, HOUR)));
      meta = { [HORIZON_KEY]: String(horizon) };
      this.rollingHour = undefined;
    }
    const undo = (pred: (s: number) => boolean) => {
      for (const r of restore) if (pred(r.s) && h.live(r.s)) r.fn();
      this.rollingHour = undefined;
    };
    return { work, ...(meta ? { meta } : {}), undo };
  }

  private async computeRollups(work: Array<{ s: number; hour: number }>, pending: ChunkRow[]): Promise<RollupRow[]> {
    const h = this.head;
    await this.assignIds(work.map((w) => w.s));
    const pendingBySeries = new Map<number, ChunkRow[]>();
    for (const c of pending) {
      let l = pendingBySeries.get(c.seriesId);
      if (!l) pendingBySeries.set(c.seriesId, (l = []));
      l.push(c);
    }
    const out: RollupRow[] = [];
    const dayRows = new Map<string, { seriesId: number; day: number; hours: Buckets[] }>();
    let stored = new Map<string, ChunkRow[]>();
    for (let i = 0; i < work.length; i++) {
      // The stored chunks of the next ROLLUP_READ_SERIES series-hours in one read per hour, not one per series.
      if (i % ROLLUP_READ_SERIES === 0) stored = await this.readHours(work.slice(i, i + ROLLUP_READ_SERIES));
      const { s, hour } = work[i]!;
      const id = h.rowId(s);
      if (id === undefined) continue; // removed meanwhile
      const raw = await this.rawSamples(s, h.gen[s]!, hour, hour + HOUR - 1, pendingBySeries.get(id) ?? [], stored.get(`${id}:${hour}`) ?? []);
      const minute = aggregate(raw.t, raw.v, TIERS["1m"].bucketMs);
      if (minute.t.length === 0) continue;
      out.push({ tier: "1m", seriesId: id, windowStart: hour, data: encodeRollupChunk(toColumns(minute)) });
      const day = floorTo(hour, TIERS["1h"].windowMs);
      const k = `${id}:${day}`;
      let d = dayRows.get(k);
      if (!d) dayRows.set(k, (d = { seriesId: id, day, hours: [] }));
      d.hours.push(collapse(minute, HOUR));
    }
    // The stored day rows, one read per day for up to ROLLUP_READ_SERIES series.
    const existing = new Map<string, RollupRow>();
    const byDay = new Map<number, number[]>();
    for (const d of dayRows.values()) {
      let ids = byDay.get(d.day);
      if (!ids) byDay.set(d.day, (ids = []));
      ids.push(d.seriesId);
    }
    for (const [day, ids] of byDay) {
      for (let i = 0; i < ids.length; i += ROLLUP_READ_SERIES) {
        const rows = await this.waitFor(this.store.readRollups("1h", ids.slice(i, i + ROLLUP_READ_SERIES), day, day));
        for (const r of rows) existing.set(`${r.seriesId}:${r.windowStart}`, r);
      }
    }
    for (const d of dayRows.values()) {
      const row = existing.get(`${d.seriesId}:${d.day}`);
      let buckets = row ? fromColumns(decodeRollupChunk(row.data)) : undefined;
      for (const b of d.hours) buckets = buckets ? replaceBuckets(buckets, b) : b;
      out.push({ tier: "1h", seriesId: d.seriesId, windowStart: d.day, data: encodeRollupChunk(toColumns(buckets!)) });
    }
    return out;
  }

  /**
   * The stored chunks of each (series, hour) of `work`, by `id:hour`: one store read per distinct hour (the series of
   * a flush's rollup work are mostly in the same hour). Series without a row id yet are left out.
   */
  private async readHours(work: ReadonlyArray<{ s: number; hour: number }>): Promise<Map<string, ChunkRow[]>> {
    const h = this.head;
    const byHour = new Map<number, number[]>();
    for (const { s, hour } of work) {
      const id = h.rowId(s);
      if (id === undefined) continue;
      let ids = byHour.get(hour);
      if (!ids) byHour.set(hour, (ids = []));
      ids.push(id);
    }
    const out = new Map<string, ChunkRow[]>();
    for (const [hour, ids] of byHour) {
      for (const c of await this.waitFor(this.store.readChunks(ids, hour, hour + HOUR - 1))) {
        const k = `${c.seriesId}:${hour}`;
        let l = out.get(k);
        if (!l) out.set(k, (l = []));
        l.push(c);
      }
    }
    return out;
  }

  /** Awaits a store call of the flush, counting the wait (see lastSliceMs). */
  private async waitFor<T>(p: Promise<T>): Promise<T> {
    const w0 = performance.now();
    try {
      return await p;
    } finally {
      this.storeWaitMs += performance.now() - w0;
    }
  }

  /**
   * Raw samples of series `s` (generation `gen`) in [from, to], sorted by time: stored chunks (their newest version:
   * from `pending` when this flush rewrites them, else from memory when the head holds a newer one) plus
   * memory-only samples. Nothing from memory when the series was removed meanwhile. `prefetched`: its stored chunks
   * for exactly [from, to], read before this call (rollups read many series at once); else they are read here.
   */
  private async rawSamples(
    s: number,
    gen: number,
    from: number,
    to: number,
    pending: ChunkRow[],
    prefetched?: ChunkRow[],
  ): Promise<{ t: number[]; v: number[] }> {
    const h = this.head;
    const t: number[] = [];
    const v: number[] = [];
    const add = (data: Uint8Array) => {
      const d = decodeChunk(data);
      for (let i = 0; i < d.t.length; i++) {
        const ti = d.t[i]!;
        if (ti >= from && ti <= to) {
          t.push(ti);
          v.push(d.v[i]!);
        }
      }
    };
    const pendingIds = new Set<number>();
    for (const c of pending) {
      if (c.id !== undefined) pendingIds.add(c.id);
      if (c.maxT >= from && c.minT <= to) add(c.data);
    }
    if (!h.current(s, gen)) return sortSamples(t, v);
    const id = h.rowId(s);
    if (id !== undefined) {
      const stored = prefetched ?? (await this.store.readChunks([id], from, to));
      if (!h.current(s, gen)) return sortSamples(t, v);
      // the head's chunk ids as they are now (after the read): a chunk stored meanwhile is read from memory
      const memIds = h.memoryChunkIds(s);
      for (const c of stored) {
        if (c.id !== undefined && (pendingIds.has(c.id) || memIds.has(c.id))) continue;
        add(c.data);
      }
    }
    if (pending.length === 0) {
      const m = h.memorySamples(s);
      for (let i = 0; i < m.t.length; i++) {
        if (m.t[i]! >= from && m.t[i]! <= to) {
          t.push(m.t[i]!);
          v.push(m.v[i]!);
        }
      }
    }
    return sortSamples(t, v);
  }

  /** Raw samples of a series in [from, to], sorted (for queries); none when it was removed since selected. */
  samples(s: SeriesView, from: number, to: number): Promise<{ t: number[]; v: number[] }> {
    return this.rawSamples(s.slot, s.gen, from, to, []);
  }

  /** Rollup buckets of a tier in [from, to]: stored windows before the horizon, computed from raw after it. */
  async buckets(s: SeriesView, tier: RollupTier, from: number, to: number): Promise<Buckets> {
    const spec = TIERS[tier];
    const horizon = this.horizon ?? Number.NEGATIVE_INFINITY;
    let out: Buckets | undefined;
    if (s.id !== undefined && from < horizon) {
      const rows = await this.store.readRollups(tier, [s.id], floorTo(from, spec.windowMs), Math.min(to, horizon));
      for (const r of rows) {
        const b = sliceBuckets(fromColumns(decodeRollupChunk(r.data)), Number.NEGATIVE_INFINITY, horizon - 1);
        out = out ? replaceBuckets(out, b) : b;
      }
    }
    const rawFrom = floorTo(Math.max(from, horizon), spec.bucketMs);
    if (rawFrom <= to) {
      const raw = await this.samples(s, rawFrom, to);
      const b = aggregate(raw.t, raw.v, spec.bucketMs);
      out = out ? replaceBuckets(out, b) : b;
    }
    return out ? sliceBuckets(out, floorTo(from, spec.bucketMs), to) : aggregate([], [], spec.bucketMs);
  }

  /** Series matching a metric (all metrics when undefined) and host (all when undefined), as of now. */
  select(q: { metric?: string; hostname?: string }): SeriesView[] {
    const h = this.head;
    let base: Iterable<number>;
    if (q.metric !== undefined) base = this.byMetric.get(q.metric) ?? [];
    else if (q.hostname !== undefined) base = this.byHost.get(q.hostname)?.values() ?? [];
    else base = this.slots();
    const out: SeriesView[] = [];
    for (const s of base) if (q.hostname === undefined || h.hostname[s] === q.hostname) out.push(h.view(s));
    return out;
  }

  hosts(): string[] {
    return [...this.byHost.keys()].sort();
  }

  /** The time before which rollups are stored (later buckets come from raw samples). */
  rollupHorizon(): number | undefined {
    return this.horizon;
  }

  /** Removes data older than each tier's retention. */
  async applyRetention(): Promise<{ chunks: number; rollups: number; snapshots: number }> {
    const now = this.opts.clock();
    const r = this.opts.retentionMs;
    const res = await this.store.applyRetention(
      { raw: now - r.raw, "1m": now - r["1m"], "1h": now - r["1h"] },
      { "1m": TIERS["1m"].windowMs, "1h": TIERS["1h"].windowMs },
    );
    if (res.chunks + res.rollups + res.snapshots > 0) this.logger.info(res, "retention removed old data");
    return res;
  }

  /** Stops the jobs and flushes the head. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    await this.flush();
  }
}

function sortSamples(t: number[], v: number[]): { t: number[]; v: number[] } {
  let sorted = true;
  for (let i = 1; i < t.length; i++) {
    if (t[i - 1]! > t[i]!) {
      sorted = false;
      break;
    }
  }
  if (sorted) return { t, v };
  const order = t.map((_, i) => i).sort((a, b) => t[a]! - t[b]! || a - b);
  return { t: order.map((i) => t[i]!), v: order.map((i) => v[i]!) };
}

function toColumns(b: Buckets) {
  return {
    t: Float64Array.from(b.t),
    min: Float64Array.from(b.min),
    max: Float64Array.from(b.max),
    sum: Float64Array.from(b.sum),
    count: Float64Array.from(b.count),
    last: Float64Array.from(b.last),
    lastT: Float64Array.from(b.lastT),
  };
}

function fromColumns(c: ReturnType<typeof toColumns>): Buckets {
  return {
    t: Array.from(c.t),
    min: Array.from(c.min),
    max: Array.from(c.max),
    sum: Array.from(c.sum),
    count: Array.from(c.count),
    last: Array.from(c.last),
    lastT: Array.from(c.lastT),
  };
}

