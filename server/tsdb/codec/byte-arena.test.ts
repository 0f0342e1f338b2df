import { describe, expect, it } from "vitest";
import { ARENA_PAGE_BYTES, ARENA_PAGE_MASK, ARENA_PAGE_SHIFT, ByteArena } from "./byte-arena.js";

const PAGE = ARENA_PAGE_BYTES;

function fill(a: ByteArena, addr: number, n: number, seed: number): void {
  const page = a.pages[addr >>> ARENA_PAGE_SHIFT]!;
  const o = addr & ARENA_PAGE_MASK;
  for (let i = 0; i < n; i++) page[o + i] = (seed + i * 7) & 255;
}

function expectFilled(a: ByteArena, addr: number, n: number, seed: number): void {
  const page = a.pages[addr >>> ARENA_PAGE_SHIFT]!;
  const o = addr & ARENA_PAGE_MASK;
  for (let i = 0; i < n; i++) if (page[o + i] !== ((seed + i * 7) & 255)) throw new Error(`byte ${i} of region ${addr} changed`);
}

describe("ByteArena", () => {
  it("rounds requests up to power-of-two classes from 16 bytes", () => {
    expect([1, 16, 17, 32, 33, 1000, PAGE].map(ByteArena.regionSize)).toEqual([16, 16, 32, 32, 64, 1024, PAGE]);
    const a = new ByteArena();
    expect(a.stats()).toEqual({ pageBytes: 0, liveBytes: 0 }); // pages are made lazily
    const x = a.alloc(1);
    const y = a.alloc(17);
    const z = a.alloc(16);
    expect(a.stats()).toEqual({ pageBytes: PAGE, liveBytes: 16 + 32 + 16 });
    expect(new Set([x, y, z]).size).toBe(3);
    // Regions do not overlap.
    fill(a, x, 16, 1);
    fill(a, y, 32, 2);
    fill(a, z, 16, 3);
    expectFilled(a, x, 16, 1);
    expectFilled(a, y, 32, 2);
    expectFilled(a, z, 16, 3);
  });

  it("reuses freed regions per class, last freed first", () => {
    const a = new ByteArena();
    const r16 = [a.alloc(16), a.alloc(16), a.alloc(16)];
    const r64 = a.alloc(64);
    a.free(r16[0]!, 16);
    a.free(r16[2]!, 10); // any size in the same class
    a.free(r64, 64);
    expect(a.stats().liveBytes).toBe(16);
    expect(a.alloc(16)).toBe(r16[2]);
    expect(a.alloc(16)).toBe(r16[0]);
    expect(a.alloc(50)).toBe(r64);
    expect(a.stats().liveBytes).toBe(16 * 3 + 64);
  });

  it("splits a larger free region before taking new space", () => {
    const a = new ByteArena();
    const big = a.alloc(4096);
    a.alloc(16); // something after it
    a.free(big, 4096);
    const used = a.stats();
    // 16 + 16 + 32 + … + 2048 = 4096: the whole big region, piece by piece, and no new bytes from the page.
    const got: number[] = [a.alloc(16)];
    for (let size = 16; size < 4096; size *= 2) got.push(a.alloc(size));
    expect(got[0]).toBe(big);
    for (const x of got) expect(x >= big && x < big + 4096).toBe(true);
    expect(new Set(got).size).toBe(got.length);
    expect(a.stats().pageBytes).toBe(used.pageBytes);
    expect(a.stats().liveBytes).toBe(16 + 4096);
    // Full now: the next region comes after the 16-byte one that followed it.
    expect(a.alloc(16)).toBe(big + 4096 + 16);
  });

  it("grow copies the used bytes, frees the old region, keeps the address within a class", () => {
    const a = new ByteArena();
    const x = a.alloc(16);
    fill(a, x, 13, 9);
    const y = a.grow(x, 16, 13, 32);
    expect(y).not.toBe(x);
    expectFilled(a, y, 13, 9);
    expect(a.stats().liveBytes).toBe(32);
    expect(a.alloc(16)).toBe(x); // the old one is free
    expect(a.grow(y, 32, 13, 20)).toBe(y); // same class: nothing to do
    // Larger regions, and a copy across pages.
    let r = a.alloc(256);
    fill(a, r, 256, 5);
    for (let size = 256; size < PAGE; size *= 2) {
      r = a.grow(r, size, 256, size * 2);
      expectFilled(a, r, 256, 5);
    }
    expect(r & ARENA_PAGE_MASK).toBe(0); // a whole page
    expect(() => a.grow(r, PAGE, 300, 256)).toThrow(RangeError);
  });

  it("never lets a region span pages and keeps the rest of a page for smaller classes", () => {
    const a = new ByteArena();
    const q = PAGE / 4;
    const quarters = [a.alloc(q), a.alloc(q), a.alloc(q)];
    expect(quarters).toEqual([0, q, 2 * q]);
    const small = a.alloc(16); // page 0 now has q − 16 bytes left
    expect(small).toBe(3 * q);
    const next = a.alloc(q); // does not fit: a new page
    expect(next).toBe(PAGE);
    expect(a.stats().pageBytes).toBe(2 * PAGE);
    // The rest of page 0 (q − 16 = 16 + 32 + … + q/2) serves smaller requests without a new page.
    const rest: number[] = [];
    for (let size = 16; size < q; size *= 2) rest.push(a.alloc(size));
    for (const x of rest) expect(x >>> ARENA_PAGE_SHIFT).toBe(0);
    for (let i = 0; i < rest.length; i++) {
      const size = 16 << i;
      expect(rest[i]! % size).toBe(0); // aligned to its size
      expect((rest[i]! & ARENA_PAGE_MASK) + size).toBeLessThanOrEqual(PAGE);
    }
    expect(a.stats().pageBytes).toBe(2 * PAGE);
    expect(a.stats().liveBytes).toBe(4 * q + 16 + (q - 16));
    // A whole page.
    const whole = a.alloc(PAGE);
    expect(whole).toBe(2 * PAGE);
    expect(a.stats().pageBytes).toBe(3 * PAGE);
  });

  it("throws a clear error for oversize or invalid requests and when the pages run out", () => {
    const a = new ByteArena();
    expect(() => a.alloc(PAGE + 1)).toThrow(/exceeds the arena page size/);
    expect(() => a.alloc(0)).toThrow(RangeError);
    expect(() => a.alloc(1.5)).toThrow(RangeError);
    expect(() => a.alloc(Number.NaN)).toThrow(RangeError);
    expect(a.stats()).toEqual({ pageBytes: 0, liveBytes: 0 });
    const b = new ByteArena(2);
    expect(b.alloc(PAGE)).toBe(0);
    expect(b.alloc(PAGE)).toBe(PAGE);
    expect(() => b.alloc(16)).toThrow(/arena full/);
    expect(() => new ByteArena(2048)).toThrow(RangeError);
  });

  it("keeps addresses small integers", () => {
    const a = new ByteArena();
    for (let i = 0; i < 5; i++) {
      const x = a.alloc(PAGE);
      expect(x).toBe(i * PAGE);
      expect(x | 0).toBe(x);
    }
  });
});
