// Schema step 5 (compact chunks: t_end index and partitions, HOT rewrites): a database written at the previous
// version, with chunks in day partitions and in DEFAULT, is migrated in place and reads the same samples; ids and
// the id sequence are kept. Without PostgreSQL: skipped with a message, or failed under CI=true.
import { afterAll, describe, expect, it } from "vitest";
import { chunkSamples, testChunk } from "../../testing/chunks.js";
import { createTestDatabase, dropTestDatabases, itPostgresMissing, postgresProblem, withDatabase } from "../../testing/postgres.js";
import type { ChunkRow, Store } from "../store.js";
import { postgresMigrations, runPostgresMigrations } from "./migrations.js";
import { chunkEnd, openPostgresStore } from "./postgres-store.js";

const problem = await postgresProblem();
const opened: Store[] = [];
afterAll(async () => {
  for (const s of opened) await s.close().catch(() => undefined);
  await dropTestDatabases();
});

const STEP = postgresMigrations.findIndex((s) => s.includes("ALTER TABLE chunks RENAME TO chunks_v4"));
const DAY = 86_400_000;
const H2 = 7_200_000;
const T0 = Date.UTC(2026, 10, 20);

const chunk = testChunk;
const samples = chunkSamples;

const view = (rows: ChunkRow[]) =>
  [...rows].sort((a, b) => a.id! - b.id!).map((r) => ({ ...r, data: Buffer.from(r.data).toString("hex") }));

describe("chunkEnd", () => {
  it("is the end of the 2-hour window of min_t, or max_t past it", () => {
    expect(chunkEnd(T0, T0 + 595_000)).toBe(T0 + H2 - 1);
    expect(chunkEnd(T0 + H2 - 1, T0 + H2 - 1)).toBe(T0 + H2 - 1);
    expect(chunkEnd(T0 + H2, T0 + H2)).toBe(T0 + 2 * H2 - 1);
    expect(chunkEnd(T0 + 100, T0 + H2 + 5)).toBe(T0 + H2 + 5); // reaches past its window
    expect(chunkEnd(-5_000, -1_000)).toBe(-1);
    for (const [mn, mx] of [[T0, T0], [T0 + 3, T0 + H2 * 3], [-H2 - 1, -H2 + 5]] as const) {
      const e = chunkEnd(mn, mx);
      expect(e).toBeGreaterThanOrEqual(mx);
      expect(e - mx).toBeLessThan(H2);
    }
  });
});

