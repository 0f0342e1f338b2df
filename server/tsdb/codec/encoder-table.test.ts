import { describe, expect, it } from "vitest";
import { prng } from "../../../common/prng.js";
import { ChunkEncoder, decodeChunk } from "./chunk.js";
import { ChunkEncoderTable, STATE_BYTES_PER_SLOT } from "./encoder-table.js";
import { randomDouble } from "../../testing/random.js";

const T0 = 1_795_783_182_000; // ms since epoch, > 2^32
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

type Rnd = () => number;
const int = (rnd: Rnd, n: number) => Math.floor(rnd() * n);
const round = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;

/** Value generators: each returns a stateful "next value" function. */
const VALUES: Record<string, (rnd: Rnd) => () => number> = {
  "integer gauge": (rnd) => {
    let x = int(rnd, 500);
    return () => (x = Math.max(0, x + int(rnd, 7) - 3));
  },
  "2-decimal percentage": (rnd) => {
    let x = 12.34;
    return () => (x = Math.min(100, Math.max(0, round(x + (rnd() - 0.5) * 3, 2))));
  },
  "4 KiB-step byte counter": (rnd) => {
    let x = 8_123_456 * 4096;
    return () => (x += 4096 * int(rnd, rnd() < 0.1 ? 1000 : 40));
  },
  "byte counter, sometimes odd steps (shift lowering)": (rnd) => {
    let x = 1 << 20;
    return () => (x += rnd() < 0.15 ? int(rnd, 5000) : 4096 * int(rnd, 50) + (rnd() < 0.05 ? 2048 : 0));
  },
  "counter in 2^32-multiple steps (shift raised to the 31 cap)": (rnd) => {
    let x = 0;
    return () => (x += 2 ** 32 * (1 + int(rnd, 3)) * (rnd() < 0.2 ? 2 ** 9 : 1) + (rnd() < 0.05 ? 1 : 0));
  },
  "random doubles (XOR mode)": (rnd) => () => randomDouble(rnd),
  "full-precision fractions (XOR mode)": (rnd) => () => int(rnd, 20000) / (1000 + int(rnd, 7)),
  "switching decimal ↔ XOR": (rnd) => {
    let i = 0;
    let phase = 0;
    let x = 50;
    return () => {
      if (i++ % (3 + int(rnd, 8)) === 0) phase = int(rnd, 4);
      if (phase === 0) return (x = round(x + rnd() - 0.5, 1));
      if (phase === 1) return int(rnd, 100) / 3;
      if (phase === 2) return round(rnd() * 1000, int(rnd, 5));
      return rnd() < 0.5 ? x : Math.PI * int(rnd, 9);
    };
  },
  "±0 and small values": (rnd) => () => [0, -0, 1, -1, 0.5, -0, 0, 1e-300, -5e-324][int(rnd, 9)]!,
  "huge values (> 2^53)": (rnd) => () => (rnd() < 0.5 ? -1 : 1) * 2 ** (53 + int(rnd, 900)) * (1 + int(rnd, 1000) / 1024),
  "alternating ±2^53 (raw escapes: δ too large)": (rnd) => {
    let s = 1;
    return () => (rnd() < 0.9 ? (s = -s) * (2 ** 53 - int(rnd, 3)) : rnd() < 0.5 ? 0.1 : -0);
  },
  "large integer steps (53-bit deltas)": (rnd) => () => (rnd() < 0.5 ? -1 : 1) * int(rnd, 2 ** 53),
  "mix of everything": (rnd) => {
    const gens = Object.entries(VALUES)
      .filter(([k]) => k !== "mix of everything")
      .map(([, g]) => g(rnd));
    return () => gens[int(rnd, gens.length)]!();
  },
};

