/**
 * Many open raw chunks at once, as a struct of arrays: the state of every {@link ChunkEncoder} the head would keep
 * (one per series) in typed arrays indexed by slot, and their two bit streams in a shared {@link ByteArena}. A slot
 * costs {@link STATE_BYTES_PER_SLOT} bytes of state plus its streams' regions (16 and 32 bytes to start, doubled
 * when full), instead of ~7 JavaScript objects and two ArrayBuffers (~1 KB).
 *
 * The code is a port of ChunkEncoder, TimestampStreamEncoder, ValueStreamEncoder and BitWriter (chunk.ts,
 * bit-writer.ts) with `this.field` turned into `field[slot]`: for the same appends a slot's {@link bytes} are the
 * bytes ChunkEncoder.bytes() gives (encoder-table.test.ts checks it on random sequences). Keep them in step: a change
 * to the format or to an encoder decision there must be made here too.
 *
 * Appending allocates no JavaScript object (only a stream growing takes arena space). The arena holds at most
 * 2 GiB (addresses stay below 2^31); an append that finds it full throws RangeError with the slot half-written:
 * reset the slot then.
 */
import { ARENA_PAGE_MASK, ARENA_PAGE_SHIFT, ByteArena } from "./byte-arena.js";
import {
  CHUNK_VERSION,
  ESC,
  MAX_N,
  MAX_SAFE,
  MAX_SCALE,
  MAX_SHIFT,
  MODE_XOR,
  OP_RAW,
  OP_SHIFT,
  OP_XOR,
  POW10,
  POW2,
  TWO32,
  XOR_ESCAPE_LEAD,
  badTimestamp,
  badValue,
  fitScale,
  putVarint,
  scaledInt,
  trailingZeros,
  varintLength,
} from "./chunk.js";

/** First region of a slot's timestamp and value streams (bytes); each doubles when full. */
const T_INITIAL_BYTES = 16;
const V_INITIAL_BYTES = 32;
/** Stream index = 2·slot + stream: stays far below 2^31. */
const MAX_SLOTS = 2 ** 28;

// The two 32-bit halves of a double, through one shared buffer.
const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
const HI = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1 ? 1 : 0;
const LO = 1 - HI;

/** Bytes of typed-array state per slot (see the fields of {@link ChunkEncoderTable}). */
export const STATE_BYTES_PER_SLOT = 5 * 8 + 3 * 4 + 2 * (4 * 4 + 1) + 10;

export class ChunkEncoderTable {
  private cap = 0;
  private readonly arena = new ByteArena();

  // Per slot. Every field starts at 0 (a fresh or reset slot is all zeros): firstT and lastT are read only when
  // count > 0, and notN is the negation of ValueStreamEncoder.lastIsN.
  /** Samples appended. */
  private cnt!: Int32Array;
  /** Timestamp stream: first and last timestamp, previous delta. */
  private firstT!: Float64Array;
  private lastT!: Float64Array;
  private prevDelta!: Float64Array;
  /** Value stream: decimal scale 0..4 or MODE_XOR. */
  private mode!: Uint8Array;
  /** Decimal mode: previous integer, shift, and the run of changes that would allow a larger shift. */
  private prevN!: Float64Array;
  private shift!: Uint8Array;
  private raiseRun!: Uint8Array;
  private raiseTo!: Uint8Array;
  /** Last value appended, and its bits (kept current in XOR mode only; int32 views of the uint32 halves). */
  private lastV!: Float64Array;
  private lastHi!: Int32Array;
  private lastLo!: Int32Array;
  /** Decimal mode: 1 when lastV is not prevN / 10^d. */
  private notN!: Uint8Array;
  /**
   * Decimal mode: 1 when the last value fit no scale (ValueStreamEncoder counts them, but only ever tests > 0).
   * XOR mode: lastFit is the smallest scale the last value fits, or −1.
   */
  private misfits!: Uint8Array;
  private lastFit!: Int8Array;
  /** XOR window: leading zeros, trailing zeros, length; wSig = 0 means no window yet. */
  private wLead!: Uint8Array;
  private wTrail!: Uint8Array;
  private wSig!: Uint8Array;

