/** Chunk rows for store tests: encoded with the server's codec, and read back as (series, t, v) triples. */
import { decodeChunk, encodeChunk } from "../tsdb/codec/chunk.js";
import type { ChunkRow } from "../store/store.js";

/** A stored chunk of `n` samples from `from`, every `stepMs` (with a little jitter), values with two decimals. */
export function testChunk(seriesId: number, id: number, from: number, n: number, stepMs: number, v0: number): ChunkRow {
  const t = Array.from({ length: n }, (_, i) => from + i * stepMs + (i % 3));
  const v = t.map((_, i) => Math.round((v0 + Math.sin(i / 7) * 10) * 100) / 100);
  return { id, seriesId, minT: t[0]!, maxT: t[n - 1]!, count: n, data: encodeChunk(t, v) };
}

/** Every sample of the rows as [seriesId, t, v], in row order. */
export function chunkSamples(rows: ChunkRow[]): Array<[number, number, number]> {
  const out: Array<[number, number, number]> = [];
  for (const r of rows) {
    const d = decodeChunk(r.data);
    for (let i = 0; i < d.t.length; i++) out.push([r.seriesId, d.t[i]!, d.v[i]!]);
  }
  return out;
}
