import { describe, expect, it } from "vitest";
import { scaledInt } from "../server/tsdb/codec/chunk.js";
import { prng } from "./prng.js";
import { roundBytesRate, roundPercent, roundRate, roundTo } from "./round.js";

describe("roundTo", () => {
  it("rounds to the given decimal places, halves away from zero", () => {
    expect(roundTo(12.345678912, 2)).toBe(12.35);
    expect(roundTo(12.344999, 2)).toBe(12.34);
    expect(roundTo(0.125, 2)).toBe(0.13);
    expect(roundTo(-0.125, 2)).toBe(-0.13);
    expect(roundTo(2.5, 0)).toBe(3);
    expect(roundTo(-2.5, 0)).toBe(-3);
    expect(roundTo(1234567.891, 0)).toBe(1234568);
    expect(roundTo(99.999, 2)).toBe(100);
    expect(roundTo(1 / 3, 4)).toBe(0.3333);
  });

  it("turns -0 and tiny negatives into 0 and passes non-finite values through", () => {
    expect(Object.is(roundTo(-0, 2), 0)).toBe(true);
    expect(Object.is(roundTo(-0.001, 2), 0)).toBe(true);
    expect(roundTo(Number.NaN, 2)).toBeNaN();
    expect(roundTo(Number.POSITIVE_INFINITY, 2)).toBe(Number.POSITIVE_INFINITY);
    expect(roundTo(Number.NEGATIVE_INFINITY, 0)).toBe(Number.NEGATIVE_INFINITY);
  });

  it("rejects decimals outside 0–4", () => {
    expect(() => roundTo(1, 5)).toThrow(RangeError);
    expect(() => roundTo(1, -1)).toThrow(RangeError);
  });

  it("gives values the chunk codec stores on the decimal scale (exact n / 10^d)", () => {
    const r = prng(7);
    for (let i = 0; i < 10_000; i++) {
      // ratios of counter deltas as the collectors compute them
      const pct = ((Math.floor(r() * 2_000) / (1_998 + Math.floor(r() * 5))) * 100);
      const rate = (Math.floor(r() * 1e7) / (4_997 + Math.floor(r() * 7))) * 1000;
      expect(scaledInt(roundPercent(pct), 2)).toBe(Math.round(roundPercent(pct) * 100));
      expect(scaledInt(roundRate(rate), 2)).toBe(Math.round(roundRate(rate) * 100));
      expect(scaledInt(roundBytesRate(rate), 0)).toBe(roundBytesRate(rate));
      expect(Math.abs(roundPercent(pct) - pct)).toBeLessThanOrEqual(0.005 + 1e-9);
      expect(Math.abs(roundBytesRate(rate) - rate)).toBeLessThanOrEqual(0.5);
    }
  });
});
