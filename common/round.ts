/**
 * Rounding of the values the agent computes as ratios (CPU %, per-second rates, latencies), shared by the
 * collectors. Such a ratio of counter deltas carries 15–17 significant digits of which only the first few mean
 * anything (12.345678912 % of a 5 s interval), and the server's chunk codec stores a value with two decimals in a few
 * bits but a full-precision one in 20–60 (docs/storage.md). Beszel rounds the same values to two decimals.
 *
 * Every result is the double nearest to a decimal with that many places (so n / 10^d === result for an integer n):
 * the codec's decimal mode takes it exactly. NaN and ±Infinity pass through unchanged; −0 becomes 0.
 */

const POW10 = [1, 10, 100, 1_000, 10_000] as const;

/** `x` rounded to `decimals` (0–4) decimal places, halves away from zero. */
export function roundTo(x: number, decimals: number): number {
  if (!Number.isFinite(x)) return x;
  const p = POW10[decimals];
  if (p === undefined) throw new RangeError(`decimals must be 0–4, got ${decimals}`);
  const n = Math.round(Math.abs(x) * p);
  const r = n / p;
  return x < 0 && n !== 0 ? -r : r;
}

/** Percentages (CPU, memory, disk usage): two decimals, 0.01 %. */
export function roundPercent(x: number): number {
  return roundTo(x, 2);
}

/** Counts per second (operations, packets, errors) and durations in ms: two decimals. */
export function roundRate(x: number): number {
  return roundTo(x, 2);
}

/** Bytes per second: whole bytes. */
export function roundBytesRate(x: number): number {
  return roundTo(x, 0);
}
