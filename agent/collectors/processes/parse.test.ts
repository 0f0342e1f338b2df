import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { FALLBACK_PAGE_SIZE, pageSizeFromAuxv, readPageSize } from "./page-size.js";
import {
  linuxLegacyCounts,
  linuxLegacyStatus,
  newPidStat,
  parseCpuTotalTicks,
  parseMemTotalBytes,
  parsePidStat,
  parseUptimeSeconds,
  statStateLetter,
} from "./parse.js";
import { selectTop } from "./select.js";

const testdata = path.join(import.meta.dirname, "testdata");
const raw = (p: string): Buffer => fs.readFileSync(path.join(testdata, p));
const read = (p: string): string => raw(p).toString("latin1");
const parse = (buf: Buffer): ReturnType<typeof newPidStat> | undefined => {
  const out = newPidStat();
  return parsePidStat(buf, buf.length, out) ? out : undefined;
};

describe("parsePidStat on the captured /proc/<pid>/stat files", () => {
  it("splits the comm on the LAST ')' (comm `a b) (c`)", () => {
    expect(parse(raw("proc/21732/stat"))).toEqual({
      name: "a b) (c",
      state: "S",
      ticks: 0,
      numThreads: 1,
      startTicks: 55393,
      rssPages: 424,
    });
  });

  it("reads utime+stime, threads and rss of the 9-thread node", () => {
    expect(parse(raw("proc/21733/stat"))).toEqual({
      name: "node",
      state: "S",
      ticks: 15,
      numThreads: 9,
      startTicks: 55393,
      rssPages: 15187,
    });
  });

  it("reads zombie, stopped, kernel and idle kernel threads", () => {
    expect(parse(raw("proc/21737/stat"))).toMatchObject({ name: "sleep", state: "Z", rssPages: 0, numThreads: 1 });
    expect(parse(raw("proc/21726/stat"))).toMatchObject({ name: "sleep", state: "T", rssPages: 393 });
    expect(parse(raw("proc/2/stat"))).toMatchObject({ name: "kthreadd", state: "S", startTicks: 24 });
    expect(parse(raw("proc/4/stat"))).toMatchObject({ name: "kworker/R-rcu_gp", state: "I" });
  });

  it("matches ps (cmd/ps-axo.txt: STAT letter and NLWP) for every captured process", () => {
    const rows = read("cmd/ps-axo.txt").trim().split("\n").slice(1);
    for (const pid of ["2", "4", "21726", "21732", "21733", "21737"]) {
      const row = rows.find((r) => r.trim().split(/\s+/)[0] === pid)!.trim().split(/\s+/);
      const s = parse(raw(`proc/${pid}/stat`))!;
      expect(s.state).toBe(row[2]![0]);
      expect(s.numThreads).toBe(Number(row[3]));
    }
  });

  it("decodes a UTF-8 comm and rejects truncated or garbled lines", () => {
    expect(parse(Buffer.from("7 (wörker) R 1 7 7 0 -1 0 0 0 0 0 5 6 0 0 20 0 3 0 99 100 12 0\n"))).toMatchObject({
      name: "wörker",
      state: "R",
      ticks: 11,
      numThreads: 3,
      rssPages: 12,
    });
    expect(parse(Buffer.from(""))).toBeUndefined();
    expect(parse(Buffer.from("7 (x) R 1 2 3"))).toBeUndefined();
    expect(parse(Buffer.from("7 x R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22"))).toBeUndefined();
    expect(parse(Buffer.from("7 (x) R 1 2 3 4 5 6 7 8 9 10 a 12 13 14 15 16 17 18 19 20 21 22"))).toBeUndefined();
    // Only the first `len` bytes count (the reader's buffer is reused and holds older bytes after them).
    const buf = Buffer.concat([raw("proc/21733/stat"), Buffer.from(") Z 9 9 9")]);
    const out = newPidStat();
    expect(parsePidStat(buf, raw("proc/21733/stat").length, out)).toBe(true);
    expect(out.state).toBe("S");
  });
});