/** Timestamp generators (non-decreasing safe integers). */
const TIMES: Record<string, (rnd: Rnd) => () => number> = {
  "5 s with jitter": (rnd) => {
    let i = 0;
    return () => T0 + 5000 * i++ + int(rnd, 4);
  },
  "equal timestamps": (rnd) => {
    let t = T0;
    return () => (t += rnd() < 0.5 ? 0 : 1000);
  },
  "large gaps": (rnd) => {
    let t = -(2 ** 52);
    return () => (t += [5000, 2 ** 20, 2 ** 33 + 7, 2 ** 45, int(rnd, 2 ** 40)][int(rnd, 5)]!);
  },
  negative: (rnd) => {
    let t = -T0;
    return () => (t += 5000 + int(rnd, 300) - 150);
  },
  "around zero (−0 included)": (rnd) => {
    let t = -40;
    return () => {
      t += int(rnd, 8);
      return t === 0 && rnd() < 0.5 ? -0 : t;
    };
  },
  "from −2^53 + 1 to near +2^53": (rnd) => {
    let t = -MAX_SAFE;
    return () => (t = Math.min(MAX_SAFE, t + (rnd() < 0.3 ? MAX_SAFE : int(rnd, 2 ** 31))));
  },
};

interface Lane {
  slot: number;
  what: string;
  t: () => number;
  v: () => number;
  enc: ChunkEncoder;
  ts: number[];
  vs: number[];
}

function expectSlotLike(table: ChunkEncoderTable, lane: Lane): void {
  const want = lane.enc.bytes();
  const got = table.bytes(lane.slot);
  if (got.length !== want.length || got.some((b, i) => b !== want[i]))
    throw new Error(`${lane.what}, slot ${lane.slot}, ${lane.enc.count} samples: bytes differ\n got ${Buffer.from(got).toString("hex")}\nwant ${Buffer.from(want).toString("hex")}`);
  expect(table.byteLength(lane.slot)).toBe(want.length);
  expect(table.count(lane.slot)).toBe(lane.enc.count);
  expect(Object.is(table.minT(lane.slot), lane.enc.minT)).toBe(true);
  expect(Object.is(table.maxT(lane.slot), lane.enc.maxT)).toBe(true);
}

function expectDecodes(bytes: Uint8Array, t: readonly number[], v: readonly number[]): void {
  const d = decodeChunk(bytes);
  expect(d.t.length).toBe(t.length);
  for (let i = 0; i < t.length; i++) {
    // The chunk stores timestamps as integers: −0 reads back as 0.
    if (d.t[i] !== t[i]) throw new Error(`t[${i}]: got ${d.t[i]}, want ${t[i]}`);
    if (!Object.is(d.v[i], v[i])) throw new Error(`v[${i}]: got ${d.v[i]}, want ${v[i]}`);
  }
}