  // Per stream, index 2·slot (timestamps) and 2·slot + 1 (values): BitWriter's state, with the buffer as an arena
  // region (size 0: none yet).
  private pos!: Int32Array;
  private acc!: Int32Array;
  private accBits!: Uint8Array;
  private addr!: Int32Array;
  private size!: Int32Array;

  constructor(initialSlots = 1024) {
    if (!(Number.isInteger(initialSlots) && initialSlots >= 0 && initialSlots <= MAX_SLOTS))
      throw new RangeError(`initialSlots ${initialSlots} is not an integer in [0, ${MAX_SLOTS}]`);
    this.resize(Math.max(1, initialSlots));
  }

  /** Slots usable without growing. */
  get capacity(): number {
    return this.cap;
  }

  /** Makes the capacity at least `slots` (exactly `slots` when it grows: the caller picks its growth policy). */
  ensure(slots: number): void {
    if (slots <= this.cap) return;
    if (!(Number.isInteger(slots) && slots <= MAX_SLOTS)) throw new RangeError(`${slots} slots is not an integer ≤ ${MAX_SLOTS}`);
    this.resize(slots);
  }

  /**
   * Appends one sample to `slot` (growing the table when the slot is beyond the capacity). Throws RangeError,
   * leaving the slot unchanged, if t is not a safe integer, is before the slot's last t, or v is not finite (the
   * messages of ChunkEncoder.append), or if slot is not a valid slot number.
   */
  append(slot: number, tMs: number, v: number): void {
    if (!((slot >>> 0) === slot && slot < this.cap)) this.growFor(slot);
    if (!(typeof v === "number" && v - v === 0)) badValue(v);
    const n = this.cnt[slot]!;
    // The checks of TimestampStreamEncoder.check.
    if (!(Math.floor(tMs) === tMs && tMs <= MAX_SAFE && tMs >= -MAX_SAFE)) badTimestamp(tMs, n > 0 ? this.lastT[slot]! : NaN);
    if (n > 0) {
      const last = this.lastT[slot]!;
      if (tMs < last || tMs - last > MAX_SAFE) badTimestamp(tMs, last);
    }
    this.cnt[slot] = n + 1;
    if (n === 0) {
      this.firstT[slot] = this.lastT[slot] = tMs + 0; // −0 → 0
    } else this.appendT(slot, tMs);
    if (this.mode[slot] === MODE_XOR) this.appendXor(slot, v);
    else this.appendDecimal(slot, v);
  }

  /** Samples in the slot's chunk (0 for a slot never used or reset). */
  count(slot: number): number {
    return this.has(slot) ? this.cnt[slot]! : 0;
  }

  /** First timestamp, NaN when empty. */
  minT(slot: number): number {
    return this.count(slot) > 0 ? this.firstT[slot]! : NaN;
  }

  /** Last timestamp, NaN when empty. */
  maxT(slot: number): number {
    return this.count(slot) > 0 ? this.lastT[slot]! : NaN;
  }

  /** Size of {@link bytes} now, without building it. */
  byteLength(slot: number): number {
    const n = this.count(slot);
    if (n === 0) return 3;
    const tl = this.streamBytes(2 * slot);
    return 2 + varintLength(n) + varintLength(Math.abs(this.firstT[slot]!)) + varintLength(tl) + tl + this.streamBytes(2 * slot + 1);
  }

  /** The slot's chunk so far (what ChunkEncoder.bytes() gives), a fresh copy; the slot stays usable. */
  bytes(slot: number): Uint8Array {
    const n = this.count(slot);
    if (n === 0) return Uint8Array.of(CHUNK_VERSION, 0, 0);
    const t0 = this.firstT[slot]!;
    const at = Math.abs(t0);
    const tl = this.streamBytes(2 * slot);
    const out = new Uint8Array(2 + varintLength(n) + varintLength(at) + varintLength(tl) + tl + this.streamBytes(2 * slot + 1));
    out[0] = CHUNK_VERSION;
    out[1] = t0 < 0 ? 1 : 0;
    let off = putVarint(out, 2, n);
    off = putVarint(out, off, at);
    off = putVarint(out, off, tl);
    off = this.copyStream(2 * slot, out, off);
    this.copyStream(2 * slot + 1, out, off);
    return out;
  }

