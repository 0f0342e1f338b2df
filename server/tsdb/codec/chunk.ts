/**
 * Compressed chunk of one series' raw samples (integer ms timestamps, double values): pure code, no I/O.
 *
 * Layout (all multi-byte header fields are unsigned LEB128 varints, computed with arithmetic up to 2^53):
 *
 *   [version=1][flags][count]                      count = 0: nothing follows
 *   [|t0|][timestamp section length]               flags bit 0: t0 is negative (other bits must be 0)
 *   [timestamp section][value section]             the value section runs to the end of the chunk
 *
 * Timestamps and values are two separate bit streams ("columns"): an encoder appends to both incrementally, a
 * decoder runs one tight loop per column. Each section's last byte is zero-padded, and the decoded length must
 * match the section length exactly. Bit fields are MSB first; "k bits" fields of signed numbers are offset by
 * 2^(k−1).
 *
 * Timestamp stream: delta-of-delta (dod) of the count − 1 timestamps after t0, the previous delta starting at 0:
 *   0 → dod 0 | 10 +3 bits [−4,4) | 110 +6 bits [−32,32) | 1110 +9 bits [−256,256) | 11110 +16 bits
 *   | 111110 +32 bits | 111111 + sign + 53-bit magnitude.
 *
 * Value stream: a small state machine, starting in decimal mode with scale d = 0, shift s = 0, previous integer
 * n = 0 and last value +0.
 *   Decimal mode d (0..4): values are v = n / 10^d; a code gives m, with n = previous n + m·2^s. Codes on the
 *   zigzag z of m: 0 → m = 0 | 10 +4 bits z | 110 +7 | 1110 +10 | 11110 +14 | 111110 +20 | 1111110 +32
 *     | 11111110 + sign + 53-bit magnitude of m | 11111111 + 4-bit op:
 *       op 0..4: enter decimal scale op; 5: set shift s to the next 5 bits; 6: next 64 bits are the raw value
 *       (n unchanged); 7: enter XOR mode. After ops 0..5 and 7 the same sample follows, in the new state.
 *   XOR mode (Gorilla): 0 → same value | 10 + bits in the previous leading/trailing window
 *     | 11 + 5-bit leading zeros (0..30) + 6-bit length (0 = 64) + bits
 *     | 11 11111 + 3-bit decimal scale to enter, then the same sample in decimal mode.
 *   Entering decimal scale d sets s = 0 and n to the last value's integer at that scale (0 if it has none);
 *   entering XOR mode XORs against the last value, with no window yet.
 * The encoder picks the smallest scale that fits and only raises it; after two samples in a row that fit no
 * scale it switches to XOR, and back to a decimal scale when two samples in a row fit one again. The shift is
 * raised when three changes in a row are multiples of 2^(s+3) or more (byte gauges move in 4 KiB pages) and
 * lowered when a change is not a multiple of 2^s.
 */
import { BitWriter, paddedCopy, peek32 } from "./bit-writer.js";

/** Format version of raw chunks (first byte). */
export const CHUNK_VERSION = 1;

/** Thrown when bytes are not a chunk this code can decode (wrong version, truncated, corrupt). */
export class ChunkDecodeError extends Error {
  override name = "ChunkDecodeError";
}

export const MAX_SAFE = Number.MAX_SAFE_INTEGER;
export const TWO32 = 2 ** 32;
/** Largest |n| of a decimal-scaled value. */
export const MAX_N = 2 ** 53;
export const MAX_SCALE = 4;
export const POW10 = [1, 10, 100, 1000, 10000] as const;
export const MODE_XOR = 7;
/** Leading-zero count reserved in XOR mode's "11" code as the mode-switch escape. */
export const XOR_ESCAPE_LEAD = 31;
/** A sample never takes more than this many mode switches (bounds the decoder on corrupt input). */
const MAX_SWITCHES_PER_SAMPLE = 4;

// The two 32-bit halves of a double, through one shared buffer.
const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
const HI = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1 ? 1 : 0; // little-endian: high word is [1]
const LO = 1 - HI;

/**
 * The integer n with n / 10^d === v (|n| ≤ 2^53, v not −0), or NaN. Decoder and encoder both call this when
 * entering a decimal scale, so it must stay deterministic (it is: IEEE arithmetic).
 */
export function scaledInt(v: number, d: number): number {
  const p = POW10[d]!;
  const n = Math.round(v * p);
  return n / p === v && n <= MAX_N && n >= -MAX_N && (v !== 0 || 1 / v > 0) ? n : NaN;
}