describe("ChunkEncoderTable", () => {
  it("gives ChunkEncoder's bytes for interleaved random sequences in ~50 slots", () => {
    const valueKinds = Object.keys(VALUES);
    const timeKinds = Object.keys(TIMES);
    let compared = 0;
    for (let seed = 1; seed <= 12; seed++) {
      const rnd = prng(seed);
      const table = new ChunkEncoderTable(16); // grows while the lanes are set up
      const lanes: Lane[] = [];
      for (let i = 0; i < 50; i++) {
        const vk = valueKinds[(i + seed) % valueKinds.length]!;
        const tk = timeKinds[int(rnd, timeKinds.length)]!;
        lanes.push({ slot: i * 3 + int(rnd, 3), what: `${vk} at ${tk} (seed ${seed})`, t: TIMES[tk]!(rnd), v: VALUES[vk]!(rnd), enc: new ChunkEncoder(), ts: [], vs: [] });
      }
      // 60–200 samples per lane (so streams grow several times), appended in random lane order.
      const budget = lanes.map(() => 60 + int(rnd, 141));
      let left = budget.reduce((a, b) => a + b, 0);
      while (left > 0) {
        const k = int(rnd, lanes.length);
        if (budget[k] === 0) continue;
        budget[k]!--;
        left--;
        const lane = lanes[k]!;
        const t = lane.t();
        const v = lane.v();
        lane.enc.append(t, v);
        table.append(lane.slot, t, v);
        lane.ts.push(t);
        lane.vs.push(v);
        if (rnd() < 0.3) {
          expectSlotLike(table, lane);
          compared++;
        }
      }
      for (const lane of lanes) {
        expectSlotLike(table, lane);
        expectDecodes(table.bytes(lane.slot), lane.ts, lane.vs);
      }
      expect(table.capacity).toBeGreaterThanOrEqual(150);
    }
    expect(compared).toBeGreaterThan(10_000);
  });

  it("matches ChunkEncoder on long runs in one slot (regions grow to kilobytes)", () => {
    for (const [k, make] of Object.entries(VALUES)) {
      const rnd = prng(k.length * 7919);
      const v = make(rnd);
      const t = TIMES["5 s with jitter"]!(rnd);
      const table = new ChunkEncoderTable(4);
      const enc = new ChunkEncoder();
      const lane: Lane = { slot: 3, what: k, t, v, enc, ts: [], vs: [] };
      for (let i = 0; i < 1500; i++) {
        const ti = t();
        const vi = v();
        enc.append(ti, vi);
        table.append(3, ti, vi);
        lane.ts.push(ti);
        lane.vs.push(vi);
        if (i % 97 === 0) expectSlotLike(table, lane);
      }
      expectSlotLike(table, lane);
      expectDecodes(table.bytes(3), lane.ts, lane.vs);
    }
  });

  it("keeps the XOR switch after hundreds of raw escapes in a row", () => {
    // Each ±(2^53 − 1) step is a raw escape (δ not exact): the encoder's misfit count keeps growing past 255.
    const table = new ChunkEncoderTable();
    const enc = new ChunkEncoder();
    const ts: number[] = [];
    const vs: number[] = [];
    for (let i = 0; i < 400; i++) {
      const v = i === 399 ? 0.1 + 0.2 : (i % 2 === 0 ? 1 : -1) * (2 ** 53 - 1);
      enc.append(i, v);
      table.append(0, i, v);
      ts.push(i);
      vs.push(v);
    }
    expect(table.bytes(0)).toEqual(enc.bytes());
    expectDecodes(table.bytes(0), ts, vs);
  });

  it("matches ChunkEncoder at every code-size boundary", () => {
    const table = new ChunkEncoderTable();
    const lane = (slot: number): Lane => ({ slot, what: `boundaries, slot ${slot}`, t: () => 0, v: () => 0, enc: new ChunkEncoder(), ts: [], vs: [] });
    const add = (l: Lane, t: number, v: number) => {
      l.enc.append(t, v);
      table.append(l.slot, t, v);
      l.ts.push(t);
      l.vs.push(v);
      expectSlotLike(table, l);
    };
    // Delta-of-delta at each edge of each timestamp code, both signs.
    const dods = [0, -4, 3, 4, -5, -32, 31, 32, -33, -256, 255, 256, -257, -32768, 32767, 32768, -32769];
    dods.push(-(2 ** 31), 2 ** 31 - 1, 2 ** 31, -(2 ** 31) - 1, 2 ** 40, -(2 ** 40));
    const tl = lane(0);
    let t = -(2 ** 50);
    let delta = 2 ** 41; // large enough that every dod keeps time going forward
    add(tl, t, 0);
    for (const dod of dods) {
      delta += dod;
      add(tl, (t += delta), 0);
      delta += 0;
      add(tl, (t += delta), 0); // dod 0 between
    }
    expectDecodes(table.bytes(0), tl.ts, tl.vs);
    // Zigzag value changes at each edge of each value code, on scales 0 and 2, with shifts 0 and 12.
    for (const [slot, unit] of [
      [1, 1],
      [2, 0.01],
      [3, 4096],
    ] as const) {
      const vl = lane(slot);
      let v = 0;
      let i = 0;
      add(vl, i++, v);
      for (const z of [15, 16, 127, 128, 1023, 1024, 16383, 16384, 2 ** 20 - 1, 2 ** 20, 2 ** 32 - 1, 2 ** 32, 2 ** 40]) {
        for (const zz of [z, z + 1]) {
          const m = zz % 2 === 0 ? zz / 2 : -(zz + 1) / 2;
          v = unit === 0.01 ? Math.round((v + m * unit) * 100) / 100 : v + m * unit;
          if (!(Math.abs(v) < 2 ** 53) || (unit === 0.01 && Math.abs(v) >= 2 ** 53 / 100)) v = 0;
          add(vl, i++, v);
        }
      }
      expectDecodes(table.bytes(slot), vl.ts, vl.vs);
    }
  });

  it("stores a first timestamp of −0 as 0, like ChunkEncoder", () => {
    const table = new ChunkEncoderTable();
    const enc = new ChunkEncoder();
    enc.append(-0, -0);
    table.append(0, -0, -0);
    expect(Object.is(table.minT(0), 0)).toBe(true);
    expect(Object.is(table.maxT(0), 0)).toBe(true);
    expect(table.bytes(0)).toEqual(enc.bytes());
    enc.append(0, 0);
    table.append(0, 0, 0);
    enc.append(-0, -0);
    table.append(0, -0, -0);
    expect(Object.is(table.maxT(0), enc.maxT)).toBe(true);
    expect(table.bytes(0)).toEqual(enc.bytes());
  });

  it("empty and fresh slots read like an empty ChunkEncoder", () => {
    const table = new ChunkEncoderTable(8);
    const enc = new ChunkEncoder();
    for (const slot of [0, 7, 8, 5000]) {
      expect(table.count(slot)).toBe(0);
      expect(table.minT(slot)).toBeNaN();
      expect(table.maxT(slot)).toBeNaN();
      expect(table.bytes(slot)).toEqual(enc.bytes());
      expect(table.byteLength(slot)).toBe(3);
    }
    expect(table.capacity).toBe(8); // reads do not grow the table
    expect(() => table.count(-1)).toThrow(RangeError);
    expect(() => table.append(1.5, 0, 0)).toThrow(RangeError);
    expect(() => table.append(-1, 0, 0)).toThrow(RangeError);
  });

  it("throws ChunkEncoder's RangeErrors on invalid input and leaves the slot unchanged", () => {
    const bad: [number, unknown][] = [
      [T0 + 10_000, Number.NaN],
      [T0 + 10_000, Number.POSITIVE_INFINITY],
      [T0 + 10_000, Number.NEGATIVE_INFINITY],
      [T0 + 10_000, "5"],
      [T0 + 10_000, undefined],
      [Number.NaN, 1],
      [Number.POSITIVE_INFINITY, 1],
      [T0 + 10_000.5, 1],
      [T0 - 1, 1], // before the last t
      [MAX_SAFE + 1, 1],
      [-MAX_SAFE - 2, 1],
    ];
    for (const prefix of [0, 1, 2, 30]) {
      const table = new ChunkEncoderTable(4);
      const enc = new ChunkEncoder();
      for (let i = 0; i < prefix; i++) {
        const t = prefix === 1 ? T0 : T0 - 5000 * (prefix - 1 - i);
        enc.append(t, i * 1.5);
        table.append(2, t, i * 1.5);
      }
      for (const [t, v] of bad) {
        if (prefix === 0 && t === T0 - 1) continue; // valid on an empty chunk
        let want: unknown;
        try {
          enc.append(t, v as number);
        } catch (e) {
          want = e;
        }
        expect(want, `ChunkEncoder accepted ${t}, ${String(v)}`).toBeInstanceOf(RangeError);
        const before = table.bytes(2);
        expect(() => table.append(2, t, v as number)).toThrow(new RangeError((want as Error).message));
        expect(table.bytes(2)).toEqual(before);
        expect(table.count(2)).toBe(prefix);
      }
      // A step larger than 2^53 − 1.
      const t2 = new ChunkEncoderTable();
      t2.append(0, -MAX_SAFE, 1);
      const e2 = new ChunkEncoder();
      e2.append(-MAX_SAFE, 1);
      const before = t2.bytes(0);
      expect(() => e2.append(1, 1)).toThrow(/too large/);
      expect(() => t2.append(0, 1, 1)).toThrow(new RangeError("timestamp step -9007199254740991 → 1 is too large"));
      expect(t2.bytes(0)).toEqual(before);
      // Still usable, and still in step with the encoder.
      const t = prefix === 0 ? T0 : T0 + 5000;
      enc.append(t, 2.25);
      table.append(2, t, 2.25);
      expect(table.bytes(2)).toEqual(enc.bytes());
    }
  });

  it("reset returns the slot's memory and a reused slot encodes from scratch", () => {
    const rnd = prng(42);
    const table = new ChunkEncoderTable(64);
    const kinds = Object.values(VALUES);
    const fillSlots = (round: number) => {
      const encs: ChunkEncoder[] = [];
      for (let s = 0; s < 300; s++) {
        const v = kinds[(s + round) % kinds.length]!(rnd);
        const t = TIMES["5 s with jitter"]!(rnd);
        const enc = new ChunkEncoder();
        for (let i = 0; i < 30 + (s % 90); i++) {
          const ti = t();
          const vi = v();
          enc.append(ti, vi);
          table.append(s, ti, vi);
        }
        encs.push(enc);
      }
      return encs;
    };
    const first = fillSlots(0);
    for (let s = 0; s < 300; s++) expect(table.bytes(s)).toEqual(first[s]!.bytes());
    const full = table.memoryStats();
    expect(full.arenaLiveBytes).toBeGreaterThan(300 * 48);
    for (let s = 0; s < 300; s++) table.reset(s);
    const empty = table.memoryStats();
    expect(empty.arenaLiveBytes).toBe(0);
    for (let s = 0; s < 300; s++) {
      expect(table.count(s)).toBe(0);
      expect(table.byteLength(s)).toBe(3);
      expect(table.minT(s)).toBeNaN();
    }
    const second = fillSlots(5);
    for (let s = 0; s < 300; s++) expect(table.bytes(s)).toEqual(second[s]!.bytes());
    // The freed regions were reused: no new pages.
    expect(table.memoryStats().arenaPageBytes).toBe(full.arenaPageBytes);
    // Resetting one slot leaves the others alone.
    table.reset(7);
    expect(table.count(7)).toBe(0);
    for (const s of [6, 8]) expect(table.bytes(s)).toEqual(second[s]!.bytes());
    table.reset(100_000); // beyond the capacity: nothing to do
  });

  it("grows past its initial capacity, keeping what the slots hold", () => {
    const table = new ChunkEncoderTable(2);
    expect(table.capacity).toBe(2);
    const encs = new Map<number, ChunkEncoder>();
    const rnd = prng(7);
    for (let i = 0; i < 3000; i++) {
      const slot = i < 1000 ? i % 3 : int(rnd, 700);
      const enc = encs.get(slot) ?? new ChunkEncoder();
      encs.set(slot, enc);
      const t = T0 + 5000 * enc.count;
      const v = round(rnd() * 100, 2);
      enc.append(t, v);
      table.append(slot, t, v);
    }
    expect(table.capacity).toBe(1024);
    for (const [slot, enc] of encs) expect(table.bytes(slot)).toEqual(enc.bytes());
    table.ensure(5000);
    expect(table.capacity).toBe(5000);
    for (const [slot, enc] of encs) expect(table.bytes(slot)).toEqual(enc.bytes());
    const m = table.memoryStats();
    expect(m.stateBytes).toBe(table.capacity * STATE_BYTES_PER_SLOT);
    expect(STATE_BYTES_PER_SLOT).toBeLessThan(200);
    expect(m.arenaPageBytes).toBeGreaterThanOrEqual(m.arenaLiveBytes);
  });
});
