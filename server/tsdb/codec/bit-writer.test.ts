import { describe, expect, it } from "vitest";
import { prng } from "../../../common/prng.js";
import { BitWriter, READ_PAD, paddedCopy, peek32 } from "./bit-writer.js";


describe("BitWriter / peek32", () => {
  it("writes MSB first and pads the last byte with zeros", () => {
    const w = new BitWriter(1);
    w.writeBits(1, 1);
    w.writeBits(0, 2);
    w.writeBits(0b101, 3);
    expect(w.bitLength).toBe(6);
    expect(w.byteLength).toBe(1);
    expect(w.toBytes()).toEqual(Uint8Array.of(0b1001_0100));
    w.writeBits(0xffffffff, 32);
    expect(w.toBytes()).toEqual(Uint8Array.of(0b1001_0111, 0xff, 0xff, 0xff, 0b1111_1100));
  });

  it("round-trips random fields of 1..32 bits across word boundaries, growing from a tiny buffer", () => {
    const rnd = prng(3);
    const fields: Array<[number, number]> = [];
    const w = new BitWriter(1);
    for (let i = 0; i < 5000; i++) {
      const n = 1 + Math.floor(rnd() * 32);
      const v = Math.floor(rnd() * 2 ** n);
      fields.push([v, n]);
      w.writeBits(v, n);
    }
    const bytes = w.toBytes();
    expect(bytes.length).toBe(Math.ceil(w.bitLength / 8));
    const buf = paddedCopy(bytes);
    let pos = 0;
    for (const [v, n] of fields) {
      expect(peek32(buf, pos) >>> (32 - n)).toBe(v);
      pos += n;
    }
    expect(pos).toBe(w.bitLength);
  });

  it("copyTo leaves the writer usable and does not change what it wrote", () => {
    const w = new BitWriter(2);
    w.writeBits(0b1011, 4);
    const a = w.toBytes();
    w.writeBits(0b1, 1);
    const b = new Uint8Array(3);
    expect(w.copyTo(b, 1)).toBe(1);
    expect(a).toEqual(Uint8Array.of(0b1011_0000));
    expect(b).toEqual(Uint8Array.of(0, 0b1011_1000, 0));
  });

  it("paddedCopy zero-fills after the data, even when reused after a longer input", () => {
    paddedCopy(new Uint8Array(100).fill(0xff));
    const buf = paddedCopy(Uint8Array.of(0xab));
    expect(buf[0]).toBe(0xab);
    for (let i = 1; i <= READ_PAD; i++) expect(buf[i]).toBe(0);
    expect(peek32(buf, 4)).toBe(0xb0000000 | 0);
  });
});
