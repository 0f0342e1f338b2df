import { describe, expect, it } from "vitest";
import { monotonicMs } from "./clock.js";

describe("monotonicMs", () => {
  it("counts milliseconds from the process's start, like performance.now(), and never goes back", () => {
    const a = monotonicMs();
    const p = performance.now();
    const b = monotonicMs();
    expect(b).toBeGreaterThanOrEqual(a);
    // Same origin (the process's start) within a few ms; sub-millisecond resolution.
    expect(Math.abs(a - p)).toBeLessThan(50);
    expect(Number.isInteger(a) && Number.isInteger(b)).toBe(false);
  });
});
