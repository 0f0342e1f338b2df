/**
 * Bit-level I/O for the chunk codec: a writer that appends MSB-first bit fields to a growable byte buffer, and
 * reads of 32-bit windows from a zero-padded copy of the input. Both work in 32-bit pieces; 64-bit fields (raw doubles) are
 * written as two halves by the callers. No allocation per field: the writer doubles its buffer when full.
 */

/** Appends bit fields, most significant bit first, to a growable Uint8Array. */
export class BitWriter {
  private buf: Uint8Array;
  /** Whole bytes written to `buf`. */
  private pos = 0;
  /** Pending bits (right-aligned), fewer than 32. */
  private acc = 0;
  private accBits = 0;

  constructor(initialCapacity = 64) {
    this.buf = new Uint8Array(Math.max(8, initialCapacity));
  }

  /** Bits written so far. */
  get bitLength(): number {
    return this.pos * 8 + this.accBits;
  }

  /** Bytes the bits written so far take (the last one zero-padded). */
  get byteLength(): number {
    return this.pos + ((this.accBits + 7) >>> 3);
  }

  /**
   * Appends the low `n` bits of `v`, 1 ≤ n ≤ 32. The caller guarantees 0 ≤ v < 2^n (no masking here: this is the
   * hot path); v may be a number up to 2^32 − 1.
   */
  writeBits(v: number, n: number): void {
    const bits = this.accBits + n;
    if (bits < 32) {
      this.acc = (this.acc << n) | v;
      this.accBits = bits;
      return;
    }
    const rest = bits - 32; // 0..31 bits of v left over after this 32-bit word
    // With accBits = 0 (so n = 32) the word is v itself: a shift by 32 would be a no-op in JS.
    const word = this.accBits === 0 ? v : (this.acc << (32 - this.accBits)) | (v >>> rest);
    this.flushWord(word);
    this.acc = rest === 0 ? 0 : v & (0xffffffff >>> (32 - rest));
    this.accBits = rest;
  }

  /** Copies the bytes written so far (last byte zero-padded) into `dst` at `offset`; returns the bytes copied. */
  copyTo(dst: Uint8Array, offset: number): number {
    dst.set(this.buf.subarray(0, this.pos), offset);
    let o = offset + this.pos;
    if (this.accBits > 0) {
      const aligned = this.acc << (32 - this.accBits); // left-align the pending bits
      const n = (this.accBits + 7) >>> 3;
      for (let i = 0; i < n; i++) dst[o++] = aligned >>> (24 - 8 * i);
    }
    return o - offset;
  }

  /** A fresh copy of the bytes written so far. */
  toBytes(): Uint8Array {
    const out = new Uint8Array(this.byteLength);
    this.copyTo(out, 0);
    return out;
  }

  private flushWord(word: number): void {
    if (this.pos + 4 > this.buf.length) {
      const bigger = new Uint8Array(this.buf.length * 2);
      bigger.set(this.buf);
      this.buf = bigger;
    }
    const b = this.buf;
    const p = this.pos;
    b[p] = word >>> 24;
    b[p + 1] = word >>> 16;
    b[p + 2] = word >>> 8;
    b[p + 3] = word;
    this.pos = p + 4;
  }
}

/** Zero bytes kept after the data in the read buffer, so a field read near the end never leaves the array. */
export const READ_PAD = 16;

/** One scratch buffer shared by all decodes (decoding is synchronous); grown on demand, never per field. */
let scratch = new Uint8Array(4096);

/**
 * Copies `bytes` into a shared scratch buffer followed by {@link READ_PAD} zero bytes and returns it, so that
 * {@link peek32} may read a few bytes past the end of the data without leaving the array (reads past the end
 * yield zero bits; decoders compare their bit position with the data length to detect truncation). The buffer
 * is valid until the next call.
 */
export function paddedCopy(bytes: Uint8Array): Uint8Array {
  const n = bytes.length;
  if (scratch.length < n + READ_PAD) scratch = new Uint8Array(Math.max(n + READ_PAD, scratch.length * 2));
  scratch.set(bytes, 0);
  scratch.fill(0, n, n + READ_PAD);
  return scratch;
}

/**
 * The 32 bits of `buf` starting at bit `pos`, MSB first, as an int32 (`>>> 0` for unsigned, `>>> (32 − n)` for the
 * first n bits). `buf` must have 5 readable bytes at byte pos / 8: see {@link paddedCopy}.
 */
export function peek32(buf: Uint8Array, pos: number): number {
  const i = pos >>> 3;
  const s = pos & 7;
  const w = (buf[i]! << 24) | (buf[i + 1]! << 16) | (buf[i + 2]! << 8) | buf[i + 3]!;
  return s === 0 ? w : (w << s) | (buf[i + 4]! >>> (8 - s));
}
