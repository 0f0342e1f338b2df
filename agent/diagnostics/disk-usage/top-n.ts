/**
 * Keeps the `n` best items seen, in O(n) memory and O(log n) per offer: a binary min-heap whose root is the worst
 * item kept. `better(a, b)` is a strict total order (true when `a` ranks before `b`).
 */
export class TopN<T> {
  private readonly heap: T[] = [];

  constructor(
    private readonly n: number,
    private readonly better: (a: T, b: T) => boolean,
  ) {}

  get size(): number {
    return this.heap.length;
  }

  /** Offers an item; kept when fewer than `n` are held or when it beats the worst one held. */
  offer(item: T): void {
    if (this.n <= 0) return;
    const h = this.heap;
    if (h.length < this.n) {
      h.push(item);
      this.up(h.length - 1);
    } else if (this.better(item, h[0]!)) {
      h[0] = item;
      this.down(0);
    }
  }

  /** The items held, best first. */
  sorted(): T[] {
    return [...this.heap].sort((a, b) => (this.better(a, b) ? -1 : this.better(b, a) ? 1 : 0));
  }

  // The root is the worst item: a parent is never better than its children.
  private up(i: number): void {
    const h = this.heap;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.better(h[parent]!, h[i]!)) break;
      [h[parent], h[i]] = [h[i]!, h[parent]!];
      i = parent;
    }
  }

  private down(i: number): void {
    const h = this.heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let worst = i;
      if (l < h.length && this.better(h[worst]!, h[l]!)) worst = l;
      if (r < h.length && this.better(h[worst]!, h[r]!)) worst = r;
      if (worst === i) return;
      [h[worst], h[i]] = [h[i]!, h[worst]!];
      i = worst;
    }
  }
}
