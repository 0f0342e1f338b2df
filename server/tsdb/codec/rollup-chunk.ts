/**
 * Compressed chunk of rollup buckets (1-minute / 1-hour aggregates of one series): the raw chunk's container and
 * stream encoders (chunk.ts), one section per column.
 *
 *   [version=0x81][flags][count] then, when count > 0: [|t0|][7 − 1 section lengths]
 *   sections: t (delta-of-delta) | min | max | sum | count | last | lastT (value streams)
 *
 * flags bit 0: t0 negative; bit 1: the lastT section holds lastT − t (exact for every bucket, checked when
 * encoding; typically a near-constant offset into the bucket, so a few bits per bucket) instead of lastT itself.
 */
import { BitWriter, paddedCopy } from "./bit-writer.js";
import {
  ChunkDecodeError,
  TimestampStreamEncoder,
  ValueStreamEncoder,
  decodeTimestampStream,
  decodeValueStream,
  readContainer,
  writeContainer,
} from "./chunk.js";

/** Format version of rollup chunks (first byte); distinct from raw chunks so one is never read as the other. */
export const ROLLUP_CHUNK_VERSION = 0x81;

const FLAG_LAST_T_OFFSET = 2;
const SECTIONS = 7;

/**
 * Columns of rollup buckets: bucket start `t` (ms, ascending, unique), the aggregates of the samples in the
 * bucket, and `lastT`, the timestamp of `last`, so two partial aggregates of one bucket can be merged. `count` is
 * an integer.
 */
export interface RollupColumns {
  t: Float64Array<ArrayBuffer>;
  min: Float64Array<ArrayBuffer>;
  max: Float64Array<ArrayBuffer>;
  sum: Float64Array<ArrayBuffer>;
  count: Float64Array<ArrayBuffer>;
  last: Float64Array<ArrayBuffer>;
  lastT: Float64Array<ArrayBuffer>;
}

/** What {@link encodeRollupChunk} accepts: the same columns as any array-likes of numbers. */
export type RollupColumnsInput = { readonly [K in keyof RollupColumns]: ArrayLike<number> };

const VALUE_COLUMNS = ["min", "max", "sum", "count", "last"] as const;

/**
 * Encodes rollup columns (all the same length, t sorted ascending and unique safe integers, every other column
 * finite). Throws RangeError on input that breaks these rules.
 */
export function encodeRollupChunk(c: RollupColumnsInput): Uint8Array {
  const n = c.t.length;
  for (const k of [...VALUE_COLUMNS, "lastT"] as const) {
    if (c[k].length !== n) throw new RangeError(`rollup column ${k} has ${c[k].length} rows, t has ${n}`);
  }
  const tw = new BitWriter(Math.ceil(n / 4));
  const ts = new TimestampStreamEncoder(tw);
  for (let i = 0; i < n; i++) {
    const t = c.t[i]!;
    ts.check(t);
    if (i > 0 && t === c.t[i - 1]) throw new RangeError(`rollup bucket time ${t} is repeated`);
    ts.append(t);
  }
  const writers = [tw];
  for (const k of VALUE_COLUMNS) writers.push(encodeValues(c[k], k));
  let offsets = true;
  for (let i = 0; i < n && offsets; i++) {
    const lt = c.lastT[i]!;
    offsets = Number.isFinite(lt) && Object.is(c.t[i]! + (lt - c.t[i]!), lt);
  }
  writers.push(offsets ? encodeValues(c.lastT, "lastT", c.t) : encodeValues(c.lastT, "lastT"));
  return writeContainer(ROLLUP_CHUNK_VERSION, offsets ? FLAG_LAST_T_OFFSET : 0, n, n > 0 ? c.t[0]! : 0, writers);
}

function encodeValues(col: ArrayLike<number>, name: string, minus?: ArrayLike<number>): BitWriter {
  const w = new BitWriter(Math.ceil(col.length / 2));
  const vs = new ValueStreamEncoder(w);
  for (let i = 0; i < col.length; i++) {
    const v = col[i]!;
    if (!Number.isFinite(v)) throw new RangeError(`rollup column ${name} row ${i} is ${v}, not finite`);
    vs.append(minus ? v - minus[i]! : v);
  }
  return w;
}

/** Decodes a chunk produced by {@link encodeRollupChunk}; throws ChunkDecodeError on bad input. */
export function decodeRollupChunk(bytes: Uint8Array): RollupColumns {
  const h = readContainer(bytes, ROLLUP_CHUNK_VERSION, SECTIONS, FLAG_LAST_T_OFFSET);
  const n = h.count;
  const store = new ArrayBuffer(8 * SECTIONS * n); // one backing store for the seven columns
  let k = 0;
  const col = () => new Float64Array(store, 8 * n * k++, n);
  const out: RollupColumns = { t: col(), min: col(), max: col(), sum: col(), count: col(), last: col(), lastT: col() };
  if (n === 0) return out;
  const b = h.bounds;
  const buf = paddedCopy(bytes);
  decodeTimestampStream(buf, b[0]!, b[1]!, n, h.t0, out.t);
  for (let i = 1; i < n; i++) {
    if (out.t[i] === out.t[i - 1]) throw new ChunkDecodeError("corrupt rollup chunk: repeated bucket time");
  }
  VALUE_COLUMNS.forEach((k, i) => decodeValueStream(buf, b[i + 1]!, b[i + 2]!, n, out[k]));
  decodeValueStream(buf, b[6]!, b[7]!, n, out.lastT);
  if (h.flags & FLAG_LAST_T_OFFSET) for (let i = 0; i < n; i++) out.lastT[i] = out.t[i]! + out.lastT[i]!;
  return out;
}
