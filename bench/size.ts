/**
 * Bytes on disk per raw sample as stored (issue 6, "Compact storage"), SQLite and PostgreSQL.
 *
 *   npm run bench:size -- [--hosts 10] [--days 1] [--chunk-target 120] [--targets sqlite,postgres] [--no-autovacuum]
 *   npm run bench:size -- --flush-scale [--series 5000] [--history 400] [--flushes 5]
 *
 * Build: simulated hosts (bench/lib/fleet.ts: what the agent sends at its default intervals, 124 series per host)
 * run for `days` simulated days from midnight UTC. Their envelopes go through the server's own TsdbEngine
 * (TsdbEngine.fresh over the store, its clock the simulated time): `append` as the ingest path does after each
 * commit, and `flush` every simulated 60 s as the server's flush job does, so the store sees exactly the engine's
 * `ensureSeries` and `commitFlush` calls: every open chunk rewritten at each flush by its row id (page churn, dead
 * rows), chunks closed at `chunk-target` samples or a 2 h boundary, rollups and latest rows beside them. The WAL
 * rows are not written (the WAL table is not what is measured here).
 *
 * PostgreSQL: the build runs faster than real time, so the autovacuum daemon would visit the chunk (and rollup)
 * partitions far less often per simulated minute than it does on a live server. The bench applies autovacuum's
 * default trigger itself after each flush (a partition is vacuumed when its dead tuples exceed 50 + 0.2 × its live
 * tuples, autovacuum_vacuum_threshold and autovacuum_vacuum_scale_factor; --no-autovacuum leaves it to the daemon)
 * and a plain VACUUM (not FULL: space is kept for reuse, as autovacuum leaves it) at the end, before measuring.
 *
 * Measured: samples (sum of the chunks' counts), chunk rows, payload bytes (sum of length(data)); the chunk table
 * with its indexes: SQLite from dbstat (every page of the table's and its indexes' b-trees, unused space in them
 * included), PostgreSQL pg_total_relation_size of every chunk partition (heap, indexes, TOAST, free space map and
 * visibility map), before and after the final VACUUM. Per host per day = chunk table with indexes / hosts / days.
 *
 * --flush-scale (SQLite): the time of commitFlush when many series already have a long history, which the small
 * simulated fleet does not show: `series` series with `history` stored chunks each (250-byte payloads, written as
 * flushes would), then `flushes` flushes each rewriting every series' growing open chunk by its id.
 */
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../common/logger.js";
import { openPostgresStore } from "../server/store/postgres/postgres-store.js";
import { openSqliteStore } from "../server/store/sqlite/sqlite-store.js";
import type { ChunkRow, Store } from "../server/store/store.js";
import { TsdbEngine } from "../server/tsdb/engine.js";
import { SimAgent } from "./lib/fleet.js";
import { createBenchDatabase, onDatabase, postgresProblem, type BenchDatabase } from "./lib/pg.js";
import { argNumber, argValue, fmt, hasFlag, onInterrupt } from "./lib/proc.js";
import { openReadOnly, sqliteSpace } from "./lib/sqlite-size.js";

const DAY = 86_400_000;
const FLUSH_MS = 60_000;

const opts = {
  hosts: argNumber("hosts", 10),
  days: argNumber("days", 1),
  chunkTarget: argNumber("chunk-target", 120),
  targets: (argValue("targets") ?? "sqlite,postgres").split(",").map((s) => s.trim()),
  autovacuum: !hasFlag("no-autovacuum"),
  keep: hasFlag("keep"),
};
const logger = createLogger({ name: "bench-size", level: "warn" });

