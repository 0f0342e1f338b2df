/**
 * A segregated-fit byte allocator over 1 MiB pages, for many small growable buffers (the open chunks' bit streams)
 * without a JavaScript object or ArrayBuffer each.
 *
 * Regions come in power-of-two size classes from {@link ARENA_MIN_REGION} (16) bytes to the page size, and a region
 * never spans pages. An address is `page index · ARENA_PAGE_BYTES + offset`, a small integer (< 2^31, it fits an Int32Array): the bytes of
 * region `addr` are `pages[addr >>> ARENA_PAGE_SHIFT]` from `addr & ARENA_PAGE_MASK` on. Pages (Uint8Array) are made
 * lazily and never given back; freed regions go to a free list per class and are reused first, a larger free region
 * is split when a class's list is empty (buddy-style halves, no coalescing), and only then is new space carved from
 * the last page. The space a page has left when a request does not fit is split into free regions, so it is not
 * lost. Freed regions keep their bytes (no zeroing): callers read only what they wrote.
 */

export const ARENA_PAGE_SHIFT = 20;
export const ARENA_PAGE_BYTES = 1 << ARENA_PAGE_SHIFT;
export const ARENA_PAGE_MASK = ARENA_PAGE_BYTES - 1;
/** Smallest region (class 0). */
export const ARENA_MIN_REGION = 16;
const MIN_SHIFT = 4;
/** Classes 16 B … 1 MiB. */
const CLASSES = ARENA_PAGE_SHIFT - MIN_SHIFT + 1;
/** Addresses stay below 2^31 (2,047 pages: just under 2 GiB). */
const MAX_PAGES = (1 << (31 - ARENA_PAGE_SHIFT)) - 1;

/** Size class of a request of `size` bytes (1 ≤ size ≤ page size). */
function classOf(size: number): number {
  return size <= ARENA_MIN_REGION ? 0 : 32 - MIN_SHIFT - Math.clz32(size - 1);
}

export class ByteArena {
  /** The pages, for direct access on hot paths (see the module comment for addressing). */
  readonly pages: Uint8Array[] = [];
  /** Free region addresses per class. */
  private readonly freeLists: number[][] = Array.from({ length: CLASSES }, () => []);
  /** Next unused byte of the last page (ARENA_PAGE_BYTES when there is no page yet). */
  private bump = ARENA_PAGE_BYTES;
  private live = 0;
  private readonly maxPages: number;

  /** `maxPages` (≤ 2,047, the default: just under 2 GiB) bounds the arena; allocation past it throws RangeError. */
  constructor(maxPages = MAX_PAGES) {
    if (!(Number.isInteger(maxPages) && maxPages >= 1 && maxPages <= MAX_PAGES)) throw new RangeError(`maxPages ${maxPages} is not in [1, ${MAX_PAGES}]`);
    this.maxPages = maxPages;
  }

  /** Bytes actually reserved for a request of `size` bytes (its power-of-two class). */
  static regionSize(size: number): number {
    checkSize(size);
    return ARENA_MIN_REGION << classOf(size);
  }

  /** A region of at least `size` bytes (1 ≤ size ≤ page size; its contents are arbitrary); returns its address. */
  alloc(size: number): number {
    checkSize(size);
    const c = classOf(size);
    const bytes = ARENA_MIN_REGION << c;
    this.live += bytes;
    const list = this.freeLists[c]!;
    if (list.length > 0) return list.pop()!;
    // Split the smallest larger free region: keep its first `bytes`, free the halves above them.
    for (let k = c + 1; k < CLASSES; k++) {
      const bigger = this.freeLists[k]!;
      if (bigger.length === 0) continue;
      const addr = bigger.pop()!;
      for (let j = c; j < k; j++) this.freeLists[j]!.push(addr + (ARENA_MIN_REGION << j));
      return addr;
    }
    if (this.bump + bytes > ARENA_PAGE_BYTES) this.newPage();
    const addr = (this.pages.length - 1) * ARENA_PAGE_BYTES + this.bump;
    this.bump += bytes;
    return addr;
  }

  /** Returns a region; `size` is what it was allocated with (or anything in the same class). */
  free(addr: number, size: number): void {
    checkSize(size);
    const c = classOf(size);
    this.live -= ARENA_MIN_REGION << c;
    this.freeLists[c]!.push(addr);
  }

  /**
   * Moves a region to one of `newSize` bytes, copying its first `usedBytes`, and frees the old one; returns the new
   * address (the same one when both sizes are in the same class).
   */
  grow(addr: number, oldSize: number, usedBytes: number, newSize: number): number {
    checkSize(oldSize);
    if (classOf(newSize) === classOf(oldSize)) return addr;
    if (!(usedBytes >= 0 && usedBytes <= oldSize && usedBytes <= newSize)) throw new RangeError(`cannot keep ${usedBytes} bytes growing ${oldSize} → ${newSize}`);
    const to = this.alloc(newSize);
    const src = this.pages[addr >>> ARENA_PAGE_SHIFT]!;
    const dst = this.pages[to >>> ARENA_PAGE_SHIFT]!;
    const from = addr & ARENA_PAGE_MASK;
    const at = to & ARENA_PAGE_MASK;
    if (src === dst) src.copyWithin(at, from, from + usedBytes);
    else if (usedBytes <= 256) for (let i = 0; i < usedBytes; i++) dst[at + i] = src[from + i]!;
    else dst.set(src.subarray(from, from + usedBytes), at);
    this.free(addr, oldSize);
    return to;
  }

  /** Bytes of pages made, and bytes of regions allocated and not freed (rounded up to their classes). */
  stats(): { pageBytes: number; liveBytes: number } {
    return { pageBytes: this.pages.length * ARENA_PAGE_BYTES, liveBytes: this.live };
  }

  /** Starts a new page, first splitting what the last one has left into free regions. */
  private newPage(): void {
    if (this.pages.length >= this.maxPages)
      throw new RangeError(`byte arena full: ${this.maxPages} pages of ${ARENA_PAGE_BYTES} bytes in use`);
    if (this.pages.length > 0) {
      let off = this.bump;
      const base = (this.pages.length - 1) * ARENA_PAGE_BYTES;
      // The rest is a multiple of 16 bytes: one region per set bit, smallest first (each stays aligned to its size
      // when the bump pointer was, and no region spans the page end).
      for (let c = 0; c < CLASSES && off < ARENA_PAGE_BYTES; c++) {
        const size = ARENA_MIN_REGION << c;
        if ((ARENA_PAGE_BYTES - off) & size) {
          this.freeLists[c]!.push(base + off);
          off += size;
        }
      }
    }
    this.pages.push(new Uint8Array(ARENA_PAGE_BYTES));
    this.bump = 0;
  }
}

function checkSize(size: number): void {
  if (!(Number.isInteger(size) && size >= 1)) throw new RangeError(`region size ${size} is not a positive integer`);
  if (size > ARENA_PAGE_BYTES) throw new RangeError(`region of ${size} bytes exceeds the arena page size (${ARENA_PAGE_BYTES} bytes)`);
}
