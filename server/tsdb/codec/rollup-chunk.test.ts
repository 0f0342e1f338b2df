import { describe, expect, it } from "vitest";
import { prng } from "../../../common/prng.js";
import { ChunkDecodeError, decodeChunk, encodeChunk } from "./chunk.js";
import { ROLLUP_CHUNK_VERSION, decodeRollupChunk, encodeRollupChunk, type RollupColumns } from "./rollup-chunk.js";


const KEYS = ["t", "min", "max", "sum", "count", "last", "lastT"] as const;
const DAY = 1_795_737_600_000;

function columns(n: number): RollupColumns {
  return {
    t: new Float64Array(n),
    min: new Float64Array(n),
    max: new Float64Array(n),
    sum: new Float64Array(n),
    count: new Float64Array(n),
    last: new Float64Array(n),
    lastT: new Float64Array(n),
  };
}

/** One-minute buckets of 12 samples each (5 s), from a two-decimal CPU % walk; some minutes missing. */
function minuteRollups(n: number, rnd: () => number, decimals = 2): RollupColumns {
  const c = columns(n);
  let x = 20;
  let t = DAY;
  for (let b = 0; b < n; b++) {
    t += rnd() < 0.05 ? 60_000 * (2 + Math.floor(rnd() * 10)) : 60_000;
    const k = rnd() < 0.1 ? 1 + Math.floor(rnd() * 11) : 12;
    const p = 10 ** decimals;
    const vals = Array.from({ length: k }, () => (x = Math.min(100, Math.max(0, Math.round((x + (rnd() - 0.5) * 2) * p) / p))));
    c.t[b] = t;
    c.min[b] = Math.min(...vals);
    c.max[b] = Math.max(...vals);
    c.sum[b] = vals.reduce((s, v) => s + v, 0);
    c.count[b] = k;
    c.last[b] = vals[k - 1]!;
    c.lastT[b] = t + (k - 1) * 5000 + Math.floor(rnd() * 4);
  }
  return c;
}

function expectSame(got: RollupColumns, want: RollupColumns): void {
  for (const k of KEYS) {
    expect(got[k].length, k).toBe(want[k].length);
    for (let i = 0; i < want[k].length; i++) {
      if (!Object.is(got[k][i], want[k][i])) throw new Error(`${k}[${i}]: got ${got[k][i]}, want ${want[k][i]}`);
    }
  }
}

describe("rollup chunk", () => {
  it("round-trips a day of one-minute buckets, compactly", () => {
    const c = minuteRollups(1440, prng(1));
    const bytes = encodeRollupChunk(c);
    expectSame(decodeRollupChunk(bytes), c);
    // seven columns; sums of two-decimal values carry float noise and go to XOR mode
    expect(bytes.length / 1440).toBeLessThan(13); // (12.6, of which the sum column ~6)
  });

  it("round-trips hour buckets, full-precision values, one bucket, no buckets", () => {
    const rnd = prng(2);
    const c = minuteRollups(24, rnd, 14);
    for (let i = 0; i < 24; i++) c.t[i] = DAY + i * 3_600_000;
    for (let i = 0; i < 24; i++) c.lastT[i] = c.t[i]! + 3_599_000 - Math.floor(rnd() * 5);
    expectSame(decodeRollupChunk(encodeRollupChunk(c)), c);
    const one = minuteRollups(1, rnd);
    expectSame(decodeRollupChunk(encodeRollupChunk(one)), one);
    const none = columns(0);
    const b = encodeRollupChunk(none);
    expect(b.length).toBe(3);
    expectSame(decodeRollupChunk(b), none);
  });

  it("keeps lastT exact when it is not an integer offset from t (stored as is)", () => {
    const c = minuteRollups(10, prng(3));
    c.t[0] = 1e15;
    for (let i = 1; i < 10; i++) c.t[i] = 1e15 + i * 60_000;
    c.lastT[3] = 0.1; // 1e15 + (0.1 − 1e15) is not 0.1
    c.lastT[4] = -0;
    c.min[5] = -0;
    c.max[6] = Number.MAX_VALUE;
    c.sum[7] = 5e-324;
    expectSame(decodeRollupChunk(encodeRollupChunk(c)), c);
  });

  it("accepts plain arrays", () => {
    const c = minuteRollups(5, prng(4));
    const plain = Object.fromEntries(KEYS.map((k) => [k, Array.from(c[k])])) as unknown as Parameters<typeof encodeRollupChunk>[0];
    expectSame(decodeRollupChunk(encodeRollupChunk(plain)), c);
  });

  it("rejects columns of different lengths, unsorted or repeated t, non-finite values", () => {
    const c = minuteRollups(5, prng(5));
    expect(() => encodeRollupChunk({ ...c, max: c.max.subarray(1) })).toThrow(RangeError);
    const unsorted = { ...c, t: c.t.slice().reverse() };
    expect(() => encodeRollupChunk(unsorted)).toThrow(RangeError);
    const repeated = { ...c, t: c.t.slice() };
    repeated.t[2] = repeated.t[1]!;
    expect(() => encodeRollupChunk(repeated)).toThrow(/repeated/);
    const inf = { ...c, min: c.min.slice() };
    inf.min[0] = Infinity;
    expect(() => encodeRollupChunk(inf)).toThrow(/min row 0/);
    const nan = { ...c, lastT: c.lastT.slice() };
    nan.lastT[4] = NaN;
    expect(() => encodeRollupChunk(nan)).toThrow(/lastT row 4/);
    const frac = { ...c, t: c.t.slice() };
    frac.t[0] = 0.5;
    expect(() => encodeRollupChunk(frac)).toThrow(RangeError);
  });

  it("is not confused with raw chunks, and rejects truncation", () => {
    const c = minuteRollups(60, prng(6));
    const bytes = encodeRollupChunk(c);
    expect(bytes[0]).toBe(ROLLUP_CHUNK_VERSION);
    expect(() => decodeChunk(bytes)).toThrow(/unsupported chunk version/);
    expect(() => decodeRollupChunk(encodeChunk([1, 2], [3, 4]))).toThrow(/unsupported chunk version/);
    for (let n = 0; n < bytes.length; n++) {
      expect(() => decodeRollupChunk(bytes.subarray(0, n)), `first ${n} bytes`).toThrow(ChunkDecodeError);
    }
  });
});