/** Below this magnitude a value on any scale d ≤ 4 is also exact on scale 4 (|v·10^4| < 2^50 rounds exactly). */
const QUICK_REJECT_BELOW = 2 ** 50 / 10 ** 4;

/** Smallest decimal scale d in [from, 4] on which v is exact, or −1. */
export function fitScale(v: number, from: number): number {
  // Values with many decimals (the common misfit) fail scale 4 first: one try instead of five.
  if (v < QUICK_REJECT_BELOW && v > -QUICK_REJECT_BELOW) {
    if (scaledInt(v, MAX_SCALE) !== scaledInt(v, MAX_SCALE)) return -1;
  } else if (v > MAX_N || v < -MAX_N) return -1; // |n| would exceed 2^53 on every scale
  for (let d = from; d <= MAX_SCALE; d++) {
    const n = scaledInt(v, d);
    if (n === n) return d;
  }
  return -1;
}

function writeSignMag53(w: BitWriter, x: number): void {
  const m = x < 0 ? -x : x;
  const hi = Math.floor(m / TWO32);
  w.writeBits((x < 0 ? 0x200000 : 0) | hi, 22);
  w.writeBits(m - hi * TWO32, 32);
}

/** Reads what {@link writeSignMag53} wrote at bit `pos` of `buf` (54 bits). */
function readSignMag53(buf: Uint8Array, pos: number): number {
  const a = peek32(buf, pos) >>> 10;
  const m = (a & 0x1fffff) * TWO32 + (peek32(buf, pos + 22) >>> 0);
  return a >>> 21 ? -m : m;
}

// ---------------------------------------------------------------------------------------------------------------
// Timestamp stream

export function badTimestamp(t: number, last: number): never {
  if (!Number.isSafeInteger(t)) throw new RangeError(`timestamp ${t} is not a safe integer`);
  if (t < last) throw new RangeError(`timestamp ${t} is before the previous one (${last})`);
  throw new RangeError(`timestamp step ${last} → ${t} is too large`);
}

/** Throws ChunkDecodeError; kept out of line so the decode loops stay small. */
function corrupt(message: string): never {
  throw new ChunkDecodeError(message);
}

/**
 * Appends timestamps (safe integers, non-decreasing, each step ≤ 2^53 − 1) as delta-of-delta codes. The first
 * timestamp is not written: it goes into the chunk header ({@link firstT}).
 */
export class TimestampStreamEncoder {
  count = 0;
  firstT = NaN;
  lastT = NaN;
  private prevDelta = 0;

  constructor(private readonly w: BitWriter) {}

  /** Throws RangeError (and writes nothing) for a timestamp that is not a safe integer or goes back in time. */
  check(t: number): void {
    // Not Number.isSafeInteger, and the messages built in a separate function: both kept this hot check from
    // being optimized (140 ns instead of 14 ns per call).
    if (!(Math.floor(t) === t && t <= MAX_SAFE && t >= -MAX_SAFE)) badTimestamp(t, this.count > 0 ? this.lastT : NaN);
    if (this.count > 0 && (t < this.lastT || t - this.lastT > MAX_SAFE)) badTimestamp(t, this.lastT);
  }

  /** Appends a timestamp already validated by {@link check}. */
  append(t: number): void {
    if (this.count++ === 0) {
      this.firstT = this.lastT = t + 0; // −0 → 0
      return;
    }
    const delta = t - this.lastT;
    const dod = delta - this.prevDelta;
    this.prevDelta = delta;
    this.lastT = t;
    const w = this.w;
    if (dod === 0) w.writeBits(0, 1);
    else if (dod >= -4 && dod < 4) w.writeBits((0b10 << 3) | (dod + 4), 5);
    else if (dod >= -32 && dod < 32) w.writeBits((0b110 << 6) | (dod + 32), 9);
    else if (dod >= -256 && dod < 256) w.writeBits((0b1110 << 9) | (dod + 256), 13);
    else if (dod >= -32768 && dod < 32768) w.writeBits((0b11110 << 16) | (dod + 32768), 21);
    else if (dod >= -0x80000000 && dod < 0x80000000) {
      w.writeBits(0b111110, 6);
      w.writeBits(dod + 0x80000000, 32);
    } else {
      w.writeBits(0b111111, 6);
      writeSignMag53(w, dod);
    }
  }
}

