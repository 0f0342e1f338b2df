/**
 * The in-memory head: every known series, its open chunk (compressed as samples arrive), chunks closed since the
 * last flush, and out-of-order samples waiting for the next flush. Pure data structure: no I/O.
 *
 * Struct of arrays: a series is a slot number, its numbers live in typed arrays indexed by slot and its open chunk
 * in one ChunkEncoderTable (bit streams in a shared byte arena), so a series costs a few hundred bytes and no
 * JavaScript object of its own (a class per series with an encoder object each cost ~1.3 KB and millions of
 * objects for the garbage collector to trace). What only some series hold at a time (closed chunks, out-of-order
 * samples, late hours) is in sparse arrays.
 */
import { decodeChunk, encodeChunk } from "./codec/chunk.js";
import { ChunkEncoderTable } from "./codec/encoder-table.js";
import type { Labels } from "./series.js";

/** A chunk that reached its target size or span since the last flush: its final bytes, not yet written. */
export interface ClosedChunk {
  readonly bytes: Uint8Array;
  readonly minT: number;
  readonly maxT: number;
  readonly count: number;
  /** Row id when an earlier flush stored the chunk while it was open (the flush updates that row). */
  id: number | undefined;
  /** The slot's open-chunk number this chunk had while open (see {@link SeriesTable.openSeq}). */
  readonly seq: number;
}

/** A series as queries see it: its identity and, at the time it was selected, its row id and latest sample. */
export interface SeriesView {
  readonly slot: number;
  /** The slot's generation when selected: a removed series' slot may be reused, and the view then reads nothing. */
  readonly gen: number;
  readonly hostname: string;
  readonly metric: string;
  readonly labels: Labels;
  readonly labelsText: string;
  readonly id: number | undefined;
  readonly lastT: number;
  readonly lastV: number;
}

const INITIAL_SLOTS = 1024;

export class SeriesTable {
  readonly enc: ChunkEncoderTable;
  private cap: number;
  /** Slots in use are below `end`; freed ones below it are in `free` (reused first). */
  private end = 0;
  private readonly free: number[] = [];
  private liveCount = 0;

  // identity: undefined for a free slot
  hostname: Array<string | undefined> = [];
  metric: string[] = [];
  labels: Labels[] = [];
  labelsText: string[] = [];

  /** Row id, NaN until the first flush stores the series. */
  id: Float64Array;
  /** Row id of the open chunk once a flush stored it, else NaN. */
  openId: Float64Array;
  /** Counts the slot's open chunks (closing one starts the next), so a flush finds the chunk it stored. */
  openSeq: Uint32Array;
  lastT: Float64Array;
  lastV: Float64Array;
  /** Highest WAL id with a sample of this series appended. */
  walMax: Float64Array;
  /** Earliest sample time not rolled up yet (at or after the horizon); Infinity when none. */
  rollFrom: Float64Array;
  /** 1 when samples were appended since the last flush. */
  dirty: Uint8Array;
  gen: Uint32Array;

  /** Chunks closed since the last flush. */
  closed: Array<ClosedChunk[] | undefined> = [];
  /** Samples older than the open chunk's newest: written as their own chunk at the next flush. */
  oooT: Array<number[] | undefined> = [];
  oooV: Array<number[] | undefined> = [];
  /** Hours (start ms) that were rolled up already and received samples since: recomputed at the next flush. */
  lateHours: Array<Set<number> | undefined> = [];

  constructor(initialSlots = INITIAL_SLOTS) {
    this.cap = Math.max(16, initialSlots);
    this.enc = new ChunkEncoderTable(this.cap);
    this.id = new Float64Array(this.cap);
    this.openId = new Float64Array(this.cap);
    this.openSeq = new Uint32Array(this.cap);
    this.lastT = new Float64Array(this.cap);
    this.lastV = new Float64Array(this.cap);
    this.walMax = new Float64Array(this.cap);
    this.rollFrom = new Float64Array(this.cap);
    this.dirty = new Uint8Array(this.cap);
    this.gen = new Uint32Array(this.cap);
  }

  /** Series in the table. */
  get size(): number {
    return this.liveCount;
  }

  /** One past the highest slot ever used: iterate `0 <= slot < limit` and skip slots where {@link live} is false. */
  get limit(): number {
    return this.end;
  }

  live(slot: number): boolean {
    return this.hostname[slot] !== undefined;
  }

  /** A new series (strings should be interned by the caller: the table keeps references). */
  add(hostname: string, metric: string, labels: Labels, labelsText: string): number {
    let slot = this.free.pop();
    if (slot === undefined) {
      slot = this.end++;
      // by half: the typed arrays are copied on growth, and doubling would leave up to half of them unused
      if (slot >= this.cap) this.grow(Math.ceil(this.cap * 1.5));
    }
    this.hostname[slot] = hostname;
    this.metric[slot] = metric;
    this.labels[slot] = labels;
    this.labelsText[slot] = labelsText;
    this.id[slot] = NaN;
    this.openId[slot] = NaN;
    this.lastT[slot] = Number.NEGATIVE_INFINITY;
    this.lastV[slot] = NaN;
    this.walMax[slot] = 0;
    this.rollFrom[slot] = Number.POSITIVE_INFINITY;
    this.dirty[slot] = 0;
    this.liveCount++;
    return slot;
  }

  /** Forgets a series; its slot may be reused (views of it then read nothing: its generation changes). */
  remove(slot: number): void {
    if (!this.live(slot)) return;
    this.enc.reset(slot);
    this.hostname[slot] = undefined;
    this.metric[slot] = "";
    this.labels[slot] = [];
    this.labelsText[slot] = "";
    this.closed[slot] = undefined;
    this.oooT[slot] = undefined;
    this.oooV[slot] = undefined;
    this.lateHours[slot] = undefined;
    this.gen[slot]!++;
    this.free.push(slot);
    this.liveCount--;
  }

