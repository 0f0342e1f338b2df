import { describe, expect, it } from "vitest";
import { decodeChunk } from "./codec/chunk.js";
import { SeriesTable } from "./head.js";

const T0 = Date.UTC(2026, 10, 27, 10, 0, 0);
const SPAN = 2 * 3_600_000;

describe("SeriesTable", () => {
  it("keeps each slot's samples apart, closes chunks at the target and grows past its initial size", () => {
    const table = new SeriesTable(16);
    const slots = Array.from({ length: 100 }, (_, i) => table.add(`h${i}`, "cpu.usage", [], ""));
    expect(new Set(slots).size).toBe(100);
    for (let k = 0; k < 25; k++) for (const s of slots) table.append(s, T0 + k * 5_000, s * 1000 + k, k + 1, 10, SPAN);
    for (const s of [0, 42, 99]) {
      const closed = table.closed[s]!;
      expect(closed.map((c) => c.count)).toEqual([10, 10]);
      expect(Array.from(decodeChunk(closed[1]!.bytes).v)).toEqual(Array.from({ length: 10 }, (_, k) => s * 1000 + 10 + k));
      expect(table.enc.count(s)).toBe(5);
      const m = table.memorySamples(s);
      expect(m.v).toEqual(Array.from({ length: 25 }, (_, k) => s * 1000 + k));
      expect(table.lastV[s]).toBe(s * 1000 + 24);
      expect(table.walMax[s]).toBe(25);
    }
    expect(table.size).toBe(100);
  });

  it("closes a chunk at a span boundary and keeps out-of-order samples aside, sorted when taken", () => {
    const table = new SeriesTable();
    const s = table.add("h", "m", [], "");
    table.append(s, SPAN - 10_000, 1, 1, 120, SPAN);
    table.append(s, SPAN + 5_000, 2, 2, 120, SPAN); // next aligned period: new chunk
    expect(table.closed[s]!.map((c) => c.count)).toEqual([1]);
    expect(table.append(s, SPAN + 1_000, 3, 3, 120, SPAN)).toBe(false);
    expect(table.append(s, SPAN + 500, 4, 4, 120, SPAN)).toBe(false);
    expect(table.lastV[s]).toBe(2); // out-of-order samples are older than the newest
    const ooo = decodeChunk(table.takeOutOfOrder(s)!);
    expect(Array.from(ooo.t)).toEqual([SPAN + 500, SPAN + 1_000]);
    expect(Array.from(ooo.v)).toEqual([4, 3]);
    expect(table.takeOutOfOrder(s)).toBeUndefined();
  });

  it("gives a stored open chunk's row id to the chunk it became when it closed meanwhile", () => {
    const table = new SeriesTable();
    const s = table.add("h", "m", [], "");
    for (let k = 0; k < 3; k++) table.append(s, T0 + k, k, 1, 3, SPAN);
    const seq = table.openSeq[s]!; // a flush writes the open chunk (3 samples) ...
    table.append(s, T0 + 10, 9, 2, 3, SPAN); // ... which closes before the flush has its row id
    table.assignOpenId(s, seq, 77);
    expect(table.closed[s]!.map((c) => c.id)).toEqual([77]);
    expect(table.rowId(s)).toBeUndefined();
    expect(Number.isNaN(table.openId[s]!)).toBe(true);
    table.assignOpenId(s, table.openSeq[s]!, 78);
    expect([...table.memoryChunkIds(s)].sort()).toEqual([77, 78]);
  });

  it("reuses a removed slot with a new generation: views of the old series see it gone", () => {
    const table = new SeriesTable();
    const a = table.add("h1", "m", [], "");
    table.append(a, T0, 1, 1, 120, SPAN);
    const view = table.view(a);
    expect(table.current(view.slot, view.gen)).toBe(true);
    table.remove(a);
    expect(table.size).toBe(0);
    expect(table.current(view.slot, view.gen)).toBe(false);
    const b = table.add("h2", "m", [], "");
    expect(b).toBe(a);
    expect(table.current(view.slot, view.gen)).toBe(false);
    expect(table.enc.count(b)).toBe(0);
    expect(table.memorySamples(b)).toEqual({ t: [], v: [] });
    expect(table.view(b).hostname).toBe("h2");
  });
});