/**
 * Decodes `count` timestamps starting with `t0` from the timestamp section `buf[start, end)` into `out[0, count)`;
 * `buf` comes from {@link paddedCopy}. Throws ChunkDecodeError on truncated or corrupt input (time going
 * backwards, past 2^53, section length mismatch).
 */
export function decodeTimestampStream(
  buf: Uint8Array,
  start: number,
  end: number,
  count: number,
  t0: number,
  out: Float64Array,
): void {
  if (count === 0) return;
  const limit = end * 8;
  let pos = start * 8;
  let t = t0;
  let delta = 0;
  out[0] = t;
  for (let i = 1; i < count; i++) {
    const w = peek32(buf, pos);
    if (w >= 0) {
      pos += 1;
    } else {
      switch (Math.clz32(~w)) {
        case 1:
          delta += ((w >>> 27) & 7) - 4;
          pos += 5;
          break;
        case 2:
          delta += ((w >>> 23) & 63) - 32;
          pos += 9;
          break;
        case 3:
          delta += ((w >>> 19) & 511) - 256;
          pos += 13;
          break;
        case 4:
          delta += ((w >>> 11) & 0xffff) - 32768;
          pos += 21;
          break;
        case 5:
          delta += (peek32(buf, pos + 6) >>> 0) - 0x80000000;
          pos += 38;
          break;
        default:
          delta += readSignMag53(buf, pos + 6);
          pos += 60;
      }
      if (delta < 0) corrupt("corrupt chunk: timestamps go backwards");
    }
    if (pos > limit) corrupt("truncated chunk: timestamp section ends early");
    t += delta;
    out[i] = t;
  }
  if (t > MAX_SAFE) corrupt("corrupt chunk: timestamp beyond 2^53");
  checkSectionEnd(buf, pos, limit, "timestamp");
}

// ---------------------------------------------------------------------------------------------------------------
// Value stream

/** 2^s for the decimal-mode shift. */
export const POW2: readonly number[] = Array.from({ length: 32 }, (_, i) => 2 ** i);
export const MAX_SHIFT = 31;
/** Decimal-mode escape: eight 1 bits and a 4-bit op. */
export const ESC = 0xff << 4;
export const OP_SHIFT = 5;
export const OP_RAW = 6;
export const OP_XOR = 7;
/** Decoder marker: a state change (shift) that keeps the mode; the same sample follows. */
const SAME_MODE = 8;

/** Trailing zero bits of a nonzero integer |x| ≤ 2^53. */
export function trailingZeros(x: number): number {
  const a = x < 0 ? -x : x;
  const lo = a >>> 0; // a mod 2^32
  if (lo !== 0) return 31 - Math.clz32(lo & -lo);
  const hi = (a / TWO32) >>> 0;
  return 63 - Math.clz32(hi & -hi);
}

/** Appends finite doubles to a value stream (see the module comment); exact round trip, −0 included. */
export class ValueStreamEncoder {
  /** Decimal scale 0..4, or MODE_XOR. */
  private mode = 0;
  /** Decimal mode: previous integer, shift, and the run of changes that would allow a larger shift. */
  private prevN = 0;
  private shift = 0;
  private raiseRun = 0;
  private raiseTo = 0;
  /** Last value appended, and its bits (kept current in XOR mode only). */
  private lastV = 0;
  private lastHi = 0;
  private lastLo = 0;
  /** Decimal mode: lastV is prevN / 10^d (so an equal value is code 0 without rounding). */
  private lastIsN = true;
  /** Decimal mode: values in a row that fit no scale. XOR mode: the smallest scale the last value fits, or −1. */
  private misfits = 0;
  private lastFit = 0;
  /** XOR window: trailing zeros, leading zeros, length; wSig = 0 means no window yet. */
  private wLead = 0;
  private wTrail = 0;
  private wSig = 0;

  constructor(private readonly w: BitWriter) {}

  /** Appends a finite double (the caller checks finiteness). */
  append(v: number): void {
    if (this.mode === MODE_XOR) this.appendXor(v);
    else this.appendDecimal(v);
  }

