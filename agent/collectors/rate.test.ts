import { describe, expect, it } from "vitest";
import { computeRates, RateTracker } from "./rate.js";

const m = (entries: Record<string, number[]>): Map<string, number[]> => new Map(Object.entries(entries));

describe("computeRates", () => {
  it("gives deltas and per-second rates for keys in both readings", () => {
    const r = computeRates(m({ eth0: [1000, 10] }), m({ eth0: [3000, 30] }), 2000);
    expect(r.get("eth0")).toEqual({ deltas: [2000, 20], perSecond: [1000, 10] });
  });

  it("gives no rate for a key whose counter went backwards (reset or wrap), never a negative one", () => {
    const r = computeRates(m({ eth0: [1000, 10], sda: [5, 5] }), m({ eth0: [10, 11], sda: [6, 7] }), 1000);
    expect(r.has("eth0")).toBe(false);
    expect(r.get("sda")?.perSecond).toEqual([1, 2]);
  });

  it("gives a new key only a baseline and drops a key that disappeared", () => {
    const r = computeRates(m({ old: [1], both: [1] }), m({ both: [2], fresh: [100] }), 1000);
    expect([...r.keys()]).toEqual(["both"]);
  });

  it("treats NaN (a garbled line) like a reset and ignores vectors of another length", () => {
    const r = computeRates(m({ a: [1, 1], b: [1] }), m({ a: [2, Number.NaN], b: [2, 2] }), 1000);
    expect(r.size).toBe(0);
  });

  it("gives nothing for a non-positive interval", () => {
    expect(computeRates(m({ a: [1] }), m({ a: [2] }), 0).size).toBe(0);
    expect(computeRates(m({ a: [1] }), m({ a: [2] }), -5).size).toBe(0);
  });

  it("counts an unchanged counter as a zero rate", () => {
    expect(computeRates(m({ a: [7] }), m({ a: [7] }), 500).get("a")).toEqual({ deltas: [0], perSecond: [0] });
  });
});

describe("RateTracker", () => {
  it("returns undefined for the first reading, then rates against the previous one", () => {
    const t = new RateTracker();
    expect(t.update(m({ a: [0] }), 1000)).toBeUndefined();
    expect(t.update(m({ a: [50] }), 1500)?.get("a")?.perSecond).toEqual([100]);
    // A reset this time: no rate, and the reset value is the new baseline.
    expect(t.update(m({ a: [5] }), 2500)?.has("a")).toBe(false);
    expect(t.update(m({ a: [15] }), 3500)?.get("a")?.perSecond).toEqual([10]);
  });

  it("handles devices that appear and disappear across several snapshots", () => {
    const t = new RateTracker();
    t.update(m({ sda: [0], sdb: [0] }), 0);
    const r1 = t.update(m({ sda: [10], sdc: [0] }), 1000)!;
    expect([...r1.keys()]).toEqual(["sda"]);
    const r2 = t.update(m({ sda: [20], sdb: [100], sdc: [5] }), 2000)!;
    expect([...r2.keys()].sort()).toEqual(["sda", "sdc"]); // sdb came back: baseline only
    expect(r2.get("sdc")?.perSecond).toEqual([5]);
  });

  it("starts over after reset()", () => {
    const t = new RateTracker();
    t.update(m({ a: [1] }), 0);
    t.reset();
    expect(t.update(m({ a: [2] }), 1000)).toBeUndefined();
  });
});
