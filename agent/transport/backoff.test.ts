import { describe, expect, it } from "vitest";
import { createBackoff, formatDelay, sleep } from "./backoff.js";

describe("createBackoff", () => {
  it("grows exponentially up to the cap with full jitter", () => {
    const top = createBackoff({ initialMs: 1_000, maxMs: 60_000, minMs: 0, random: () => 0.999999 });
    const ceilings = Array.from({ length: 9 }, () => top.next());
    expect(ceilings).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    const bottom = createBackoff({ initialMs: 1_000, maxMs: 60_000, minMs: 100, random: () => 0 });
    expect(Array.from({ length: 5 }, () => bottom.next())).toEqual([100, 100, 100, 100, 100]);
  });

  it("draws within [min, ceiling]", () => {
    const b = createBackoff({ initialMs: 1_000, maxMs: 8_000 });
    for (let i = 0; i < 200; i++) {
      const ceiling = Math.min(8_000, 1_000 * 2 ** Math.min(i, 10));
      const d = b.next();
      expect(d).toBeGreaterThanOrEqual(100);
      expect(d).toBeLessThanOrEqual(ceiling);
    }
  });

  it("resets on success", () => {
    const b = createBackoff({ initialMs: 1_000, maxMs: 60_000, minMs: 0, random: () => 0.999999 });
    b.next();
    b.next();
    b.next();
    expect(b.attempt).toBe(3);
    b.reset();
    expect(b.attempt).toBe(0);
    expect(b.next()).toBe(1_000);
  });

  it("never overflows on a long outage", () => {
    const b = createBackoff({ random: () => 0.5 });
    for (let i = 0; i < 10_000; i++) b.next();
    expect(Number.isFinite(b.next())).toBe(true);
    expect(b.next()).toBeLessThanOrEqual(60_000);
  });
});

describe("sleep", () => {
  it("resolves early and false on abort", async () => {
    const ac = new AbortController();
    const p = sleep(10_000, ac.signal);
    ac.abort();
    expect(await p).toBe(false);
    expect(await sleep(1)).toBe(true);
    expect(await sleep(1_000, AbortSignal.abort())).toBe(false);
  });
});

describe("formatDelay", () => {
  it.each([
    [800, "800 ms"],
    [4_000, "4 s"],
    [1_500, "1.5 s"],
    [90_000, "1.5 min"],
  ])("%d ms", (ms, text) => expect(formatDelay(ms)).toBe(text));
});