  private appendDecimal(v: number): void {
    const w = this.w;
    // Unchanged value (the commonest case) when the last one was coded as n: no rounding needed.
    if (v === this.lastV && this.lastIsN && (v !== 0 || 1 / v > 0)) {
      w.writeBits(0, 1);
      return;
    }
    const p = POW10[this.mode]!;
    const n = Math.round(v * p);
    if (n / p === v && n <= MAX_N && n >= -MAX_N && (v !== 0 || 1 / v > 0)) {
      const d = n - this.prevN;
      if (d === 0) {
        w.writeBits(0, 1);
      } else if (d <= MAX_SAFE && d >= -MAX_SAFE) {
        this.writeDelta(d);
      } else {
        this.writeRaw(v); // δ too large to be exact in a double
        return;
      }
      this.prevN = n;
      this.lastV = v;
      this.lastIsN = true;
      this.misfits = 0;
      return;
    }
    const fit = this.mode < MAX_SCALE ? fitScale(v, this.mode + 1) : -1;
    if (fit > 0) {
      this.enterDecimal(fit);
      this.appendDecimal(v); // fits now (or goes raw if δ is too large): no further switch
    } else if (this.misfits > 0) {
      w.writeBits(ESC | OP_XOR, 12);
      this.mode = MODE_XOR;
      f64[0] = this.lastV;
      this.lastHi = u32[HI]!;
      this.lastLo = u32[LO]!;
      this.lastFit = fitScale(this.lastV, 0);
      this.wSig = 0;
      this.appendXor(v);
    } else {
      this.writeRaw(v);
    }
  }

  /** Writes a nonzero change δ of n, adjusting the shift first when it does not fit or could grow. */
  private writeDelta(d: number): void {
    const w = this.w;
    let s = this.shift;
    const tz = trailingZeros(d);
    if (tz < s) {
      s = tz;
      this.raiseRun = 0;
    } else if (tz >= s + 3) {
      const to = tz > MAX_SHIFT ? MAX_SHIFT : tz;
      this.raiseTo = this.raiseRun === 0 || to < this.raiseTo ? to : this.raiseTo;
      if (++this.raiseRun === 3) {
        s = this.raiseTo;
        this.raiseRun = 0;
      }
    } else this.raiseRun = 0;
    if (s !== this.shift) {
      w.writeBits(((ESC | OP_SHIFT) << 5) | s, 17);
      this.shift = s;
    }
    const m = s === 0 ? d : d / POW2[s]!;
    const z = m >= 0 ? 2 * m : -2 * m - 1; // inexact beyond 2^53, but then only compared with 2^32
    if (z < 16) w.writeBits((0b10 << 4) | z, 6);
    else if (z < 128) w.writeBits((0b110 << 7) | z, 10);
    else if (z < 1024) w.writeBits((0b1110 << 10) | z, 14);
    else if (z < 16384) w.writeBits((0b11110 << 14) | z, 19);
    else if (z < 0x100000) w.writeBits((0b111110 << 20) | z, 26);
    else if (z < TWO32) {
      w.writeBits(0b1111110, 7);
      w.writeBits(z, 32);
    } else {
      w.writeBits(0b11111110, 8);
      writeSignMag53(w, m);
    }
  }

  private writeRaw(v: number): void {
    const w = this.w;
    w.writeBits(ESC | OP_RAW, 12);
    f64[0] = v;
    w.writeBits(u32[HI]!, 32);
    w.writeBits(u32[LO]!, 32);
    this.lastV = v;
    this.lastIsN = false;
    this.misfits++;
  }

  private enterDecimal(d: number): void {
    this.w.writeBits(this.mode === MODE_XOR ? (0b11 << 8) | (XOR_ESCAPE_LEAD << 3) | d : ESC | d, this.mode === MODE_XOR ? 10 : 12);
    this.mode = d;
    const n = scaledInt(this.lastV, d);
    this.prevN = n === n ? n : 0;
    this.lastIsN = false;
    this.shift = 0;
    this.raiseRun = 0;
    this.misfits = 0;
  }

