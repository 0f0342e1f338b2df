/**
 * The in-memory head: every known series, its open chunk (compressed as samples arrive), chunks closed since the
 * last flush, and out-of-order samples waiting for the next flush. Pure data structure: no I/O.
 */
import { ChunkEncoder, decodeChunk, encodeChunk } from "./codec/chunk.js";
import type { Labels } from "./series.js";

/** A chunk being filled or waiting to be written; `id` is its row id once stored. */
export interface OpenChunk {
  enc: ChunkEncoder;
  id: number | undefined;
}

/** One series as the engine knows it. */
export class HeadSeries {
  /** Row id; undefined until the first flush stores the series. */
  id: number | undefined;
  open: OpenChunk | undefined;
  /** Chunks that reached the target size since the last flush (their final bytes not yet written). */
  closed: OpenChunk[] = [];
  /** Samples older than the open chunk's newest: written as their own chunk at the next flush. */
  oooT: number[] | undefined;
  oooV: number[] | undefined;
  lastT = Number.NEGATIVE_INFINITY;
  lastV = Number.NaN;
  /** Highest WAL id with a sample of this series appended. */
  walMax = 0;
  /** Samples appended since the last flush. */
  dirty = false;
  /** Hours (start ms) that were rolled up already and received samples since: recomputed at the next flush. */
  lateHours: Set<number> | undefined;
  /** Earliest sample time not rolled up yet (at or after the horizon); Infinity when none. */
  rollFrom = Number.POSITIVE_INFINITY;

  constructor(
    readonly hostname: string,
    readonly metric: string,
    readonly labels: Labels,
    readonly labelsText: string,
  ) {}

  /**
   * Appends one sample; a chunk closes at `chunkTarget` samples or when a sample falls in the next aligned
   * `spanMs` period (so retention can drop whole chunks). Returns false when the sample went out of order.
   */
  append(t: number, v: number, walId: number, chunkTarget: number, spanMs: number): boolean {
    let inOrder = true;
    const open = this.open;
    if (open === undefined || open.enc.count === 0) {
      this.open = open ?? { enc: new ChunkEncoder(), id: undefined };
      this.open.enc.append(t, v);
    } else if (t >= open.enc.maxT) {
      if (open.enc.count >= chunkTarget || Math.floor(t / spanMs) !== Math.floor(open.enc.minT / spanMs)) {
        this.closed.push(open);
        this.open = { enc: new ChunkEncoder(), id: undefined };
      }
      this.open!.enc.append(t, v);
    } else {
      inOrder = false;
      (this.oooT ??= []).push(t);
      (this.oooV ??= []).push(v);
    }
    if (t >= this.lastT) {
      this.lastT = t;
      this.lastV = v;
    }
    if (walId > this.walMax) this.walMax = walId;
    this.dirty = true;
    return inOrder;
  }

  /** Samples held in memory (open, closed and out-of-order), not necessarily sorted. */
  memorySamples(): { t: number[]; v: number[] } {
    const t: number[] = [];
    const v: number[] = [];
    for (const c of [...this.closed, ...(this.open ? [this.open] : [])]) {
      if (c.enc.count === 0) continue;
      const d = decodeChunk(c.enc.bytes());
      for (let i = 0; i < d.t.length; i++) {
        t.push(d.t[i]!);
        v.push(d.v[i]!);
      }
    }
    if (this.oooT) {
      t.push(...this.oooT);
      v.push(...this.oooV!);
    }
    return { t, v };
  }

  /** Row ids of chunks whose newest bytes are in memory (the stored version is older). */
  memoryChunkIds(): Set<number> {
    const ids = new Set<number>();
    for (const c of this.closed) if (c.id !== undefined) ids.add(c.id);
    if (this.open?.id !== undefined) ids.add(this.open.id);
    return ids;
  }

  /** The out-of-order samples as one sorted chunk, and forgets them. */
  takeOutOfOrder(): Uint8Array | undefined {
    if (!this.oooT) return undefined;
    const order = this.oooT.map((_, i) => i).sort((a, b) => this.oooT![a]! - this.oooT![b]!);
    const bytes = encodeChunk(
      order.map((i) => this.oooT![i]!),
      order.map((i) => this.oooV![i]!),
    );
    this.oooT = undefined;
    this.oooV = undefined;
    return bytes;
  }
}