  /** Empties the slot and returns its streams' arena memory. */
  reset(slot: number): void {
    if (!this.has(slot)) return;
    for (let s = 2 * slot; s <= 2 * slot + 1; s++) {
      const size = this.size[s]!;
      if (size > 0) this.arena.free(this.addr[s]!, size);
      this.pos[s] = this.acc[s] = this.accBits[s] = this.addr[s] = this.size[s] = 0;
    }
    this.cnt[slot] = 0;
    this.firstT[slot] = this.lastT[slot] = this.prevDelta[slot] = 0;
    this.mode[slot] = 0;
    this.prevN[slot] = 0;
    this.shift[slot] = this.raiseRun[slot] = this.raiseTo[slot] = 0;
    this.lastV[slot] = 0;
    this.lastHi[slot] = this.lastLo[slot] = 0;
    this.notN[slot] = this.misfits[slot] = 0;
    this.lastFit[slot] = 0;
    this.wLead[slot] = this.wTrail[slot] = this.wSig[slot] = 0;
  }

  /** Bytes of the per-slot typed arrays (at the current capacity), of arena pages, and of live arena regions. */
  memoryStats(): { stateBytes: number; arenaPageBytes: number; arenaLiveBytes: number } {
    const a = this.arena.stats();
    const state = [this.cnt, this.firstT, this.lastT, this.prevDelta, this.mode, this.prevN, this.shift, this.raiseRun, this.raiseTo, this.lastV, this.lastHi, this.lastLo, this.notN, this.misfits, this.lastFit, this.wLead, this.wTrail, this.wSig, this.pos, this.acc, this.accBits, this.addr, this.size];
    let stateBytes = 0;
    for (const x of state) stateBytes += x.byteLength;
    return { stateBytes, arenaPageBytes: a.pageBytes, arenaLiveBytes: a.liveBytes };
  }

  // -------------------------------------------------------------------------------------------------------------
  // Slots

  /** True for a valid slot below the capacity; throws RangeError for one that is not a slot number. */
  private has(slot: number): boolean {
    if ((slot >>> 0) === slot && slot < this.cap) return true;
    if (!(Number.isInteger(slot) && slot >= 0 && slot < MAX_SLOTS)) throw new RangeError(`slot ${slot} is not an integer in [0, ${MAX_SLOTS})`);
    return false;
  }

  private growFor(slot: number): void {
    if (!(Number.isInteger(slot) && slot >= 0 && slot < MAX_SLOTS)) throw new RangeError(`slot ${slot} is not an integer in [0, ${MAX_SLOTS})`);
    let c = Math.max(1, this.cap);
    while (c <= slot) c *= 2;
    this.ensure(Math.min(c, MAX_SLOTS));
  }