  private appendXor(v: number): void {
    const w = this.w;
    f64[0] = v;
    const hi = u32[HI]!;
    const lo = u32[LO]!;
    const xh = (hi ^ this.lastHi) >>> 0;
    const xl = (lo ^ this.lastLo) >>> 0;
    if (xh === 0 && xl === 0) {
      w.writeBits(0, 1);
      return;
    }
    const fit = fitScale(v, 0);
    if (fit >= 0 && this.lastFit >= 0) {
      this.enterDecimal(fit > this.lastFit ? fit : this.lastFit);
      this.appendDecimal(v);
      return;
    }
    this.lastFit = fit;
    this.lastV = v;
    this.lastHi = hi;
    this.lastLo = lo;

    let lead = xh !== 0 ? Math.clz32(xh) : 32 + Math.clz32(xl);
    if (lead > 30) lead = 30; // 31 is the escape
    const trail = xl !== 0 ? 31 - Math.clz32(xl & -xl) : 63 - Math.clz32(xh & -xh);
    const sig = 64 - lead - trail;
    let t: number;
    let n: number;
    // Reuse the previous window when the value fits in it and that costs no more than a new header (11 bits).
    if (this.wSig !== 0 && lead >= this.wLead && trail >= this.wTrail && this.wSig <= sig + 11) {
      w.writeBits(0b10, 2);
      t = this.wTrail;
      n = this.wSig;
    } else {
      w.writeBits((0b11 << 11) | (lead << 6) | (sig & 63), 13);
      this.wLead = lead;
      this.wTrail = t = trail;
      this.wSig = n = sig;
    }
    // Write bits [t, t + n) of the 64-bit xh:xl (all bits above t + n are zero).
    if (t >= 32) w.writeBits(xh >>> (t - 32), n);
    else if (n <= 32 - t) w.writeBits(xl >>> t, n);
    else {
      const lo2 = t === 0 ? xl : ((xl >>> t) | (xh << (32 - t))) >>> 0;
      const hi2 = xh >>> t;
      if (n > 32) {
        w.writeBits(hi2, n - 32);
        w.writeBits(lo2, 32);
      } else w.writeBits(lo2, n);
    }
  }
}

/**
 * Decodes `count` values from the value section `buf[start, end)` into `out[0, count)`; `buf` comes from
 * {@link paddedCopy}. Throws ChunkDecodeError on truncated or corrupt input.
 */
export function decodeValueStream(buf: Uint8Array, start: number, end: number, count: number, out: Float64Array): void {
  const limit = end * 8;
  let pos = start * 8;
  let mode = 0;
  let p = 1;
  let prevN = 0;
  let unit = 1; // 2^shift
  let lastV = 0;
  let lastHi = 0;
  let lastLo = 0;
  let wTrail = 0;
  let wSig = 0;
  let switches = 0;
  let halves: Uint32Array | undefined; // out's bits, made on the first XOR-mode sample
  let i = 0;
  while (i < count) {
    if (pos > limit) corrupt("truncated chunk: value section ends early");
    const w = peek32(buf, pos);
    let newMode = -1;
    if (mode !== MODE_XOR) {
      if (w >= 0) {
        pos += 1;
        lastV = prevN / p;
      } else {
        let z = -1; // zigzag m, or −1 when the code is not a zigzag one
        switch (Math.clz32(~w)) {
          case 1:
            z = (w >>> 26) & 15;
            pos += 6;
            break;
          case 2:
            z = (w >>> 22) & 127;
            pos += 10;
            break;
          case 3:
            z = (w >>> 18) & 1023;
            pos += 14;
            break;
          case 4:
            z = (w >>> 13) & 16383;
            pos += 19;
            break;
          case 5:
            z = (w >>> 6) & 0xfffff;
            pos += 26;
            break;
          case 6:
            z = peek32(buf, pos + 7) >>> 0;
            pos += 39;
            break;
          case 7:
            prevN += readSignMag53(buf, pos + 8) * unit;
            pos += 62;
            lastV = prevN / p;
            break;
          default: {
            const op = (w >>> 20) & 15;
            pos += 12;
            if (op === OP_RAW) {
              u32[HI] = peek32(buf, pos);
              u32[LO] = peek32(buf, pos + 32);
              pos += 64;
              lastV = f64[0]!;
              if (lastV - lastV !== 0) corrupt("corrupt chunk: raw value is not finite");
            } else if (op === OP_SHIFT) {
              const s = peek32(buf, pos) >>> 27;
              pos += 5;
              unit = POW2[s]!;
              newMode = SAME_MODE;
            } else if (op <= MAX_SCALE || op === OP_XOR) newMode = op;
            else corrupt("corrupt chunk: unknown value op");
          }
        }
        if (z >= 0) {
          prevN += ((z >>> 1) ^ -(z & 1)) * unit;
          lastV = prevN / p;
        }
      }
    } else {
      // XOR mode writes the two halves straight into the output: reading a double back from two 32-bit stores
      // stalls store forwarding. lastV is rebuilt from the halves only when leaving XOR mode.
      if (w < 0) {
        let t: number;
        let n: number;
        if (w << 1 >= 0) {
          if (wSig === 0) corrupt("corrupt chunk: XOR window used before it is set");
          pos += 2;
          t = wTrail;
          n = wSig;
        } else {
          const lead = (w >>> 25) & 31;
          if (lead === XOR_ESCAPE_LEAD) {
            newMode = (w >>> 22) & 7;
            if (newMode > MAX_SCALE) corrupt("corrupt chunk: unknown value mode");
            pos += 10;
            t = n = 0;
          } else {
            n = (w >>> 19) & 63 || 64;
            t = 64 - lead - n;
            if (t < 0) corrupt("corrupt chunk: XOR window exceeds 64 bits");
            pos += 13;
            wTrail = t;
            wSig = n;
          }
        }
        if (newMode < 0) {
          let xh: number;
          let xl: number;
          if (n > 32) {
            const a = peek32(buf, pos) >>> (64 - n);
            const b = peek32(buf, pos + n - 32);
            if (t === 0) (xh = a), (xl = b);
            else (xh = (a << t) | (b >>> (32 - t))), (xl = b << t); // t < 32 here
          } else {
            const b = peek32(buf, pos) >>> (32 - n);
            if (t >= 32) (xh = b << (t - 32)), (xl = 0);
            else if (t === 0) (xh = 0), (xl = b);
            else (xh = b >>> (32 - t)), (xl = b << t);
          }
          pos += n;
          lastHi ^= xh;
          lastLo ^= xl;
          if ((lastHi & 0x7ff00000) === 0x7ff00000) corrupt("corrupt chunk: XOR value is not finite");
        }
      } else pos += 1; // same value
      if (newMode < 0) {
        if (halves === undefined) halves = new Uint32Array(out.buffer, out.byteOffset, out.length * 2);
        halves[2 * i + HI] = lastHi;
        halves[2 * i + LO] = lastLo;
        i++;
        switches = 0;
        continue;
      }
      u32[HI] = lastHi;
      u32[LO] = lastLo;
      lastV = f64[0]!;
    }
    if (newMode >= 0) {
      if (++switches > MAX_SWITCHES_PER_SAMPLE) corrupt("corrupt chunk: too many mode switches");
      if (newMode === MODE_XOR) {
        f64[0] = lastV;
        lastHi = u32[HI]!;
        lastLo = u32[LO]!;
        wSig = 0;
        mode = MODE_XOR;
      } else if (newMode !== SAME_MODE) {
        p = POW10[newMode]!;
        const n = scaledInt(lastV, newMode);
        prevN = n === n ? n : 0;
        unit = 1;
        mode = newMode;
      }
      continue; // the same sample, in the new state
    }
    switches = 0;
    out[i++] = lastV;
  }
  checkSectionEnd(buf, pos, limit, "value");
}

