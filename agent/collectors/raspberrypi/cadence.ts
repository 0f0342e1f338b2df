/**
 * A sub-schedule inside one collector: decides on each scheduler tick whether a slower part (clocks every 15 s,
 * volts every 60 s) is due. The collector runs on the fastest cadence (10 s) and asks each part `take(now)`.
 *
 * Due times advance by the period from the previous due time, not from the tick, so a 15 s part on 10 s ticks
 * runs at 0, 20, 30, 50, 60, … s: on average every 15 s, never more often than the ticks. A small tolerance
 * absorbs timers that fire a few ms early. After a pause longer than a period (skipped ticks, a suspended host)
 * the schedule restarts from now instead of firing on every tick to catch up.
 */
export class Cadence {
  private next = -Infinity;
  private readonly toleranceMs: number;

  /** `periodMs` > 0; `toleranceMs` defaults to a tenth of the period, at most 1 s. */
  constructor(
    readonly periodMs: number,
    toleranceMs?: number,
  ) {
    if (!(periodMs > 0)) throw new Error(`cadence period must be > 0 ms, got ${periodMs}`);
    this.toleranceMs = toleranceMs ?? Math.min(1_000, periodMs / 10);
  }

  /** True when the part is due at `nowMs` (monotonic); taking it schedules the next one. The first call is due. */
  take(nowMs: number): boolean {
    if (nowMs + this.toleranceMs < this.next) return false;
    this.next = this.next === -Infinity ? nowMs + this.periodMs : this.next + this.periodMs;
    if (this.next <= nowMs) this.next = nowMs + this.periodMs;
    return true;
  }
}
