import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DailySchedule, parseLocalTime, scheduleDay } from "./schedule.js";

/** Local times in a zone with DST, whatever the machine's zone (Node re-reads TZ when it is assigned). */
const savedTz = process.env["TZ"];
beforeAll(() => {
  process.env["TZ"] = "Europe/Berlin";
});
afterAll(() => {
  if (savedTz === undefined) delete process.env["TZ"];
  else process.env["TZ"] = savedTz;
});

const utc = (iso: string): number => Date.parse(iso);

describe("parseLocalTime", () => {
  it("accepts HH:MM only", () => {
    expect(parseLocalTime("02:00")).toEqual({ hour: 2, minute: 0 });
    expect(parseLocalTime("23:59")).toEqual({ hour: 23, minute: 59 });
    for (const bad of ["2:00", "24:00", "12:60", "0200", "", " 02:00x", 2, null]) expect(parseLocalTime(bad)).toBeUndefined();
  });
});

describe("scheduleDay / DailySchedule in Europe/Berlin", () => {
  const two = { hour: 2, minute: 0 };

  it("uses local wall-clock time (CET = UTC+1)", () => {
    expect(new Date(utc("2024-01-15T00:30:00Z")).getHours()).toBe(1);
    expect(scheduleDay(utc("2024-01-15T00:59:00Z"), two)).toBe("2024-01-14");
    expect(scheduleDay(utc("2024-01-15T01:00:00Z"), two)).toBe("2024-01-15");
    // Across a month and year boundary.
    expect(scheduleDay(utc("2024-01-01T00:30:00Z"), two)).toBe("2023-12-31");
  });

  it("spring forward (31 Mar 2024, 02:00 → 03:00 never happens): the run comes at the first wake-up after", () => {
    const s = new DailySchedule({ hour: 2, minute: 30 });
    s.done(utc("2024-03-30T12:00:00Z"));
    expect(s.due(utc("2024-03-31T00:59:00Z"))).toBe(false); // 01:59 CET
    expect(s.due(utc("2024-03-31T01:00:00Z"))).toBe(true); // 03:00 CEST
    s.done(utc("2024-03-31T01:00:00Z"));
    expect(s.due(utc("2024-03-31T21:00:00Z"))).toBe(false);
    expect(s.due(utc("2024-04-01T00:30:00Z"))).toBe(true); // 02:30 CEST
  });

  it("fall back (27 Oct 2024, 02:00–03:00 twice): one run, not two", () => {
    const s = new DailySchedule(two);
    s.done(utc("2024-10-26T10:00:00Z"));
    expect(s.due(utc("2024-10-27T00:00:00Z"))).toBe(true); // 02:00 CEST, the first time
    s.done(utc("2024-10-27T00:00:00Z"));
    expect(s.due(utc("2024-10-27T01:00:00Z"))).toBe(false); // 02:00 CET, the second time
    expect(s.due(utc("2024-10-27T22:59:00Z"))).toBe(false); // 23:59 CET
    expect(s.due(utc("2024-10-28T01:00:00Z"))).toBe(true); // 02:00 CET next day
  });

  it("due at the first call, never again the same schedule day", () => {
    const s = new DailySchedule(two);
    expect(s.due(0)).toBe(true);
    s.done(utc("2024-06-10T08:00:00Z"));
    expect(s.due(utc("2024-06-10T23:00:00Z"))).toBe(false); // 01:00 CEST on the 11th
    expect(s.due(utc("2024-06-11T00:00:00Z"))).toBe(true); // 02:00 CEST
  });
});