  private grow(cap: number): void {
    const f64 = (a: Float64Array) => {
      const b = new Float64Array(cap);
      b.set(a);
      return b;
    };
    this.id = f64(this.id);
    this.openId = f64(this.openId);
    this.lastT = f64(this.lastT);
    this.lastV = f64(this.lastV);
    this.walMax = f64(this.walMax);
    this.rollFrom = f64(this.rollFrom);
    const seq = new Uint32Array(cap);
    seq.set(this.openSeq);
    this.openSeq = seq;
    const gen = new Uint32Array(cap);
    gen.set(this.gen);
    this.gen = gen;
    const dirty = new Uint8Array(cap);
    dirty.set(this.dirty);
    this.dirty = dirty;
    this.enc.ensure(cap);
    this.cap = cap;
  }

  /** Row id, or undefined before the first flush stored the series. */
  rowId(slot: number): number | undefined {
    const id = this.id[slot]!;
    return id === id ? id : undefined;
  }

  view(slot: number): SeriesView {
    return {
      slot,
      gen: this.gen[slot]!,
      hostname: this.hostname[slot]!,
      metric: this.metric[slot]!,
      labels: this.labels[slot]!,
      labelsText: this.labelsText[slot]!,
      id: this.rowId(slot),
      lastT: this.lastT[slot]!,
      lastV: this.lastV[slot]!,
    };
  }

  /** True while the series that had `slot` at generation `gen` (a view's) is still in the table. */
  current(slot: number, gen: number): boolean {
    return this.gen[slot] === gen && this.live(slot);
  }

  /**
   * Appends one sample; a chunk closes at `chunkTarget` samples or when a sample falls in the next aligned
   * `spanMs` period (so retention can drop whole chunks). Returns false when the sample went out of order.
   */
  append(slot: number, t: number, v: number, walId: number, chunkTarget: number, spanMs: number): boolean {
    let inOrder = true;
    const enc = this.enc;
    const n = enc.count(slot);
    if (n === 0) {
      enc.append(slot, t, v);
    } else if (t >= enc.maxT(slot)) {
      const minT = enc.minT(slot);
      if (n >= chunkTarget || Math.floor(t / spanMs) !== Math.floor(minT / spanMs)) this.closeOpen(slot);
      enc.append(slot, t, v);
    } else {
      inOrder = false;
      (this.oooT[slot] ??= []).push(t);
      (this.oooV[slot] ??= []).push(v);
    }
    if (t >= this.lastT[slot]!) {
      this.lastT[slot] = t;
      this.lastV[slot] = v;
    }
    if (walId > this.walMax[slot]!) this.walMax[slot] = walId;
    this.dirty[slot] = 1;
    return inOrder;
  }

  /** Moves the open chunk to the closed list (its final bytes) and starts an empty one. */
  private closeOpen(slot: number): void {
    const enc = this.enc;
    const id = this.openId[slot]!;
    (this.closed[slot] ??= []).push({
      bytes: enc.bytes(slot),
      minT: enc.minT(slot),
      maxT: enc.maxT(slot),
      count: enc.count(slot),
      id: id === id ? id : undefined,
      seq: this.openSeq[slot]!,
    });
    enc.reset(slot);
    this.openId[slot] = NaN;
    this.openSeq[slot]!++;
  }

  /**
   * A flush stored open chunk number `seq` of `slot` as row `rowId`: the open chunk takes the id, or, when it was
   * closed meanwhile, the closed chunk it became (so the next flush updates that row instead of adding one).
   */
  assignOpenId(slot: number, seq: number, rowId: number): void {
    if (this.openSeq[slot] === seq) {
      this.openId[slot] = rowId;
      return;
    }
    for (const c of this.closed[slot] ?? []) if (c.seq === seq) c.id = rowId;
  }

  /** Samples held in memory (closed, open and out-of-order), not necessarily sorted. */
  memorySamples(slot: number): { t: number[]; v: number[] } {
    const t: number[] = [];
    const v: number[] = [];
    const add = (bytes: Uint8Array) => {
      const d = decodeChunk(bytes);
      for (let i = 0; i < d.t.length; i++) {
        t.push(d.t[i]!);
        v.push(d.v[i]!);
      }
    };
    for (const c of this.closed[slot] ?? []) add(c.bytes);
    if (this.enc.count(slot) > 0) add(this.enc.bytes(slot));
    const ot = this.oooT[slot];
    if (ot) {
      t.push(...ot);
      v.push(...this.oooV[slot]!);
    }
    return { t, v };
  }

  /** Row ids of chunks whose newest bytes are in memory (the stored version is older). */
  memoryChunkIds(slot: number): Set<number> {
    const ids = new Set<number>();
    for (const c of this.closed[slot] ?? []) if (c.id !== undefined) ids.add(c.id);
    const open = this.openId[slot]!;
    if (open === open) ids.add(open);
    return ids;
  }

  /** The out-of-order samples as one sorted chunk, and forgets them. */
  takeOutOfOrder(slot: number): Uint8Array | undefined {
    const ot = this.oooT[slot];
    const ov = this.oooV[slot];
    if (!ot || !ov) return undefined;
    const order = ot.map((_, i) => i).sort((a, b) => ot[a]! - ot[b]!);
    const bytes = encodeChunk(
      order.map((i) => ot[i]!),
      order.map((i) => ov[i]!),
    );
    this.oooT[slot] = undefined;
    this.oooV[slot] = undefined;
    return bytes;
  }
}
