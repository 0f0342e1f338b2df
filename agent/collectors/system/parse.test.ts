import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { countProcessEntries, countUtmpUsers, parseBtime, parseUptime, parseUtmp } from "./parse.js";
import { makeUtmp, TYPICAL_SESSIONS, UT } from "./testdata/make-utmp.js";
import { parseWindowsSystem } from "./windows-parse.js";

const testdata = path.join(import.meta.dirname, "testdata");
const read = (p: string): string => fs.readFileSync(path.join(testdata, p), "utf8");

describe("procfs", () => {
  it("reads uptime and btime from the captured files", () => {
    expect(parseUptime(read("proc/uptime"))).toBe(545.16);
    expect(parseBtime(read("proc/stat"))).toBe(1795769124);
    expect(parseBtime("btime 42\n")).toBe(42);
    expect(parseBtime("cpu 1 2 3\n")).toBeUndefined();
    expect(() => parseUptime("")).toThrow(/unexpected uptime/);
  });

  it("counts processes as the numeric /proc entries", () => {
    expect(countProcessEntries(["1", "2", "21737", "self", "thread-self", "net", "stat", "4"])).toBe(4);
  });
});

describe("utmp", () => {
  it("decodes records and counts USER_PROCESS sessions with a user name", () => {
    const buf = makeUtmp(TYPICAL_SESSIONS);
    const entries = parseUtmp(buf);
    expect(entries).toHaveLength(8);
    expect(entries[3]).toEqual({
      type: UT.USER_PROCESS,
      pid: 1200,
      line: "pts/0",
      user: "alice",
      host: "192.0.2.10",
      timeSec: 1795769300,
    });
    expect(countUtmpUsers(buf)).toBe(3); // alice twice and bob, like `who | wc -l` and uptime's "3 users"
  });

  it("reads big-endian files and ignores a trailing partial record and an empty file", () => {
    const be = makeUtmp(TYPICAL_SESSIONS, false);
    expect(countUtmpUsers(be, false)).toBe(3);
    expect(parseUtmp(be, false)[5]!.user).toBe("bob");
    const partial = Buffer.concat([makeUtmp(TYPICAL_SESSIONS), Buffer.alloc(100, 7)]);
    expect(countUtmpUsers(partial)).toBe(3);
    expect(countUtmpUsers(Buffer.alloc(0))).toBe(0);
  });

  it("handles a user name filling all 32 bytes (no NUL terminator)", () => {
    const name = "u".repeat(32);
    const [e] = parseUtmp(makeUtmp([{ type: UT.USER_PROCESS, user: name, host: "h" }]));
    expect(e!.user).toBe(name);
    expect(e!.host).toBe("h");
  });
});

describe("parseWindowsSystem", () => {
  it("reads the ISO boot time, process count and users", () => {
    expect(parseWindowsSystem(read("windows/system.json"))).toEqual({
      bootTimeSec: 1795161600,
      processes: 187,
      users: ["DESKTOP-1\\alice", "CORP\\bob"],
    });
  });

  it("accepts /Date(ms)/, a lone user string and a BOM", () => {
    expect(parseWindowsSystem(read("windows/system-legacy-date-bom.json"))).toEqual({
      bootTimeSec: 1795680000,
      processes: 95,
      users: ["DESKTOP-1\\alice"],
    });
    expect(parseWindowsSystem(read("windows/system-no-users.json")).users).toEqual([]);
  });

  it("throws the error answer and a missing boot time", () => {
    expect(() => parseWindowsSystem(read("windows/system-error.json"))).toThrow(/Access is denied/);
    expect(() => parseWindowsSystem('{"NumberOfProcesses":1}')).toThrow(/LastBootUpTime/);
  });
});
