// Schema step 7 (compact chunks): a store written at the previous version, with chunks, is migrated in place and
// reads the same samples; chunk ids survive, so a chunk the engine had open is still rewritten by its id.
import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { chunkSamples, testChunk } from "../../testing/chunks.js";
import type { ChunkRow } from "../store.js";
import { sqliteMigrations } from "./migrations.js";
import { openSqliteStore } from "./sqlite-store.js";

const dir = mkdtempSync(join(tmpdir(), "spectra-sqlite-mig-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Index of the compact-chunks step in the list (its version is this + 1). */
const STEP = sqliteMigrations.findIndex((s) => s.includes("CREATE TABLE chunks_v7"));
const T0 = Date.UTC(2026, 10, 20);

const chunk = testChunk;
const samples = chunkSamples;

describe("sqlite schema step 7: compact chunks", () => {
  it("is the newest step or followed only by later ones", () => {
    expect(STEP).toBeGreaterThanOrEqual(6);
  });

  it("migrates the chunks of a store at the previous version: same rows, same samples, ids kept", async () => {
    const path = join(dir, "old.db");
    const db = new Database(path);
    db.pragma("journal_mode = WAL");
    for (let v = 0; v < STEP; v++) {
      db.exec(sqliteMigrations[v]!);
      db.pragma(`user_version = ${v + 1}`);
    }
    const sid = (h: string, m: string) =>
      Number(db.prepare("INSERT INTO series (hostname, metric, labels) VALUES (?, ?, '')").run(h, m).lastInsertRowid);
    const a = sid("web-01", "cpu.usage");
    const b = sid("web-01", "memory.ram_used_pct");
    const rows = [
      chunk(a, 3, T0, 120, 5_000, 40),
      chunk(b, 4, T0, 120, 10_000, 60),
      chunk(a, 7, T0 + 600_000, 120, 5_000, 42),
      chunk(a, 9, T0 + 1_200_000, 37, 5_000, 44), // the open chunk when the old server stopped
      chunk(a, 12, T0 + 300_000, 4, 1_000, 1), // an out-of-order chunk overlapping the first
    ];
    const ins = db.prepare("INSERT INTO chunks (id, series_id, min_t, max_t, count, data) VALUES (?, ?, ?, ?, ?, ?)");
    for (const r of rows) ins.run(r.id, r.seriesId, r.minT, r.maxT, r.count, r.data);
    db.close();

    const store = openSqliteStore(path);
    try {
      const check = new Database(path, { readonly: true });
      expect(check.pragma("user_version", { simple: true })).toBe(sqliteMigrations.length);
      // no index besides the table's own b-tree
      expect(check.prepare("SELECT name FROM sqlite_schema WHERE tbl_name = 'chunks' AND type = 'index'").all()).toEqual([]);
      check.close();

      const read = await store.readChunks([a, b], 0, T0 + 86_400_000);
      const byId = (x: ChunkRow, y: ChunkRow) => x.id! - y.id!;
      expect([...read].sort(byId).map((r) => ({ ...r, data: Buffer.from(r.data).toString("hex") }))).toEqual(
        rows.map((r) => ({ ...r, data: Buffer.from(r.data).toString("hex") })),
      );
      // in series order, then by min_t: series a's out-of-order chunk between its first and second
      expect(read.map((r) => r.id)).toEqual([3, 12, 7, 9, 4]);
      expect(samples([...read].sort(byId))).toEqual(samples(rows));
      // a time range still selects by overlap
      expect((await store.readChunks([a], T0 + 1_200_000, T0 + 1_200_000)).map((r) => r.id)).toEqual([9]);

      // the engine rewrites its open chunk by the old id, and new chunks get ids never used before
      const grown = chunk(a, 9, T0 + 1_200_000, 80, 5_000, 44);
      const fresh = chunk(b, 0, T0 + 1_200_000, 10, 10_000, 61);
      const { id: _unused, ...freshRow } = fresh;
      const { chunkIds } = await store.commitFlush({ chunks: [grown, freshRow], rollups: [], flushed: [] });
      expect(chunkIds[0]).toBe(9);
      expect(chunkIds[1]).toBeGreaterThan(12);
      const after = await store.readChunks([a], T0 + 1_200_000, T0 + 86_400_000);
      expect(after.map((r) => [r.id, r.count, r.maxT])).toEqual([[9, 80, grown.maxT]]);

      // retention walks the series
      const removed = await store.applyRetention({ raw: T0 + 1_000_000, "1m": 0, "1h": 0 }, { "1m": 3_600_000, "1h": 86_400_000 });
      expect(removed.chunks).toBe(2); // a's 3 and 12 end before the cutoff; b's 4 ends after it
      expect((await store.readChunks([a, b], 0, T0 + 86_400_000)).map((r) => r.id)).toEqual([7, 9, 4, chunkIds[1]]);
    } finally {
      await store.close();
    }
  });

  it("allocates increasing ids across reopenings and never reuses a deleted one", async () => {
    const path = join(dir, "ids.db");
    let store = openSqliteStore(path);
    const [s] = await store.ensureSeries([{ hostname: "h", metric: "m", labels: "" }]);
    const c = (i: number): ChunkRow => chunk(s!, 0, T0 + i * 600_000, 5, 1_000, i);
    const strip = ({ id: _id, ...r }: ChunkRow) => r;
    const first = (await store.commitFlush({ chunks: [strip(c(0)), strip(c(1))], rollups: [], flushed: [] })).chunkIds;
    await store.applyRetention({ raw: T0 + 700_000, "1m": 0, "1h": 0 }, { "1m": 3_600_000, "1h": 86_400_000 });
    await store.close();
    store = openSqliteStore(path);
    const second = (await store.commitFlush({ chunks: [strip(c(2))], rollups: [], flushed: [] })).chunkIds;
    await store.close();
    expect(first[1]).toBeGreaterThan(first[0]!);
    expect(second[0]).toBeGreaterThan(first[1]!);
  });
});
