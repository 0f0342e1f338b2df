/**
 * The one delta helper of the agent. Every rate (CPU %, disk and network per second) goes through it, so the
 * rules are the same everywhere:
 *
 * - a key (CPU, device, interface) present in both readings gets deltas and per-second rates;
 * - a key only in the current reading gets nothing this time: its counters are the baseline for the next one;
 * - a key only in the previous reading is dropped;
 * - if ANY counter of a key went backwards (reset, re-created device, 32-bit wrap) the key gets no rate this
 *   time: a skipped sample is better than a negative or absurd one. The current values become its new baseline.
 *
 * Counters are vectors in a collector-defined order (e.g. `[rx_bytes, rx_packets, …]`). Gauges (in-flight I/O)
 * must not be put in them: a gauge that goes down would look like a reset.
 */

/** Cumulative counters per key, each vector in a fixed order chosen by the collector. */
export type CounterMap = ReadonlyMap<string, readonly number[]>;

/** What changed for one key over the interval. */
export interface KeyRates {
  /** current − previous, per counter; never negative. */
  deltas: number[];
  /** deltas / elapsed seconds. */
  perSecond: number[];
}

/**
 * Compares two readings taken `elapsedMs` apart. Returns rates only for keys present in both with no counter
 * going backwards (and the same vector length); an elapsed time that is not positive yields no rates at all.
 */
export function computeRates(prev: CounterMap, cur: CounterMap, elapsedMs: number): Map<string, KeyRates> {
  const out = new Map<string, KeyRates>();
  if (!(elapsedMs > 0)) return out;
  const seconds = elapsedMs / 1000;
  for (const [key, now] of cur) {
    const before = prev.get(key);
    if (before === undefined || before.length !== now.length) continue;
    const n = now.length;
    const deltas = new Array<number>(n);
    const perSecond = new Array<number>(n);
    let ok = true;
    for (let i = 0; i < n; i++) {
      const d = now[i]! - before[i]!;
      // `!(d >= 0)` also rejects NaN from a garbled line.
      if (!(d >= 0)) {
        ok = false;
        break;
      }
      deltas[i] = d;
      perSecond[i] = d / seconds;
    }
    if (ok) out.set(key, { deltas, perSecond });
  }
  return out;
}

/**
 * Keeps the previous reading of one collector instance (state lives on the instance, never in the module) and
 * turns each new reading into rates with {@link computeRates}.
 */
export class RateTracker {
  private prev: CounterMap | undefined;
  private prevAtMs = 0;

  /**
   * Stores `cur` taken at `nowMs` (a monotonic clock) and returns the rates since the previous reading, or
   * `undefined` for the very first reading, which is only a baseline.
   */
  update(cur: CounterMap, nowMs: number): Map<string, KeyRates> | undefined {
    const prev = this.prev;
    const elapsed = nowMs - this.prevAtMs;
    this.prev = cur;
    this.prevAtMs = nowMs;
    if (prev === undefined) return undefined;
    return computeRates(prev, cur, elapsed);
  }

  /** Forgets the baseline (the next reading is a baseline again). */
  reset(): void {
    this.prev = undefined;
  }
}