describe("statStateLetter", () => {
  it("reads the state of every thread of the captured node process (all S, like cmd/ps-eLo-threads.txt)", () => {
    const dir = path.join(testdata, "proc/21733/task");
    const letters = fs.readdirSync(dir).map((tid) => {
      const b = fs.readFileSync(path.join(dir, tid, "stat"));
      return statStateLetter(b, b.length);
    });
    expect(letters).toEqual(new Array(9).fill("S"));
    expect(statStateLetter(Buffer.from("1 (a) b) T 0"), 12)).toBe("T");
    expect(statStateLetter(Buffer.from("garbage"), 7)).toBe("");
    expect(statStateLetter(Buffer.from("1 (a)"), 5)).toBe("");
  });
});

describe("machine-wide readings", () => {
  it("sums the aggregate cpu line without guest columns", () => {
    expect(parseCpuTotalTicks(read("proc/stat"))).toBe(31491 + 7165 + 66892 + 2509 + 90 + 219);
    const t0 = parseCpuTotalTicks(read("deltas/proc-stat.t0"))!;
    const t1 = parseCpuTotalTicks(read("deltas/proc-stat.t1"))!;
    // 1276 ms on 2 CPUs at USER_HZ 100 is about 255 ticks.
    expect(t1 - t0).toBe(258);
    expect(parseCpuTotalTicks("cpu0 1 2 3 4\n")).toBeUndefined();
    expect(parseCpuTotalTicks("cpu  1 x 3 4\n")).toBeUndefined();
    expect(parseCpuTotalTicks("")).toBeUndefined();
  });

  it("reads MemTotal and uptime", () => {
    expect(parseMemTotalBytes(read("proc/meminfo"))).toBe(24684084 * 1024);
    expect(parseMemTotalBytes("garbage")).toBeUndefined();
    expect(parseUptimeSeconds(read("proc/uptime"))).toBe(545.16);
    expect(parseUptimeSeconds("")).toBeUndefined();
  });
});

describe("legacy status and thread counts (Linux)", () => {
  it("is running when any thread runs, waiting when one waits, other for zombies and stopped", () => {
    expect(linuxLegacyStatus({ S: 8, R: 1 })).toBe("running");
    expect(linuxLegacyStatus({ Z: 1, S: 3 })).toBe("waiting"); // leader exited, workers alive
    expect(linuxLegacyStatus({ D: 1 })).toBe("waiting");
    expect(linuxLegacyStatus({ I: 1 })).toBe("waiting");
    expect(linuxLegacyStatus({ Z: 1 })).toBe("other");
    expect(linuxLegacyStatus({ T: 2 })).toBe("other");
    expect(linuxLegacyCounts({ R: 2, S: 5, D: 1, T: 1 })).toEqual({ running: 2, runnable: undefined, waiting: 6 });
  });
});

describe("selectTop", () => {
  it("keeps the top N by CPU then adds the top N by memory not already in, ties by memory then pid", () => {
    const pid = [10, 11, 12, 13, 14];
    const cpu = [5, 0, 50, 0, 0];
    const mem = [1, 900, 2, 800, 900];
    expect(selectTop(5, 2, cpu, mem, pid)).toEqual([2, 0, 1, 4]);
    expect(selectTop(5, 1, cpu, mem, pid)).toEqual([2, 1]);
    expect(selectTop(5, 10, cpu, mem, pid)).toEqual([2, 0, 1, 4, 3]);
    expect(selectTop(0, 3, [], [], [])).toEqual([]);
  });
});

describe("page size", () => {
  it("finds AT_PAGESZ in an auxiliary vector of either word size and byte order", () => {
    const le64 = Buffer.alloc(64);
    le64.writeBigUInt64LE(33n, 0); // AT_SYSINFO_EHDR
    le64.writeBigUInt64LE(0x7fffn, 8);
    le64.writeBigUInt64LE(6n, 16);
    le64.writeBigUInt64LE(65536n, 24);
    expect(pageSizeFromAuxv(le64, 8, true)).toBe(65536);
    const be32 = Buffer.alloc(24);
    be32.writeUInt32BE(6, 0);
    be32.writeUInt32BE(16384, 4);
    expect(pageSizeFromAuxv(be32, 4, false)).toBe(16384);
    expect(pageSizeFromAuxv(Buffer.alloc(32), 8, true)).toBeUndefined();
  });

  it("reads this machine's page size and falls back to 4096", () => {
    expect([4096, 16384, 65536]).toContain(readPageSize());
    expect(readPageSize("/nonexistent/auxv")).toBe(FALLBACK_PAGE_SIZE);
  });
});
