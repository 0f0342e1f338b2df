/**
 * Speed and size of the time-series chunk codec (server/tsdb/codec) on realistic series shapes: encode and decode
 * ns/sample and bytes/sample for 120-sample chunks (the engine's chunk size) at a 5 s interval, stamped a uniform
 * 0–3 ms late as the agent's grid scheduler does. Value shapes follow what `spectra-agent --once` sends: CPU % and
 * rates at full double precision (ratios of counter deltas), load averages with two decimals, memory and disk
 * bytes in 4 KiB pages; plus the two-decimal CPU % the storage goal is stated for, and the extremes (constant,
 * random bits). Prints a markdown table. Encode includes creating the encoder and bytes(); decode is decodeChunk.
 *
 *   npm run build && node dist/bench/codec.js [--chunks 2000] [--rounds 7] [--samples 120]
 *
 * Each cell is the median of `rounds` timed passes over `chunks` chunks (after one warm-up pass); every pass
 * decodes what it encoded, and the first one checks the round trip bit for bit.
 */
import { cpus } from "node:os";
import { CHUNK_VERSION, ChunkEncoder, decodeChunk, readContainer } from "../server/tsdb/codec/chunk.js";
import { ROLLUP_CHUNK_VERSION, decodeRollupChunk, encodeRollupChunk, type RollupColumns } from "../server/tsdb/codec/rollup-chunk.js";
import { prng } from "../common/prng.js";

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}


/** Timestamps on a `intervalMs` grid from `startMs`, each late by a uniform 0..jitterMs ms (as the agent stamps). */
function gridTimes(n: number, rnd: () => number, intervalMs = 5000, jitterMs = 3, startMs = 1_795_783_182_000): number[] {
  const t: number[] = [];
  for (let i = 0; i < n; i++) t.push(startMs + i * intervalMs + Math.floor(rnd() * (jitterMs + 1)));
  return t;
}

/** Any finite double with uniformly random bits (sign, exponent, mantissa). */
function randomDouble(rnd: () => number): number {
  const f = new Float64Array(1);
  const u = new Uint32Array(f.buffer);
  do {
    u[0] = Math.floor(rnd() * 4294967296);
    u[1] = Math.floor(rnd() * 4294967296);
  } while (!Number.isFinite(f[0]!));
  return f[0]!;
}

/** Value generators by shape name; each returns `n` values. */
const SERIES_SHAPES = {
  /** CPU % with two decimals, moving a little (the shape the storage goal is stated for). */
  "cpu-pct-2dec": (n: number, rnd: () => number) => walk(n, () => 12.34, (x) => clamp(round(x + (rnd() - 0.5) * 1.2, 2), 0, 100)),
  /** CPU % as the agent computes it: busy/total jiffies · 100 at full double precision. */
  "cpu-pct-full": (n: number, rnd: () => number) =>
    Array.from({ length: n }, () => {
      const total = 1000 + Math.floor(rnd() * 6);
      return (Math.floor(60 + rnd() * 80) * 100) / total;
    }),
  /** Load average, two decimals, slow. */
  "load-avg": (n: number, rnd: () => number) => walk(n, () => 0.52, (x) => Math.max(0, round(x + (rnd() - 0.5) * 0.06, 2))),
  /** Memory used in bytes: 4 KiB pages, a few MB up or down each tick. */
  "mem-used-bytes": (n: number, rnd: () => number) => walk(n, () => 659_120_128, (x) => x + Math.round((rnd() - 0.5) * 512) * 4096),
  /** Disk used in bytes: 4 KiB blocks, growing slowly, often unchanged. */
  "disk-used-bytes": (n: number, rnd: () => number) =>
    walk(n, () => 23_997_038_592, (x) => (rnd() < 0.4 ? x : x + Math.floor(rnd() * 64) * 4096)),
  /** Network rate as the agent computes it: byte delta / elapsed seconds (elapsed ≈ 5 s ± a few ms). */
  "net-rate-full": (n: number, rnd: () => number) =>
    Array.from({ length: n }, () => Math.floor(20_000 + rnd() * 200_000) / ((5000 + Math.floor(rnd() * 7) - 3) / 1000)),
  /** A rate with four decimals (1234.5678 bytes/s). */
  "rate-4dec": (n: number, rnd: () => number) => walk(n, () => 1234.5678, (x) => Math.max(0, round(x + (rnd() - 0.5) * 200, 4))),
  /** Cumulative byte counter (integers up to 2^53). */
  "byte-counter": (n: number, rnd: () => number) => walk(n, () => 8_123_456_789, (x) => x + Math.floor(rnd() * 3_000_000)),
  /** Process count. */
  "process-count": (n: number, rnd: () => number) => walk(n, () => 312, (x) => x + Math.round((rnd() - 0.5) * 4)),
  /** Boolean flag, mostly 0. */
  "flag-0-1": (n: number, rnd: () => number) => Array.from({ length: n }, () => (rnd() < 0.05 ? 1 : 0)),
  /** Constant (totals, MTU, link speed). */
  constant: (n: number) => Array.from({ length: n }, () => 25_276_514_304),
  /** Random bits: the worst case. */
  "random-double": (n: number, rnd: () => number) => Array.from({ length: n }, () => randomDouble(rnd)),
} satisfies Record<string, (n: number, rnd: () => number) => number[]>;

type SeriesShape = keyof typeof SERIES_SHAPES;

function walk(n: number, first: () => number, next: (x: number) => number): number[] {
  const out: number[] = [];
  let x = first();
  for (let i = 0; i < n; i++) {
    out.push(x);
    x = next(x);
  }
  return out;
}