function log(msg: string): void {
  process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

/** What one target measured. */
interface SizeResult {
  target: string;
  samples: number;
  rows: number;
  payloadBytes: number;
  /** Chunk table with its indexes (PostgreSQL: after the final VACUUM). */
  tableBytes: number;
  /** PostgreSQL: the same before the final VACUUM. */
  tableBytesBeforeVacuum?: number;
  /** Per relation (table and each index), bytes. */
  parts: Array<{ name: string; bytes: number }>;
  /** The rollups table with its indexes (written by the same flushes), for the per-host-per-day figure. */
  rollupBytes: number;
  buildMs: number;
  flushMs: number[];
  notes: string[];
}

/**
 * Runs the simulated hosts through a TsdbEngine on `store`: append every tick, flush every simulated minute.
 * `afterFlush` runs after each flush (PostgreSQL's autovacuum emulation).
 */
async function build(store: Store, afterFlush: () => Promise<void>): Promise<{ buildMs: number; flushMs: number[] }> {
  const start = Date.UTC(2026, 10, 1); // midnight UTC: a simulated day is one day partition
  let now = start;
  const engine = TsdbEngine.fresh(store, logger, { chunkTarget: opts.chunkTarget, clock: () => now });
  const agents = Array.from({ length: opts.hosts }, (_, i) => new SimAgent(i, start, 3));
  const end = start + opts.days * DAY;
  const flushMs: number[] = [];
  let walId = 0;
  const t0 = performance.now();
  let lastLog = t0;
  for (let flushAt = start + FLUSH_MS; flushAt <= end + FLUSH_MS; flushAt += FLUSH_MS) {
    for (const a of agents) {
      const envs = [];
      while (a.simTimeMs < Math.min(flushAt, end)) envs.push(...a.collectTick());
      if (envs.length > 0) engine.append(++walId, a.hostname, envs);
    }
    now = flushAt;
    const f0 = performance.now();
    await engine.flush();
    flushMs.push(performance.now() - f0);
    await afterFlush();
    if (performance.now() - lastLog > 15_000) {
      lastLog = performance.now();
      log(`  simulated ${fmt((flushAt - start) / 3_600_000, 1)} h of ${fmt(opts.days * 24)} h`);
    }
  }
  await engine.close();
  return { buildMs: performance.now() - t0, flushMs };
}

async function runSqlite(): Promise<SizeResult> {
  const dir = mkdtempSync(join(tmpdir(), "spectra-size-"));
  const unregister = onInterrupt(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "size.db");
  try {
    const store = openSqliteStore(path);
    const b = await build(store, async () => undefined);
    await store.close();
    const db = openReadOnly(path);
    try {
      const one = (sql: string) => Number((db.prepare(sql).get() as { n: number | null }).n ?? 0);
      // every b-tree of the chunks table (the table and each index), from dbstat
      const parts = (
        db
          .prepare(
            `SELECT d.name AS name, sum(d.pgsize) AS bytes FROM dbstat d JOIN sqlite_schema s ON s.name = d.name
             WHERE s.tbl_name = 'chunks' GROUP BY d.name ORDER BY 2 DESC`,
          )
          .all() as Array<{ name: string; bytes: number }>
      ).map((r) => ({ name: r.name, bytes: Number(r.bytes) }));
      const space = sqliteSpace(db);
      const file = statSync(path).size + (existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0);
      return {
        target: "SQLite",
        samples: one("SELECT sum(count) AS n FROM chunks"),
        rows: one("SELECT count(*) AS n FROM chunks"),
        payloadBytes: one("SELECT sum(length(data)) AS n FROM chunks"),
        tableBytes: parts.reduce((a, p) => a + p.bytes, 0),
        parts,
        rollupBytes: space.tables.find((t) => t.name === "rollups")?.bytes ?? 0,
        ...b,
        notes: [
          `file ${fmt(file / 1e6, 1)} MB, live pages ${fmt(((space.pages - space.freePages) * space.pageSize) / 1e6, 1)} MB ` +
            `(${space.tables.map((t) => `${t.name} ${fmt(t.bytes / 1e6, 1)}`).join(", ")})`,
        ],
      };
    } finally {
      db.close();
    }
  } finally {
    if (opts.keep) log(`kept ${path}`);
    else rmSync(dir, { recursive: true, force: true });
    unregister();
  }
}

/** The chunk partitions (heap, indexes, TOAST, maps), per relation. */
async function pgChunkParts(url: string): Promise<Array<{ name: string; bytes: number; dead: number; hot: number; upd: number }>> {
  return onDatabase(url, async (c) => {
    const { rows } = await c.query(`
      SELECT t.relid::regclass::text AS name, pg_total_relation_size(t.relid) AS bytes,
             coalesce(s.n_dead_tup, 0) AS dead, coalesce(s.n_tup_hot_upd, 0) AS hot, coalesce(s.n_tup_upd, 0) AS upd
      FROM pg_partition_tree('chunks') t LEFT JOIN pg_stat_user_tables s ON s.relid = t.relid
      WHERE t.isleaf ORDER BY 2 DESC`);
    return (rows as Array<Record<string, string>>).map((r) => ({
      name: r["name"]!,
      bytes: Number(r["bytes"]),
      dead: Number(r["dead"]),
      hot: Number(r["hot"]),
      upd: Number(r["upd"]),
    }));
  });
}

async function runPostgres(): Promise<SizeResult> {
  const db: BenchDatabase = await createBenchDatabase("spectra_bench_size");
  const notes: string[] = [];
  let vacuums = 0;
  try {
    const store = await openPostgresStore(db.url, { instanceId: "bench-size", logger });
    // autovacuum's default trigger, applied after each flush (see the header)
    const admin = await import("pg").then((m) => new m.default.Client({ connectionString: db.url }));
    await admin.connect();
    const afterFlush = async () => {
      if (!opts.autovacuum) return;
      const { rows } = await admin.query(`
        SELECT s.relid::regclass::text AS name FROM pg_stat_user_tables s
        JOIN (SELECT relid FROM pg_partition_tree('chunks') UNION ALL SELECT relid FROM pg_partition_tree('rollups')) t
          ON t.relid = s.relid
        WHERE s.n_dead_tup > 50 + 0.2 * s.n_live_tup`);
      for (const r of rows as Array<{ name: string }>) {
        await admin.query(`VACUUM ${r.name}`);
        vacuums++;
      }
    };
    let b: { buildMs: number; flushMs: number[] };
    try {
      // the statistics of a flush reach pg_stat_user_tables within about a second (pgstat flushes pending counters
      // at most once a second): a check may see the previous flush's, as autovacuum would
      b = await build(store, afterFlush);
    } finally {
      await store.close();
    }
    const before = await pgChunkParts(db.url);
    const upd = before.reduce((a, p) => a + p.upd, 0);
    const hot = before.reduce((a, p) => a + p.hot, 0);
    await admin.query("VACUUM chunks, rollups");
    await admin.query("ANALYZE chunks");
    await admin.end();
    const after = await pgChunkParts(db.url);
    notes.push(
      `VACUUMs of a chunk or rollup partition during the build: ${vacuums}${opts.autovacuum ? " (autovacuum's default trigger)" : " (--no-autovacuum)"}; ` +
        `updates ${fmt(upd)}, of them HOT ${fmt(hot)} (${fmt((hot / Math.max(1, upd)) * 100, 1)} %)`,
    );
    const counts = await onDatabase(db.url, async (c) => {
      const one = async (sql: string) => Number(((await c.query(sql)).rows[0] as { n: string | null }).n ?? 0);
      return {
        samples: await one("SELECT sum(count) AS n FROM chunks"),
        rows: await one("SELECT count(*) AS n FROM chunks"),
        payloadBytes: await one("SELECT sum(length(data)) AS n FROM chunks"),
        indexes: (
          await c.query(`
            SELECT i.indexrelid::regclass::text AS name, pg_relation_size(i.indexrelid) AS bytes
            FROM pg_index i JOIN pg_partition_tree('chunks') t ON t.relid = i.indrelid WHERE t.isleaf`)
        ).rows as Array<{ name: string; bytes: string }>,
        heaps: (
          await c.query(`
            SELECT t.relid::regclass::text AS name, pg_relation_size(t.relid) AS bytes
            FROM pg_partition_tree('chunks') t WHERE t.isleaf`)
        ).rows as Array<{ name: string; bytes: string }>,
        rollupBytes: await one("SELECT sum(pg_total_relation_size(relid)) AS n FROM pg_partition_tree('rollups') WHERE isleaf"),
      };
    });
    const parts = [
      ...counts.heaps.map((h) => ({ name: `${h.name} (heap)`, bytes: Number(h.bytes) })),
      ...counts.indexes.map((h) => ({ name: h.name, bytes: Number(h.bytes) })),
    ].filter((p) => p.bytes > 0);
    return {
      target: "PostgreSQL",
      samples: counts.samples,
      rows: counts.rows,
      payloadBytes: counts.payloadBytes,
      tableBytes: after.reduce((a, p) => a + p.bytes, 0),
      tableBytesBeforeVacuum: before.reduce((a, p) => a + p.bytes, 0),
      parts,
      rollupBytes: counts.rollupBytes,
      ...b,
      notes,
    };
  } finally {
    if (opts.keep) log(`kept database ${db.name}`);
    else await db.drop();
  }
}

function report(r: SizeResult): void {
  const per = (n: number) => fmt(n / r.samples, 2);
  const sorted = [...r.flushMs].sort((a, b) => a - b);
  log(
    `${r.target}: ${fmt(r.samples)} samples in ${fmt(r.rows)} chunk rows (${fmt(r.samples / r.rows, 1)} per chunk), ` +
      `build ${fmt(r.buildMs / 1000, 1)} s (flush median ${fmt(sorted[Math.floor(sorted.length / 2)] ?? NaN, 1)} ms, ` +
      `max ${fmt(sorted[sorted.length - 1] ?? NaN, 1)} ms)`,
  );
  log(`  payload            ${fmt(r.payloadBytes)} B = ${per(r.payloadBytes)} B/sample`);
  if (r.tableBytesBeforeVacuum !== undefined) {
    log(`  chunk table + indexes, before the final VACUUM ${fmt(r.tableBytesBeforeVacuum)} B = ${per(r.tableBytesBeforeVacuum)} B/sample`);
  }
  log(
    `  chunk table + indexes ${fmt(r.tableBytes)} B = ${per(r.tableBytes)} B/sample ` +
      `(${fmt((r.tableBytes - r.payloadBytes) / r.rows, 1)} B per row besides its payload)`,
  );
  for (const p of r.parts) log(`    ${p.name}: ${fmt(p.bytes)} B = ${per(p.bytes)} B/sample`);
  const perDay = (n: number) => fmt(n / opts.hosts / opts.days / 1e6, 2);
  log(`  per host per day   ${perDay(r.tableBytes)} MB (chunk table with indexes); rollups ${perDay(r.rollupBytes)} MB`);
  for (const n of r.notes) log(`  ${n}`);
}

async function flushScale(): Promise<void> {
  const series = argNumber("series", 5_000);
  const history = argNumber("history", 400);
  const flushes = argNumber("flushes", 5);
  const dir = mkdtempSync(join(tmpdir(), "spectra-size-"));
  const unregister = onInterrupt(() => rmSync(dir, { recursive: true, force: true }));
  try {
    const store = openSqliteStore(join(dir, "scale.db"));
    const ids = await store.ensureSeries(
      Array.from({ length: series }, (_, i) => ({ hostname: `host-${i % 1_000}`, metric: `m${i}`, labels: "" })),
    );
    const bytes = (n: number) => new Uint8Array(n).fill(7);
    let t = Date.UTC(2026, 10, 1);
    for (let d = 0; d < history; d++, t += 600_000) {
      await store.commitFlush({
        chunks: ids.map((s) => ({ seriesId: s, minT: t, maxT: t + 595_000, count: 120, data: bytes(250) })),
        rollups: [],
        flushed: [],
      });
    }
    let open: ChunkRow[] = ids.map((s) => ({ seriesId: s, minT: t, maxT: t + 55_000, count: 12, data: bytes(25) }));
    const first = await store.commitFlush({ chunks: open, rollups: [], flushed: [] });
    open = open.map((c, i) => ({ ...c, id: first.chunkIds[i]! }));
    const ms: number[] = [];
    for (let f = 1; f <= flushes; f++) {
      open = open.map((c) => ({ ...c, maxT: c.maxT + 60_000, count: c.count + 12, data: bytes(25 * (f + 1)) }));
      const t0 = performance.now();
      await store.commitFlush({ chunks: open, rollups: [], flushed: [] });
      ms.push(performance.now() - t0);
    }
    await store.close();
    log(
      `flush scale (SQLite): ${fmt(series)} series × ${fmt(history)} stored chunks; rewriting every open chunk took ` +
        `${ms.map((x) => fmt(x)).join(", ")} ms per flush`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
    unregister();
  }
}

async function main(): Promise<void> {
  if (hasFlag("flush-scale")) return flushScale();
  log(
    `bench:size: ${opts.hosts} hosts × ${opts.days} simulated day(s), chunk target ${opts.chunkTarget}, ` +
      `flush every simulated 60 s, node ${process.version}`,
  );
  const results: SizeResult[] = [];
  for (const target of opts.targets) {
    if (target === "sqlite") {
      log("SQLite: building");
      results.push(await runSqlite());
      report(results[results.length - 1]!);
    } else if (target === "postgres") {
      const problem = await postgresProblem();
      if (problem) {
        log(`PostgreSQL skipped: ${problem}`);
        continue;
      }
      log("PostgreSQL: building");
      results.push(await runPostgres());
      report(results[results.length - 1]!);
    } else {
      throw new Error(`unknown target ${target}`);
    }
  }
  process.stdout.write(`${JSON.stringify({ opts, results: results.map(({ flushMs: _f, ...r }) => r) })}\n`);
}

await main();
