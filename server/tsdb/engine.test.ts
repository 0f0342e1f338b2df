import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../common/logger.js";
import { MetricEnvelopeSchema, type MetricEnvelope } from "../../gen/spectra/v1/metrics_pb.js";
import { openSqliteStore } from "../store/sqlite/sqlite-store.js";
import type { Store } from "../store/store.js";
import { TsdbEngine, type TsdbOptions } from "./engine.js";
import { aggregate, floorTo, type Buckets } from "./rollup.js";

const dir = mkdtempSync(join(tmpdir(), "spectra-tsdb-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const T0 = Date.UTC(2026, 10, 27, 10, 0, 0); // an hour boundary

function cpu(t: number, usage: number, cores: number[] = [usage]): MetricEnvelope {
  return create(MetricEnvelopeSchema, {
    type: "cpu",
    timestamp: timestampFromMs(t),
    payload: { case: "cpu", value: { usage, cores, load1m: usage / 100 } },
  });
}

function disk(t: number, mount: string, pct: number): MetricEnvelope {
  return create(MetricEnvelopeSchema, {
    type: "disk",
    timestamp: timestampFromMs(t),
    payload: { case: "disk", value: { mountpoint: mount, diskUsedPct: pct, diskTotal: 1000n } },
  });
}

/** A seeded value stream with decimals like real CPU percentages. */
function values(seed: number) {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return Math.round((x / 2147483648) * 10000) / 100;
  };
}

class Harness {
  clock = T0;
  store: Store;
  engine!: TsdbEngine;
  seq = 0n;
  constructor(readonly path = join(dir, `tsdb-${++n}.db`)) {
    this.store = openSqliteStore(path);
  }
  async open(opts: Partial<TsdbOptions> = {}) {
    this.engine = await TsdbEngine.open(this.store, silentLogger(), { clock: () => this.clock, ...opts }, false);
    return this.engine;
  }
  /** Stores a batch the way ingest does: commit, then append (with each envelope's encoding when `withBytes`). */
  async ingest(envelopes: MetricEnvelope[], hostname = "h1", withBytes = false) {
    for (const e of envelopes) e.hostname = hostname;
    const r = await this.store.writeBatch({
      hostname,
      sessionId: "s",
      sequence: ++this.seq,
      envelopes,
      collectorStatus: [],
      receivedAtMs: this.clock,
    });
    if (!r.duplicate) this.engine.append(r.walId, hostname, envelopes, false, withBytes ? envelopes.map((e) => toBinary(MetricEnvelopeSchema, e)) : undefined);
  }
  /** Simulates a crash: the store is closed without flushing the head, then reopened. */
  async crashAndReopen(opts: Partial<TsdbOptions> = {}) {
    await this.store.close();
    this.store = openSqliteStore(this.path);
    return this.open(opts);
  }
  series(metric: string, hostname = "h1", labels = "") {
    const s = this.engine.select({ metric, hostname }).find((x) => x.labelsText === labels);
    if (!s) throw new Error(`no series ${metric}{${labels}}`);
    return s;
  }
  samples(metric: string, labels = "") {
    return this.engine.samples(this.series(metric, "h1", labels), 0, Number.MAX_SAFE_INTEGER);
  }
  rows(sql: string) {
    const db = new Database(this.path, { readonly: true });
    try {
      return db.prepare(sql).all();
    } finally {
      db.close();
    }
  }
}

describe("TsdbEngine", () => {
  it("stores every number of a payload as a series and reads it back after a flush and a restart", async () => {
    const h = new Harness();
    await h.open();
    const next = values(1);
    const want: number[] = [];
    for (let i = 0; i < 300; i++) {
      const v = next();
      want.push(v);
      await h.ingest([cpu(T0 + i * 5_000, v, [v, 100 - v]), disk(T0 + i * 5_000, "/", 50)]);
    }
    const stats = await h.engine.flush();
    // cpu: usage, load_1m, iowait, steal, cores{0}, cores{1}; disk: total, used, available, used_pct (unset optionals: none)
    expect(stats.series).toBe(10);
    expect(h.rows("SELECT count(*) AS n FROM wal")).toEqual([{ n: 0 }]);
    // 300 samples with a 120-sample target: two closed chunks and one open one per series
    expect(h.rows("SELECT count(*) AS n FROM chunks c JOIN series s ON s.id = c.series_id WHERE s.metric = 'cpu.usage'")).toEqual([{ n: 3 }]);
    await h.engine.close();
    await h.store.close();

    h.store = openSqliteStore(h.path);
    await h.open();
    const got = await h.samples("cpu.usage");
    expect(got.v).toEqual(want);
    expect(got.t).toEqual(want.map((_, i) => T0 + i * 5_000));
    expect((await h.samples("cpu.cores", 'core="1"')).v).toEqual(want.map((v) => 100 - v));
    expect((await h.samples("disk.disk_total", 'mountpoint="/"')).v.every((v) => v === 1000)).toBe(true);
    const latest = h.series("cpu.usage");
    expect([latest.lastT, latest.lastV]).toEqual([T0 + 299 * 5_000, want[299]]);
    await h.store.close();
  });

  it("replays the write-ahead log after a crash: nothing acknowledged lost, nothing doubled", async () => {
    const h = new Harness();
    await h.open();
    const next = values(2);
    const want: number[] = [];
    const add = async (count: number) => {
      for (let i = 0; i < count; i++) {
        const v = next();
        await h.ingest([cpu(T0 + want.length * 5_000, v)]);
        want.push(v);
      }
    };
    await add(50);
    await h.engine.flush();
    await add(30); // in the WAL and the head only
    await h.crashAndReopen();
    expect((await h.samples("cpu.usage")).v).toEqual(want);
    await add(10);
    await h.engine.flush();
    await h.crashAndReopen();
    expect((await h.samples("cpu.usage")).v).toEqual(want);
    await h.crashAndReopen(); // a second replay of an already replayed WAL changes nothing
    await h.engine.flush();
    await h.crashAndReopen();
    const got = await h.samples("cpu.usage");
    expect(got.v).toEqual(want);
    expect(new Set(got.t).size).toBe(want.length);
    await h.store.close();
  });

  it("keeps out-of-order samples and returns them sorted", async () => {
    const h = new Harness();
    await h.open();
    for (const i of [0, 1, 2, 5, 6, 3, 4, 7]) await h.ingest([cpu(T0 + i * 5_000, i)]);
    expect((await h.samples("cpu.usage")).v).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    await h.engine.flush();
    await h.ingest([cpu(T0 - 5_000, -1)]);
    await h.engine.flush();
    await h.crashAndReopen();
    expect((await h.samples("cpu.usage")).v).toEqual([-1, 0, 1, 2, 3, 4, 5, 6, 7]);
    await h.store.close();
  });

  it("rolls up closed hours into 1m and 1h buckets equal to a direct computation, also after late data", async () => {
    const h = new Harness();
    await h.open({ rollupGraceMs: 60_000, flushSliceSeries: 2 }); // 5 series: 3 slices per flush
    const next = values(3);
    const raw: { t: number[]; v: number[] } = { t: [], v: [] };
    // three hours of 7-second samples with jitter (buckets with 8 or 9 samples)
    for (let t = T0; t < T0 + 3 * 3_600_000; t += 7_000 + (t % 3)) {
      const v = next();
      raw.t.push(t);
      raw.v.push(v);
      await h.ingest([cpu(t, v)]);
      if (raw.t.length % 200 === 0) {
        h.clock = t;
        await h.engine.flush();
      }
    }
    h.clock = T0 + 3 * 3_600_000 + 61_000;
    for (let i = 0; i < 4; i++) await h.engine.flush(); // the horizon moves one hour per flush
    expect(h.engine.rollupHorizon()).toBe(T0 + 3 * 3_600_000);
    const s = h.series("cpu.usage");
    expectBuckets(await h.engine.buckets(s, "1m", T0, T0 + 3 * 3_600_000 - 1), aggregate(raw.t, raw.v, 60_000));
    expectBuckets(await h.engine.buckets(s, "1h", T0, T0 + 3 * 3_600_000 - 1), aggregate(raw.t, raw.v, 3_600_000));
    expect(h.rows(`SELECT tier, count(*) AS n FROM rollups WHERE series_id = ${s.id} GROUP BY tier ORDER BY tier`)).toEqual([
      { tier: "1h", n: 1 },
      { tier: "1m", n: 3 },
    ]);

    // Late data (a spool replayed after an outage) into the rolled-up second hour: recomputed, not skipped.
    for (let i = 0; i < 20; i++) {
      const t = T0 + 3_600_000 + 1_000 + i * 60_000;
      raw.t.push(t);
      raw.v.push(1000 + i);
      await h.ingest([cpu(t, 1000 + i)]);
    }
    await h.engine.flush();
    await h.crashAndReopen({ rollupGraceMs: 60_000, flushSliceSeries: 2 });
    const sorted = sortedCopy(raw);
    expectBuckets(await h.engine.buckets(h.series("cpu.usage"), "1m", T0, T0 + 3 * 3_600_000 - 1), aggregate(sorted.t, sorted.v, 60_000));
    expectBuckets(await h.engine.buckets(h.series("cpu.usage"), "1h", T0, T0 + 3 * 3_600_000 - 1), aggregate(sorted.t, sorted.v, 3_600_000));
    // The stored 1h row itself (not raw recomputation): read it with the horizon in the future of the data.
    const hourRow = await h.store.readRollups("1h", [h.series("cpu.usage").id!], floorTo(T0, 86_400_000), T0 + 86_400_000);
    expect(hourRow).toHaveLength(1);
    await h.store.close();
  });

  it("removes exactly what retention says and nothing else", async () => {
    const h = new Harness();
    const day = 86_400_000;
    await h.open({ retentionMs: { raw: 2 * day, "1m": 4 * day, "1h": 10 * day }, rollupGraceMs: 0 });
    for (let d = 0; d < 6; d++) {
      for (let i = 0; i < 10; i++) await h.ingest([cpu(T0 + d * day + i * 60_000, d * 10 + i)]);
      h.clock = T0 + d * day + 2 * 3_600_000;
      await h.engine.flush();
      await h.engine.flush();
      await h.engine.flush();
    }
    h.clock = T0 + 5 * day + 3_600_000;
    await h.engine.flush();
    const r = await h.engine.applyRetention();
    // raw cutoff = now - 2 days = day 3 + 1 h: the chunks of days 0..3 (one per day: chunks never span 2 h periods)
    // 1m cutoff = now - 4 days = day 1 + 1 h: the hour windows of days 0 and 1 (the latter ends exactly at the cutoff)
    const perSeries = 5; // usage, load_1m, iowait, steal, cores{0}
    expect(r.chunks).toBe(4 * perSeries);
    expect(r.rollups).toBe(2 * perSeries);
    const left = await h.samples("cpu.usage");
    expect(Math.min(...left.t)).toBe(T0 + 4 * day);
    expect(left.t).toHaveLength(20);
    expect(h.rows("SELECT count(*) AS n FROM rollups WHERE tier = '1m'")).toEqual([{ n: 4 * perSeries }]);
    expect(h.rows("SELECT count(*) AS n FROM rollups WHERE tier = '1h'")).toEqual([{ n: 6 * perSeries }]);
    await h.store.close();
  });

  it("serves the latest envelope per type and key from memory, stores it at a flush, restores it after a crash", async () => {
    const h = new Harness();
    await h.open();
    const view = async () => (await h.engine.latest("h1")).map((l) => [l.type, l.key, l.timestampMs]);
    await h.ingest([disk(T0, "/", 1), disk(T0, "/home", 2), cpu(T0, 5)]);
    await h.ingest([disk(T0 - 1_000, "/", 0)]); // older: not the latest
    await h.ingest([cpu(T0 + 5_000, 6)]);
    const want = [
      ["cpu", "", T0 + 5_000],
      ["disk", "/", T0],
      ["disk", "/home", T0],
    ];
    expect(await view()).toEqual(want);
    expect(await h.store.latest("h1")).toEqual([]); // not stored per batch
    await h.crashAndReopen(); // WAL replay rebuilds it
    expect(await view()).toEqual(want);
    await h.engine.flush();
    expect((await h.store.latest("h1")).map((l) => [l.type, l.key, l.timestampMs])).toEqual(want);
    await h.ingest([cpu(T0 + 10_000, 7)]);
    expect((await view())[0]).toEqual(["cpu", "", T0 + 10_000]);
    await h.store.close();
  });

  it("keeps the newest latest envelope when encodings of other sizes replace it in memory", async () => {
    const h = new Harness();
    await h.open();
    const cores = async () => {
      const l = (await h.engine.latest("h1")).find((x) => x.type === "cpu")!;
      return l.envelope.payload.case === "cpu" ? l.envelope.payload.value.cores : [];
    };
    // 8 cores, then smaller (reuses the buffer), larger (a new one), smaller again
    const sizes = [8, 1, 16, 2];
    for (const [i, n] of sizes.entries()) {
      const values = Array.from({ length: n }, (_, k) => i * 100 + k + 0.5);
      await h.ingest([cpu(T0 + i * 5_000, i, values)], "h1", true);
      expect(await cores()).toEqual(values);
    }
    await h.engine.flush();
    const stored = (await h.store.latest("h1")).find((x) => x.type === "cpu")!;
    expect(stored.envelope.payload.case === "cpu" ? stored.envelope.payload.value.cores : []).toEqual([300.5, 301.5]);
    await h.store.close();
  });

  it("streams live samples to subscribers of a host", async () => {
    const h = new Harness();
    await h.open();
    const seen: string[] = [];
    const stop = h.engine.subscribe("h1", (samples) => seen.push(...samples.map((s) => `${s.metric}{${s.labels}}=${s.v}`)));
    await h.ingest([disk(T0, "/data", 12.5)]);
    await h.ingest([disk(T0, "/data", 1)], "h2");
    stop();
    await h.ingest([disk(T0 + 1, "/data", 13)]);
    expect(seen).toEqual([
      'disk.disk_total{mountpoint="/data"}=1000',
      'disk.disk_used{mountpoint="/data"}=0',
      'disk.disk_available{mountpoint="/data"}=0',
      'disk.disk_used_pct{mountpoint="/data"}=12.5',
    ]);
    await h.store.close();
  });
});

describe("TsdbEngine flush in slices", () => {
  /** Replaces some of the harness store's methods; the others are the real store's. */
  function overrideStore(h: Harness, make: (real: Store) => Partial<Store>): void {
    const real = h.store;
    const over = make(real);
    h.store = new Proxy(real, {
      get(target, prop, receiver) {
        if (Object.hasOwn(over, prop)) return over[prop as keyof Store];
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  }
  /** A store whose commitFlush runs `before(call)` first (to ingest meanwhile, or to fail a slice). */
  function hooked(h: Harness, before: (call: number) => Promise<void>): void {
    let calls = 0;
    overrideStore(h, (real) => ({
      commitFlush: async (w) => {
        await before(++calls);
        return real.commitFlush(w);
      },
    }));
  }
  const hosts = ["h1", "h2", "h3", "h4", "h5"];

  it("an open chunk a flush stores while ingest closes it keeps its one row (updated, not written twice)", async () => {
    const h = new Harness();
    let during = 0;
    hooked(h, async (call) => {
      if (call !== 1) return;
      // the open chunk (115 samples, never stored) reaches 120 and closes while this flush writes it
      for (let i = 115; i < 125; i++) await h.ingest([cpu(T0 + i * 5_000, i)]);
      during = 10;
    });
    await h.open();
    for (let i = 0; i < 115; i++) await h.ingest([cpu(T0 + i * 5_000, i)]);
    await h.engine.flush();
    expect(during).toBe(10);
    await h.engine.flush();
    const usage = h.series("cpu.usage");
    expect(h.rows(`SELECT count, min_t AS minT FROM chunks WHERE series_id = ${usage.id} ORDER BY min_t`)).toEqual([
      { count: 120, minT: T0 },
      { count: 5, minT: T0 + 120 * 5_000 },
    ]);
    expect((await h.samples("cpu.usage")).v).toEqual(Array.from({ length: 125 }, (_, i) => i));
    await h.crashAndReopen();
    expect((await h.samples("cpu.usage")).v).toEqual(Array.from({ length: 125 }, (_, i) => i));
    await h.store.close();
  });

  it("shrinks its slices when they hold the event loop past the budget", async () => {
    const h = new Harness();
    const perCall: number[] = [];
    overrideStore(h, (real) => ({
      commitFlush: (w) => {
        perCall.push(w.flushed.length);
        const until = performance.now() + w.flushed.length; // 1 ms of work per series, on the event loop
        while (performance.now() < until);
        return real.commitFlush(w);
      },
    }));
    await h.open({ flushSliceBudgetMs: 10 });
    const many = Array.from({ length: 40 }, (_, i) => `host-${i}`); // 40 hosts x 5 cpu series
    for (const host of many) await h.ingest([cpu(T0, 1)], host);
    const stats = await h.engine.flush();
    expect(stats.series).toBe(200);
    expect(perCall[0]).toBe(64); // the first slice at the starting size: 64 ms, over the budget
    // then the floor of 16 series (16 ms here, still over: never fewer than that per slice)
    expect(perCall.slice(1).every((n) => n <= 16)).toBe(true);
    expect(perCall.reduce((a, b) => a + b, 0)).toBe(200);
    await h.store.close();
  });

  it("does not count its waits for the store (series ids) as slice time", async () => {
    const h = new Harness();
    const perCall: number[] = [];
    overrideStore(h, (real) => ({
      // 30 ms away from the event loop (the store's thread, a slow disk): not the slice's own time
      ensureSeries: async (series) => {
        await new Promise((r) => setTimeout(r, 30));
        return real.ensureSeries(series);
      },
      commitFlush: (w) => {
        perCall.push(w.flushed.length);
        return real.commitFlush(w);
      },
    }));
    await h.open({ flushSliceBudgetMs: 10 });
    for (let i = 0; i < 40; i++) await h.ingest([cpu(T0, 1)], `host-${i}`); // 200 new series
    await h.engine.flush();
    expect(perCall[0]).toBe(64);
    expect(perCall[1]).toBeGreaterThanOrEqual(64); // counted, the 30 ms wait would have shrunk it to 21
    expect(perCall.reduce((a, b) => a + b, 0)).toBe(200);
    await h.store.close();
  });

  it("reads the stored chunks and day rows for its rollups many series at a time", async () => {
    const h = new Harness();
    const reads = { chunks: 0, chunkSeries: 0, rollups: 0 };
    overrideStore(h, (real) => ({
      readChunks: (ids, from, to) => {
        reads.chunks++;
        reads.chunkSeries += ids.length;
        return real.readChunks(ids, from, to);
      },
      readRollups: (...a) => {
        reads.rollups++;
        return real.readRollups(...a);
      },
    }));
    await h.open({ rollupGraceMs: 60_000 });
    const raw: { t: number[]; v: number[] } = { t: [], v: [] };
    // 40 hosts x 5 series through one hour, stored in chunks by a flush inside the hour
    for (let t = T0; t < T0 + 3_600_000; t += 60_000) {
      for (let i = 0; i < 40; i++) await h.ingest([cpu(t, (t / 60_000 + i) % 97)], `host-${i}`);
      raw.t.push(t);
      raw.v.push(t / 60_000 % 97);
      if (t === T0 + 1_800_000) {
        h.clock = t;
        await h.engine.flush();
      }
    }
    h.clock = T0 + 3_600_000 + 61_000;
    reads.chunks = reads.chunkSeries = reads.rollups = 0;
    await h.engine.flush(); // rolls up the hour for the 200 series
    expect(h.engine.rollupHorizon()).toBe(T0 + 3_600_000);
    expect(reads.chunkSeries).toBe(200);
    expect(reads.chunks).toBeLessThanOrEqual(10); // one per slice of series, not one per series
    expect(reads.rollups).toBeLessThanOrEqual(10);
    const s = h.series("cpu.usage", "host-0");
    expectBuckets(await h.engine.buckets(s, "1m", T0, T0 + 3_600_000 - 1), aggregate(raw.t, raw.v, 60_000));
    await h.store.close();
  });

  it("writes slices while ingest goes on; a failed slice loses and doubles nothing, also across a crash", async () => {
    for (const crashAfterFailure of [false, true]) {
      const h = new Harness();
      const want = new Map<string, number[]>(hosts.map((x) => [x, []]));
      const next = values(7);
      const ingestTick = async (which: string[]) => {
        for (const host of which) {
          const v = next();
          const mine = want.get(host)!;
          await h.ingest([cpu(T0 + mine.length * 5_000, v)], host);
          mine.push(v);
        }
      };
      let failAt = 3;
      hooked(h, async (call) => {
        // between slices: h1's series (the first slice) get samples after they were written in this flush
        if (call % 7 === 2) await ingestTick(["h1"]);
        if (call === failAt) throw new Error("disk full");
      });
      await h.open({ flushSliceSeries: 4 }); // 5 hosts x 5 cpu series: 7 slices
      for (let i = 0; i < 30; i++) await ingestTick(hosts);
      await expect(h.engine.flush()).rejects.toThrow("disk full");
      expect(h.rows("SELECT count(*) AS n FROM wal")[0]).not.toEqual({ n: 0 }); // only the last slice trims it
      failAt = 0;
      // no new samples for the failed slices' series (h2, h3): they must stay marked for the next flush
      if (crashAfterFailure) await h.crashAndReopen({ flushSliceSeries: 4 });
      const stats = await h.engine.flush();
      expect(stats.series).toBeGreaterThanOrEqual(17); // at least the 17 series of the failed and unwritten slices
      await h.crashAndReopen(); // right after the flush: what arrived during it is in the WAL still
      for (const host of hosts) {
        const s = h.engine.select({ metric: "cpu.usage", hostname: host })[0]!;
        const got = await h.engine.samples(s, 0, Number.MAX_SAFE_INTEGER);
        expect(got.v).toEqual(want.get(host));
        expect(got.t).toEqual(want.get(host)!.map((_, i) => T0 + i * 5_000));
      }
      await h.engine.flush();
      expect(h.rows("SELECT count(*) AS n FROM wal")).toEqual([{ n: 0 }]);
      for (const host of hosts) {
        const s = h.engine.select({ metric: "cpu.usage", hostname: host })[0]!;
        // stored once: the chunks hold exactly these samples
        expect(h.rows(`SELECT sum(count) AS n FROM chunks WHERE series_id = ${s.id}`)).toEqual([{ n: want.get(host)!.length }]);
      }
      await h.store.close();
    }
  });
});

function sortedCopy(raw: { t: number[]; v: number[] }) {
  const order = raw.t.map((_, i) => i).sort((a, b) => raw.t[a]! - raw.t[b]!);
  return { t: order.map((i) => raw.t[i]!), v: order.map((i) => raw.v[i]!) };
}

function expectBuckets(got: Buckets, want: Buckets) {
  expect(got.t).toEqual(want.t);
  expect(got.min).toEqual(want.min);
  expect(got.max).toEqual(want.max);
  expect(got.count).toEqual(want.count);
  expect(got.last).toEqual(want.last);
  expect(got.lastT).toEqual(want.lastT);
  got.sum.forEach((s, i) => expect(s).toBeCloseTo(want.sum[i]!, 6));
}

describe("TsdbEngine.forgetHost", () => {
  it("a batch prepared before its host was removed is appended to new series once committed", async () => {
    const h = new Harness();
    await h.open();
    await h.ingest([cpu(T0, 1), disk(T0, "/", 50)], "h1");
    const env = [cpu(T0 + 5_000, 2), disk(T0 + 5_000, "/", 51)];
    for (const e of env) e.hostname = "h1";
    const prepared = h.engine.prepare("h1", env); // resolved to h1's current series, as ingest does before the commit
    await h.engine.forgetHost("h1", () => h.store.removeAgent("h1", { atMs: h.clock, reason: "test", deleteData: true }));
    // the freed slots are taken by another host's series meanwhile
    await h.ingest([cpu(T0, 9), disk(T0, "/data", 9)], "h2");
    const r = await h.store.writeBatch({ hostname: "h1", sessionId: "", sequence: 0n, envelopes: env, collectorStatus: [], receivedAtMs: h.clock });
    h.engine.appendPrepared(r.walId, prepared);
    const usage = async (host: string) => (await h.engine.samples(h.series("cpu.usage", host), 0, Number.MAX_SAFE_INTEGER)).v;
    expect(await usage("h1")).toEqual([2]);
    expect(h.engine.select({ hostname: "h1" }).map((s) => `${s.metric}{${s.labelsText}}`).sort()).toContain('disk.disk_used_pct{mountpoint="/"}');
    expect(await usage("h2")).toEqual([9]);
    await h.engine.flush();
    await h.crashAndReopen();
    expect(await usage("h1")).toEqual([2]);
    expect(await usage("h2")).toEqual([9]);
  });

  it("forgets a removed host: its series leave memory and later flushes do not write them back", async () => {
    const h = new Harness();
    await h.open();
    for (let i = 0; i < 10; i++) {
      await h.ingest([cpu(T0 + i * 5_000, i), disk(T0 + i * 5_000, "/", 50)], "h1");
      await h.ingest([cpu(T0 + i * 5_000, i)], "h2");
    }
    await h.engine.flush();
    await h.ingest([cpu(T0 + 60_000, 1)], "h1"); // in the head only
    expect(h.engine.hosts()).toEqual(["h1", "h2"]);
    const flushing = h.engine.flush(); // a flush running meanwhile finishes first
    const r = await h.engine.forgetHost("h1", () => h.store.removeAgent("h1", { atMs: h.clock, reason: "test", deleteData: true }));
    await flushing;
    expect(r.series).toBeGreaterThan(0);
    expect(h.engine.hosts()).toEqual(["h2"]);
    expect(h.engine.select({ metric: "cpu.usage" }).map((s) => s.hostname)).toEqual(["h2"]);
    expect(h.engine.select({ hostname: "h1" })).toEqual([]);
    expect(await h.engine.latest("h1")).toEqual([]);
    await h.engine.flush();
    expect(h.rows("SELECT DISTINCT hostname FROM series ORDER BY hostname")).toEqual([{ hostname: "h2" }]);
    expect(h.rows("SELECT count(*) AS n FROM wal WHERE hostname = 'h1'")).toEqual([{ n: 0 }]);
    expect(h.rows("SELECT count(*) AS n FROM latest WHERE hostname = 'h1'")).toEqual([{ n: 0 }]);
    // A restart finds nothing of h1 either.
    await h.crashAndReopen();
    expect(h.engine.hosts()).toEqual(["h2"]);
    // The host may come back: it starts afresh.
    await h.ingest([cpu(T0 + 70_000, 7)], "h1");
    expect((await h.samples("cpu.usage")).v).toEqual([7]);
  });
});