/** After a section is decoded: it must end in its last byte, and the padding bits must be zero. */
function checkSectionEnd(buf: Uint8Array, pos: number, limit: number, what: string): void {
  if (pos > limit) throw new ChunkDecodeError(`truncated chunk: ${what} section ends early`);
  if (limit - pos >= 8) throw new ChunkDecodeError(`corrupt chunk: ${limit / 8 - Math.ceil(pos / 8)} extra bytes after the ${what} section`);
  if (pos < limit && (buf[pos >>> 3]! & (0xff >>> (pos & 7))) !== 0)
    throw new ChunkDecodeError(`corrupt chunk: nonzero padding after the ${what} section`);
}

// ---------------------------------------------------------------------------------------------------------------
// Container: header + sections (shared with rollup-chunk.ts)

export function varintLength(x: number): number {
  let n = 1;
  while (x >= 128) {
    x = Math.floor(x / 128);
    n++;
  }
  return n;
}

export function putVarint(dst: Uint8Array, off: number, x: number): number {
  while (x >= 128) {
    dst[off++] = (x % 128) | 128;
    x = Math.floor(x / 128);
  }
  dst[off++] = x;
  return off;
}

/**
 * Serializes a container: [version][flags][count] and, when count > 0, [|t0|][length of each section but the
 * last] and the sections. Bit 0 of flags is set here for a negative t0; callers pass their own flags in bits 1+.
 */
export function writeContainer(version: number, flags: number, count: number, t0: number, sections: readonly BitWriter[]): Uint8Array {
  if (count === 0) return Uint8Array.of(version, flags, 0);
  if (t0 < 0) flags |= 1;
  const at = Math.abs(t0);
  let size = 2 + varintLength(count) + varintLength(at);
  for (let i = 0; i < sections.length; i++) {
    const len = sections[i]!.byteLength;
    size += len + (i < sections.length - 1 ? varintLength(len) : 0);
  }
  const out = new Uint8Array(size);
  out[0] = version;
  out[1] = flags;
  let off = putVarint(out, 2, count);
  off = putVarint(out, off, at);
  for (let i = 0; i < sections.length - 1; i++) off = putVarint(out, off, sections[i]!.byteLength);
  for (const s of sections) off += s.copyTo(out, off);
  return out;
}