function round(x: number, d: number): number {
  const p = 10 ** d;
  return Math.round(x * p) / p;
}

function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}

interface Row {
  shape: string;
  bytesPerSample: number;
  /** Of bytesPerSample, the timestamp section's share. */
  tsBytesPerSample: number;
  encodeNs: number;
  decodeNs: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

function measure(shape: SeriesShape, chunks: number, rounds: number, samples: number): Row {
  const rnd = prng(0xc0dec + shape.length);
  const data = Array.from({ length: chunks }, () => ({ t: gridTimes(samples, rnd), v: SERIES_SHAPES[shape](samples, rnd) }));
  let encoded: Uint8Array[] = [];
  const encodeNs: number[] = [];
  const decodeNs: number[] = [];
  let sink = 0;
  for (let round = -1; round < rounds; round++) {
    const t0 = process.hrtime.bigint();
    encoded = data.map(({ t, v }) => {
      const enc = new ChunkEncoder(samples);
      for (let i = 0; i < t.length; i++) enc.append(t[i]!, v[i]!);
      return enc.bytes();
    });
    const t1 = process.hrtime.bigint();
    for (const b of encoded) sink += decodeChunk(b).v.length;
    const t2 = process.hrtime.bigint();
    if (round === -1) check(shape, data, encoded);
    else {
      encodeNs.push(Number(t1 - t0) / (chunks * samples));
      decodeNs.push(Number(t2 - t1) / (chunks * samples));
    }
  }
  if (sink === 0) throw new Error("nothing decoded");
  const bytes = encoded.reduce((s, b) => s + b.length, 0);
  const tsBytes = encoded.reduce((s, b) => {
    const h = readContainer(b, CHUNK_VERSION, 2);
    return s + h.bounds[1]! - h.bounds[0]!;
  }, 0);
  return {
    shape,
    bytesPerSample: bytes / (chunks * samples),
    tsBytesPerSample: tsBytes / (chunks * samples),
    encodeNs: median(encodeNs),
    decodeNs: median(decodeNs),
  };
}

function check(shape: string, data: Array<{ t: number[]; v: number[] }>, encoded: Uint8Array[]): void {
  encoded.forEach((b, k) => {
    const d = decodeChunk(b);
    const want = data[k]!;
    for (let i = 0; i < want.t.length; i++) {
      if (d.t[i] !== want.t[i] || !Object.is(d.v[i], want.v[i])) throw new Error(`${shape}: round trip differs at chunk ${k} sample ${i}`);
    }
  });
}

/** One-minute rollups of a day (1440 buckets) of two-decimal CPU %, one chunk per day. */
function measureRollup(rounds: number): Row {
  const rnd = prng(60);
  const n = 1440;
  const start = 1_795_737_600_000;
  const c: RollupColumns = {
    t: new Float64Array(n), min: new Float64Array(n), max: new Float64Array(n), sum: new Float64Array(n),
    count: new Float64Array(n), last: new Float64Array(n), lastT: new Float64Array(n),
  };
  let x = 20;
  for (let b = 0; b < n; b++) {
    const vals = Array.from({ length: 12 }, () => (x = Math.min(100, Math.max(0, Math.round((x + (rnd() - 0.5) * 1.2) * 100) / 100))));
    c.t[b] = start + b * 60_000;
    c.min[b] = Math.min(...vals);
    c.max[b] = Math.max(...vals);
    c.sum[b] = vals.reduce((s, v) => s + v, 0);
    c.count[b] = 12;
    c.last[b] = vals[11]!;
    c.lastT[b] = c.t[b]! + 55_000 + Math.floor(rnd() * 4);
  }
  const enc: number[] = [];
  const dec: number[] = [];
  let bytes: Uint8Array = new Uint8Array(0);
  for (let round = -1; round < rounds; round++) {
    const t0 = process.hrtime.bigint();
    for (let k = 0; k < 20; k++) bytes = encodeRollupChunk(c);
    const t1 = process.hrtime.bigint();
    for (let k = 0; k < 20; k++) decodeRollupChunk(bytes);
    const t2 = process.hrtime.bigint();
    if (round >= 0) {
      enc.push(Number(t1 - t0) / (20 * n));
      dec.push(Number(t2 - t1) / (20 * n));
    }
  }
  const h = readContainer(bytes, ROLLUP_CHUNK_VERSION, 7, 2);
  return {
    shape: "rollup 1 min, CPU % 2 dec. (per bucket, 7 columns)",
    bytesPerSample: bytes.length / n,
    tsBytesPerSample: (h.bounds[1]! - h.bounds[0]!) / n,
    encodeNs: median(enc),
    decodeNs: median(dec),
  };
}

const chunks = arg("chunks", 2000);
const rounds = arg("rounds", 7);
const samples = arg("samples", 120);
const rows = (Object.keys(SERIES_SHAPES) as SeriesShape[]).map((s) => measure(s, chunks, rounds, samples));
rows.push(measureRollup(rounds));
console.log(`Chunk codec, ${samples} samples per chunk, ${chunks} chunks per pass, median of ${rounds} passes; ` +
  `Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? "?"}\n`);
console.log("| series | bytes/sample | of which timestamps | encode ns/sample | decode ns/sample |");
console.log("|---|---:|---:|---:|---:|");
for (const r of rows) {
  console.log(
    `| ${r.shape} | ${r.bytesPerSample.toFixed(2)} | ${r.tsBytesPerSample.toFixed(2)} | ${r.encodeNs.toFixed(1)} | ${r.decodeNs.toFixed(1)} |`,
  );
}
