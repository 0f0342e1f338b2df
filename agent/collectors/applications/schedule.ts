/** A local time of day, from the `at` option. */
export interface LocalTime {
  hour: number;
  minute: number;
}

/** Parses "HH:MM" (24-hour, two digits each: "02:00", "23:59"); undefined when it is not one. */
export function parseLocalTime(text: unknown): LocalTime | undefined {
  if (typeof text !== "string") return undefined;
  const m = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(text.trim());
  return m ? { hour: Number(m[1]), minute: Number(m[2]) } : undefined;
}

/** "YYYY-MM-DD" of a local calendar day. */
function localDate(d: Date): string {
  const pad = (n: number): string => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/**
 * The local date of the most recent `at` that is not after `nowMs`: today's date once the local clock shows
 * `at` or later, else yesterday's. Only local wall-clock fields are compared, never fixed 24-hour steps, so a
 * 23- or 25-hour day at a DST change still counts as one day: an `at` skipped by the spring jump (02:30 when
 * clocks go from 02:00 to 03:00) is reached at the first moment after it, and one that occurs twice in autumn
 * belongs to the same date both times.
 */
export function scheduleDay(nowMs: number, at: LocalTime): string {
  const now = new Date(nowMs);
  const minutes = now.getHours() * 60 + now.getMinutes();
  if (minutes >= at.hour * 60 + at.minute) return localDate(now);
  // The local-date constructor steps back one calendar day, whatever its length.
  return localDate(new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1, 12));
}

/**
 * Once a day at a local time, plus once at start: `due(now)` is true for the first call, then again for the
 * first call at or after the next `at` (the scheduler's hourly wake-ups decide how soon after). `done(now)`
 * records a run; a run that failed is not recorded, so the next wake-up tries again.
 */
export class DailySchedule {
  private lastDay: string | undefined;

  constructor(private readonly at: LocalTime) {}

  due(nowMs: number): boolean {
    return this.lastDay === undefined || scheduleDay(nowMs, this.at) !== this.lastDay;
  }

  done(nowMs: number): void {
    this.lastDay = scheduleDay(nowMs, this.at);
  }
}