/** A parsed container header: sample count, first timestamp, flags and the [start, end) of each section. */
export interface ContainerHeader {
  flags: number;
  count: number;
  t0: number;
  /** Section i is bytes [bounds[i], bounds[i + 1]). */
  bounds: number[];
}

/** Offset after the varint {@link readVarint} read last (a module variable: no tuple per call). */
let varintEnd = 0;

function readVarint(bytes: Uint8Array, off: number, what: string): number {
  let x = 0;
  let mul = 1;
  for (let i = 0; i < 8; i++) {
    if (off >= bytes.length) corrupt(`truncated chunk: header ends inside the ${what}`);
    const b = bytes[off++]!;
    x += (b & 127) * mul;
    if (b < 128) {
      if (x > MAX_SAFE) corrupt(`corrupt chunk: ${what} beyond 2^53`);
      varintEnd = off;
      return x;
    }
    mul *= 128;
  }
  return corrupt(`corrupt chunk: ${what} varint too long`);
}

/** Parses and checks a container header (see {@link writeContainer}); `allowedFlags` are the caller's bits 1+. */
export function readContainer(bytes: Uint8Array, version: number, sectionCount: number, allowedFlags = 0): ContainerHeader {
  if (!(bytes instanceof Uint8Array)) corrupt("chunk is not a Uint8Array");
  if (bytes.length < 3) throw new ChunkDecodeError(`truncated chunk: ${bytes.length} bytes`);
  if (bytes[0] !== version)
    throw new ChunkDecodeError(`unsupported chunk version ${bytes[0]} (this code reads version ${version})`);
  const flags = bytes[1]!;
  if ((flags & ~(1 | allowedFlags)) !== 0) throw new ChunkDecodeError(`corrupt chunk: unknown flags 0x${flags.toString(16)}`);
  const count = readVarint(bytes, 2, "sample count");
  let off = varintEnd;
  if (count === 0) {
    if (off !== bytes.length) corrupt("corrupt chunk: bytes after an empty chunk");
    return { flags, count, t0: NaN, bounds: [] };
  }
  let t0 = readVarint(bytes, off, "first timestamp");
  off = varintEnd;
  if (flags & 1) t0 = -t0;
  const bounds = [0];
  for (let i = 0; i < sectionCount - 1; i++) {
    bounds.push(readVarint(bytes, off, "section length"));
    off = varintEnd;
  }
  bounds[0] = off;
  for (let i = 1; i < sectionCount; i++) bounds[i] = bounds[i - 1]! + bounds[i]!;
  bounds.push(bytes.length);
  if (bounds[sectionCount - 1]! > bytes.length) corrupt("truncated chunk: sections end early");
  // Every sample takes at least one bit in each value section: reject absurd counts before allocating.
  if (count > (bytes.length - off) * 8 + 1) throw new ChunkDecodeError(`corrupt chunk: sample count ${count} exceeds its size`);
  return { flags, count, t0, bounds };
}

// ---------------------------------------------------------------------------------------------------------------
// Raw chunks

export function badValue(v: unknown): never {
  throw new RangeError(`value ${String(v)} is not a finite number`);
}

/**
 * Appends samples in time order (t non-decreasing safe integers, v any finite double) into a compact bit stream.
 * Incremental: {@link bytes} can be called at any time and appending can go on afterwards.
 */
export class ChunkEncoder {
  private readonly tw: BitWriter;
  private readonly vw: BitWriter;
  private readonly ts: TimestampStreamEncoder;
  private readonly vs: ValueStreamEncoder;

  /** `expectedSamples` only sizes the initial buffers. */
  constructor(expectedSamples = 120) {
    // At most 64 bytes each to start: V8 keeps typed arrays that small inside the object heap (no ArrayBuffer object,
    // no separate allocation), which halves what an open chunk costs (most are regular timestamps and slowly moving
    // values that never need more); the few that do grow by doubling.
    this.tw = new BitWriter(Math.min(64, Math.ceil((expectedSamples * 5) / 8) + 8));
    this.vw = new BitWriter(Math.min(64, expectedSamples * 2 + 8));
    this.ts = new TimestampStreamEncoder(this.tw);
    this.vs = new ValueStreamEncoder(this.vw);
  }