  private resize(cap: number): void {
    const n = this.cap;
    const grow = <A extends Int32Array | Uint8Array | Int8Array | Float64Array>(old: A | undefined, make: (len: number) => A, len: number): A => {
      const a = make(len);
      if (old) a.set(old as ArrayLike<number>);
      return a;
    };
    const f = (len: number) => new Float64Array(len);
    const i32 = (len: number) => new Int32Array(len);
    const u8 = (len: number) => new Uint8Array(len);
    const had = n > 0;
    this.cnt = grow(had ? this.cnt : undefined, i32, cap);
    this.firstT = grow(had ? this.firstT : undefined, f, cap);
    this.lastT = grow(had ? this.lastT : undefined, f, cap);
    this.prevDelta = grow(had ? this.prevDelta : undefined, f, cap);
    this.mode = grow(had ? this.mode : undefined, u8, cap);
    this.prevN = grow(had ? this.prevN : undefined, f, cap);
    this.shift = grow(had ? this.shift : undefined, u8, cap);
    this.raiseRun = grow(had ? this.raiseRun : undefined, u8, cap);
    this.raiseTo = grow(had ? this.raiseTo : undefined, u8, cap);
    this.lastV = grow(had ? this.lastV : undefined, f, cap);
    this.lastHi = grow(had ? this.lastHi : undefined, i32, cap);
    this.lastLo = grow(had ? this.lastLo : undefined, i32, cap);
    this.notN = grow(had ? this.notN : undefined, u8, cap);
    this.misfits = grow(had ? this.misfits : undefined, u8, cap);
    this.lastFit = grow(had ? this.lastFit : undefined, (len) => new Int8Array(len), cap);
    this.wLead = grow(had ? this.wLead : undefined, u8, cap);
    this.wTrail = grow(had ? this.wTrail : undefined, u8, cap);
    this.wSig = grow(had ? this.wSig : undefined, u8, cap);
    this.pos = grow(had ? this.pos : undefined, i32, 2 * cap);
    this.acc = grow(had ? this.acc : undefined, i32, 2 * cap);
    this.accBits = grow(had ? this.accBits : undefined, u8, 2 * cap);
    this.addr = grow(had ? this.addr : undefined, i32, 2 * cap);
    this.size = grow(had ? this.size : undefined, i32, 2 * cap);
    this.cap = cap;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Bit streams (BitWriter)

  /** Bytes stream `s` takes (the last one zero-padded). */
  private streamBytes(s: number): number {
    return this.pos[s]! + ((this.accBits[s]! + 7) >>> 3);
  }

  /** Appends the low `n` bits of `v` (1 ≤ n ≤ 32, 0 ≤ v < 2^n) to stream `s`: BitWriter.writeBits. */
  private writeBits(s: number, v: number, n: number): void {
    const ab = this.accBits[s]!;
    const bits = ab + n;
    if (bits < 32) {
      this.acc[s] = (this.acc[s]! << n) | v;
      this.accBits[s] = bits;
      return;
    }
    const rest = bits - 32;
    const word = ab === 0 ? v : (this.acc[s]! << (32 - ab)) | (v >>> rest);
    const p = this.pos[s]!;
    if (p + 4 > this.size[s]!) this.growStream(s, p);
    const a = this.addr[s]! + p; // a region never spans pages
    const page = this.arena.pages[a >>> ARENA_PAGE_SHIFT]!;
    const o = a & ARENA_PAGE_MASK;
    page[o] = word >>> 24;
    page[o + 1] = word >>> 16;
    page[o + 2] = word >>> 8;
    page[o + 3] = word;
    this.pos[s] = p + 4;
    this.acc[s] = rest === 0 ? 0 : v & (0xffffffff >>> (32 - rest));
    this.accBits[s] = rest;
  }

  private growStream(s: number, used: number): void {
    const size = this.size[s]!;
    if (size === 0) {
      const first = (s & 1) === 0 ? T_INITIAL_BYTES : V_INITIAL_BYTES;
      this.addr[s] = this.arena.alloc(first);
      this.size[s] = first;
    } else {
      this.addr[s] = this.arena.grow(this.addr[s]!, size, used, 2 * size);
      this.size[s] = 2 * size;
    }
  }

  /** BitWriter.copyTo: stream `s`'s bytes (last one zero-padded) into `dst` at `off`; returns the offset after. */
  private copyStream(s: number, dst: Uint8Array, off: number): number {
    const p = this.pos[s]!;
    if (p > 0) {
      const a = this.addr[s]!;
      const o = a & ARENA_PAGE_MASK;
      dst.set(this.arena.pages[a >>> ARENA_PAGE_SHIFT]!.subarray(o, o + p), off);
      off += p;
    }
    const ab = this.accBits[s]!;
    if (ab > 0) {
      const aligned = this.acc[s]! << (32 - ab);
      const n = (ab + 7) >>> 3;
      for (let i = 0; i < n; i++) dst[off++] = aligned >>> (24 - 8 * i);
    }
    return off;
  }

  private writeSignMag53(s: number, x: number): void {
    const m = x < 0 ? -x : x;
    const hi = Math.floor(m / TWO32);
    this.writeBits(s, (x < 0 ? 0x200000 : 0) | hi, 22);
    this.writeBits(s, m - hi * TWO32, 32);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Timestamp stream (TimestampStreamEncoder.append after the first sample)

  private appendT(slot: number, t: number): void {
    const s = 2 * slot;
    const delta = t - this.lastT[slot]!;
    const dod = delta - this.prevDelta[slot]!;
    this.prevDelta[slot] = delta;
    this.lastT[slot] = t;
    if (dod === 0) this.writeBits(s, 0, 1);
    else if (dod >= -4 && dod < 4) this.writeBits(s, (0b10 << 3) | (dod + 4), 5);
    else if (dod >= -32 && dod < 32) this.writeBits(s, (0b110 << 6) | (dod + 32), 9);
    else if (dod >= -256 && dod < 256) this.writeBits(s, (0b1110 << 9) | (dod + 256), 13);
    else if (dod >= -32768 && dod < 32768) this.writeBits(s, (0b11110 << 16) | (dod + 32768), 21);
    else if (dod >= -0x80000000 && dod < 0x80000000) {
      this.writeBits(s, 0b111110, 6);
      this.writeBits(s, dod + 0x80000000, 32);
    } else {
      this.writeBits(s, 0b111111, 6);
      this.writeSignMag53(s, dod);
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Value stream (ValueStreamEncoder)

  private appendDecimal(slot: number, v: number): void {
    const s = 2 * slot + 1;
    // Unchanged value (the commonest case) when the last one was coded as n: no rounding needed.
    if (v === this.lastV[slot] && this.notN[slot] === 0 && (v !== 0 || 1 / v > 0)) {
      this.writeBits(s, 0, 1);
      return;
    }
    const mode = this.mode[slot]!;
    const p = POW10[mode]!;
    const n = Math.round(v * p);
    if (n / p === v && n <= MAX_N && n >= -MAX_N && (v !== 0 || 1 / v > 0)) {
      const d = n - this.prevN[slot]!;
      if (d === 0) {
        this.writeBits(s, 0, 1);
      } else if (d <= MAX_SAFE && d >= -MAX_SAFE) {
        this.writeDelta(slot, d);
      } else {
        this.writeRaw(slot, v); // δ too large to be exact in a double
        return;
      }
      this.prevN[slot] = n;
      this.lastV[slot] = v;
      this.notN[slot] = 0;
      this.misfits[slot] = 0;
      return;
    }
    const fit = mode < MAX_SCALE ? fitScale(v, mode + 1) : -1;
    if (fit > 0) {
      this.enterDecimal(slot, fit);
      this.appendDecimal(slot, v); // fits now (or goes raw if δ is too large): no further switch
    } else if (this.misfits[slot]! > 0) {
      this.writeBits(s, ESC | OP_XOR, 12);
      this.mode[slot] = MODE_XOR;
      const last = this.lastV[slot]!;
      f64[0] = last;
      this.lastHi[slot] = u32[HI]!;
      this.lastLo[slot] = u32[LO]!;
      this.lastFit[slot] = fitScale(last, 0);
      this.wSig[slot] = 0;
      this.appendXor(slot, v);
    } else {
      this.writeRaw(slot, v);
    }
  }

  /** Writes a nonzero change δ of n, adjusting the shift first when it does not fit or could grow. */
  private writeDelta(slot: number, d: number): void {
    const s = 2 * slot + 1;
    const shift = this.shift[slot]!;
    let sh = shift;
    const tz = trailingZeros(d);
    if (tz < sh) {
      sh = tz;
      this.raiseRun[slot] = 0;
    } else if (tz >= sh + 3) {
      const to = tz > MAX_SHIFT ? MAX_SHIFT : tz;
      const run = this.raiseRun[slot]!;
      const raiseTo = run === 0 || to < this.raiseTo[slot]! ? to : this.raiseTo[slot]!;
      this.raiseTo[slot] = raiseTo;
      if (run + 1 === 3) {
        sh = raiseTo;
        this.raiseRun[slot] = 0;
      } else this.raiseRun[slot] = run + 1;
    } else this.raiseRun[slot] = 0;
    if (sh !== shift) {
      this.writeBits(s, ((ESC | OP_SHIFT) << 5) | sh, 17);
      this.shift[slot] = sh;
    }
    const m = sh === 0 ? d : d / POW2[sh]!;
    const z = m >= 0 ? 2 * m : -2 * m - 1; // inexact beyond 2^53, but then only compared with 2^32
    if (z < 16) this.writeBits(s, (0b10 << 4) | z, 6);
    else if (z < 128) this.writeBits(s, (0b110 << 7) | z, 10);
    else if (z < 1024) this.writeBits(s, (0b1110 << 10) | z, 14);
    else if (z < 16384) this.writeBits(s, (0b11110 << 14) | z, 19);
    else if (z < 0x100000) this.writeBits(s, (0b111110 << 20) | z, 26);
    else if (z < TWO32) {
      this.writeBits(s, 0b1111110, 7);
      this.writeBits(s, z, 32);
    } else {
      this.writeBits(s, 0b11111110, 8);
      this.writeSignMag53(s, m);
    }
  }

  private writeRaw(slot: number, v: number): void {
    const s = 2 * slot + 1;
    this.writeBits(s, ESC | OP_RAW, 12);
    f64[0] = v;
    this.writeBits(s, u32[HI]!, 32);
    this.writeBits(s, u32[LO]!, 32);
    this.lastV[slot] = v;
    this.notN[slot] = 1;
    this.misfits[slot] = 1;
  }

  private enterDecimal(slot: number, d: number): void {
    const xor = this.mode[slot] === MODE_XOR;
    this.writeBits(2 * slot + 1, xor ? (0b11 << 8) | (XOR_ESCAPE_LEAD << 3) | d : ESC | d, xor ? 10 : 12);
    this.mode[slot] = d;
    const n = scaledInt(this.lastV[slot]!, d);
    this.prevN[slot] = n === n ? n : 0;
    this.notN[slot] = 1;
    this.shift[slot] = 0;
    this.raiseRun[slot] = 0;
    this.misfits[slot] = 0;
  }

  private appendXor(slot: number, v: number): void {
    const s = 2 * slot + 1;
    f64[0] = v;
    const hi = u32[HI]!;
    const lo = u32[LO]!;
    const xh = (hi ^ this.lastHi[slot]!) >>> 0;
    const xl = (lo ^ this.lastLo[slot]!) >>> 0;
    if (xh === 0 && xl === 0) {
      this.writeBits(s, 0, 1);
      return;
    }
    const fit = fitScale(v, 0);
    const lastFit = this.lastFit[slot]!;
    if (fit >= 0 && lastFit >= 0) {
      this.enterDecimal(slot, fit > lastFit ? fit : lastFit);
      this.appendDecimal(slot, v);
      return;
    }
    this.lastFit[slot] = fit;
    this.lastV[slot] = v;
    this.lastHi[slot] = hi;
    this.lastLo[slot] = lo;

    let lead = xh !== 0 ? Math.clz32(xh) : 32 + Math.clz32(xl);
    if (lead > 30) lead = 30; // 31 is the escape
    const trail = xl !== 0 ? 31 - Math.clz32(xl & -xl) : 63 - Math.clz32(xh & -xh);
    const sig = 64 - lead - trail;
    let t: number;
    let n: number;
    // Reuse the previous window when the value fits in it and that costs no more than a new header (11 bits).
    const wSig = this.wSig[slot]!;
    if (wSig !== 0 && lead >= this.wLead[slot]! && trail >= this.wTrail[slot]! && wSig <= sig + 11) {
      this.writeBits(s, 0b10, 2);
      t = this.wTrail[slot]!;
      n = wSig;
    } else {
      this.writeBits(s, (0b11 << 11) | (lead << 6) | (sig & 63), 13);
      this.wLead[slot] = lead;
      this.wTrail[slot] = t = trail;
      this.wSig[slot] = n = sig;
    }
    // Write bits [t, t + n) of the 64-bit xh:xl (all bits above t + n are zero).
    if (t >= 32) this.writeBits(s, xh >>> (t - 32), n);
    else if (n <= 32 - t) this.writeBits(s, xl >>> t, n);
    else {
      const lo2 = t === 0 ? xl : ((xl >>> t) | (xh << (32 - t))) >>> 0;
      const hi2 = xh >>> t;
      if (n > 32) {
        this.writeBits(s, hi2, n - 32);
        this.writeBits(s, lo2, 32);
      } else this.writeBits(s, lo2, n);
    }
  }
}