if (problem !== undefined) {
  describe("PostgreSQL schema step 5", () => itPostgresMissing(problem, "chunk-migration.test.ts"));
} else {
  describe("PostgreSQL schema step 5: compact chunks", () => {
    it("migrates the chunks of a database at the previous version: same rows, same samples, ids kept", async () => {
      expect(STEP).toBeGreaterThanOrEqual(4);
      const url = await createTestDatabase();
      let rows: ChunkRow[] = [];
      await withDatabase(url, async (c) => {
        await runPostgresMigrations(c, postgresMigrations.slice(0, STEP));
        const sid = async (m: string) =>
          Number((await c.query("INSERT INTO series (hostname, metric, labels) VALUES ('web-01', $1, '') RETURNING id", [m])).rows[0].id);
        const a = await sid("cpu.usage");
        const b = await sid("memory.ram_used_pct");
        rows = [
          chunk(a, 3, T0, 120, 5_000, 40),
          chunk(b, 4, T0, 120, 10_000, 60),
          chunk(a, 7, T0 + DAY - 300_000, 120, 5_000, 42), // out of order, across midnight: ends on the next day
          chunk(a, 9, T0 + DAY + 1_200_000, 37, 5_000, 44), // the open chunk when the old server stopped
          chunk(a, 12, T0 + 300_000, 4, 1_000, 1), // out of order, overlapping the first
          chunk(b, 13, T0 - 3 * H2 + 5, 3, 3 * H2, 7), // out of order, spanning several windows
          chunk(b, 14, -5_000, 3, 2_000, 0), // outside every day partition: DEFAULT
        ];
        for (const day of [Math.floor(T0 / DAY), Math.floor(T0 / DAY) + 1]) {
          await c.query(`CREATE TABLE chunks_d${day} PARTITION OF chunks FOR VALUES FROM (${day * DAY}) TO (${(day + 1) * DAY})`);
        }
        for (const r of rows) {
          await c.query("INSERT INTO chunks (id, series_id, min_t, max_t, count, data) VALUES ($1, $2, $3, $4, $5, $6)", [
            r.id, r.seriesId, r.minT, r.maxT, r.count, Buffer.from(r.data),
          ]);
        }
        await c.query("SELECT setval('chunks_id_seq', 14)");
      });

      const store = await openPostgresStore(url, { instanceId: "t" });
      opened.push(store);
      const [a, b] = [rows[0]!.seriesId, rows[1]!.seriesId];
      const read = await store.readChunks([a, b], -DAY, T0 + 3 * DAY);
      expect(view(read)).toEqual(view(rows));
      expect(samples([...read].sort((x, y) => x.id! - y.id!))).toEqual(samples(rows));
      expect(read.map((r) => r.id)).toEqual([3, 12, 7, 9, 14, 13, 4]); // by series, then min_t
      // ranges select by overlap, also across the day boundary and for the long out-of-order chunk
      expect((await store.readChunks([a], T0 + DAY + 10_000, T0 + DAY + 10_000)).map((r) => r.id)).toEqual([7]);
      expect((await store.readChunks([b], T0 + 2 * H2, T0 + 2 * H2)).map((r) => r.id)).toEqual([13]);

      const layout = await withDatabase(url, async (c) => ({
        version: (await c.query("SELECT max(version) AS v FROM schema_migrations")).rows[0].v as number,
        old: (await c.query("SELECT count(*)::int AS n FROM pg_class WHERE relname LIKE '%\\_v4'")).rows[0].n as number,
        parts: (
          await c.query(
            `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'chunks'::regclass ORDER BY 1`,
          )
        ).rows as Array<{ relname: string }>,
        inDefault: (await c.query("SELECT array_agg(id ORDER BY id) AS ids FROM chunks_default")).rows[0].ids as number[],
      }));
      expect(layout.version).toBe(postgresMigrations.length);
      expect(layout.old).toBe(0);
      const day0 = Math.floor(T0 / DAY);
      expect(layout.parts.map((p) => p.relname)).toEqual(["chunks_d" + day0, "chunks_d" + (day0 + 1), "chunks_default"]);
      expect(layout.inDefault.map(Number)).toEqual([14]);

      // the engine rewrites its open chunk by the old id; new chunks continue the old id sequence
      const grown = chunk(a, 9, T0 + DAY + 1_200_000, 80, 5_000, 44);
      const { id: _unused, ...fresh } = chunk(b, 0, T0 + DAY + 1_200_000, 10, 10_000, 61);
      const { chunkIds } = await store.commitFlush({ chunks: [grown, fresh], rollups: [], flushed: [] });
      expect(chunkIds[0]).toBe(9);
      expect(chunkIds[1]).toBeGreaterThan(14);
      expect((await store.readChunks([a], T0 + DAY + 1_200_000, T0 + 3 * DAY)).map((r) => [r.id, r.count, r.maxT])).toEqual([
        [9, 80, grown.maxT],
      ]);
      // its t_end (index key, partition) did not change: the rewrite touched no indexed column (a HOT update when the
      // page has room; bench/size.ts reports the share of HOT updates)
      const where = await withDatabase(url, async (c) =>
        (await c.query("SELECT tableoid::regclass::text AS part, t_end FROM chunks WHERE id = 9")).rows,
      );
      expect(where).toEqual([{ part: "chunks_d" + (day0 + 1), t_end: String(chunkEnd(grown.minT, rows[3]!.maxT)) }]);
      expect(chunkEnd(grown.minT, grown.maxT)).toBe(chunkEnd(grown.minT, rows[3]!.maxT));

      // retention: whole partitions and the rows before the cutoff in the others
      const removed = await store.applyRetention({ raw: T0 + DAY, "1m": 0, "1h": 0 }, { "1m": 3_600_000, "1h": 86_400_000 });
      expect(removed.chunks).toBe(5); // 3, 4, 12, 13 end on day 0 or before, 14 in DEFAULT
      expect((await store.readChunks([a, b], -DAY, T0 + 3 * DAY)).map((r) => r.id)).toEqual([7, 9, chunkIds[1]]);
    });
  });
}