  /**
   * Appends one sample. Throws RangeError, leaving the encoder unchanged, if t is not a safe integer, is before
   * the last t, or v is not finite.
   */
  append(tMs: number, v: number): void {
    if (!(typeof v === "number" && v - v === 0)) badValue(v);
    this.ts.check(tMs);
    this.ts.append(tMs);
    this.vs.append(v);
  }

  get count(): number {
    return this.ts.count;
  }

  /** First timestamp, NaN when empty. */
  get minT(): number {
    return this.ts.firstT;
  }

  /** Last timestamp, NaN when empty. */
  get maxT(): number {
    return this.ts.lastT;
  }

  /** Size of {@link bytes} now. */
  get byteLength(): number {
    const n = this.ts.count;
    if (n === 0) return 3;
    const tl = this.tw.byteLength;
    return 2 + varintLength(n) + varintLength(Math.abs(this.ts.firstT)) + varintLength(tl) + tl + this.vw.byteLength;
  }

  /** The encoded chunk so far, a fresh copy; the encoder stays usable. */
  bytes(): Uint8Array {
    return writeContainer(CHUNK_VERSION, 0, this.ts.count, this.ts.firstT, [this.tw, this.vw]);
  }
}

/**
 * Decodes a chunk produced by {@link ChunkEncoder.bytes} or {@link encodeChunk}; throws ChunkDecodeError.
 *
 * Like Node's Buffer pool, small results are views into a shared slab (a fresh ArrayBuffer of a typed array
 * over 64 bytes costs about 0.5 µs, 4 ns per sample of a 120-sample chunk): the arrays never overlap any other
 * result, but their `.buffer` is bigger than they are: copy them (`slice()`) rather than keep or transfer `.buffer`.
 */
export function decodeChunk(bytes: Uint8Array): { t: Float64Array<ArrayBuffer>; v: Float64Array<ArrayBuffer> } {
  const h = readContainer(bytes, CHUNK_VERSION, 2);
  const t = allocF64(h.count);
  const v = allocF64(h.count);
  decodeSections(bytes, h, t, v);
  return { t, v };
}

const SLAB_BYTES = 64 * 1024;
const SLAB_MAX_ALLOC = 4 * 1024;
let slab = new ArrayBuffer(SLAB_BYTES);
let slabOff = 0;

/** A zeroed Float64Array of n elements: a view into the current slab when small, its own buffer otherwise. */
export function allocF64(n: number): Float64Array<ArrayBuffer> {
  const size = 8 * n;
  if (size > SLAB_MAX_ALLOC) return new Float64Array(n);
  if (slabOff + size > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabOff = 0;
  }
  const a = new Float64Array(slab, slabOff, n);
  slabOff += size;
  return a;
}

/**
 * Decodes a chunk into caller-owned arrays (each at least {@link chunkSampleCount} long), so a query loop can
 * reuse them; returns the sample count.
 */
export function decodeChunkInto(bytes: Uint8Array, t: Float64Array, v: Float64Array): number {
  const h = readContainer(bytes, CHUNK_VERSION, 2);
  if (t.length < h.count || v.length < h.count) throw new RangeError(`output arrays hold fewer than ${h.count} samples`);
  decodeSections(bytes, h, t, v);
  return h.count;
}

function decodeSections(bytes: Uint8Array, h: ContainerHeader, t: Float64Array, v: Float64Array): void {
  if (h.count === 0) return;
  const buf = paddedCopy(bytes);
  decodeTimestampStream(buf, h.bounds[0]!, h.bounds[1]!, h.count, h.t0, t);
  decodeValueStream(buf, h.bounds[1]!, h.bounds[2]!, h.count, v);
}

/** Number of samples in a chunk, read from its header (throws ChunkDecodeError on a bad header). */
export function chunkSampleCount(bytes: Uint8Array): number {
  return readContainer(bytes, CHUNK_VERSION, 2).count;
}

/** First timestamp of a chunk from its header (NaN when empty), without decoding. */
export function chunkMinT(bytes: Uint8Array): number {
  return readContainer(bytes, CHUNK_VERSION, 2).t0;
}

/** Encodes whole arrays at once (t sorted ascending); throws RangeError like {@link ChunkEncoder.append}. */
export function encodeChunk(t: ArrayLike<number>, v: ArrayLike<number>): Uint8Array {
  if (t.length !== v.length) throw new RangeError(`t has ${t.length} samples, v has ${v.length}`);
  const enc = new ChunkEncoder(t.length);
  for (let i = 0; i < t.length; i++) enc.append(t[i]!, v[i]!);
  return enc.bytes();
}
