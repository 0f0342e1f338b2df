import { spawnSync } from "node:child_process";
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { CommandSchema, CommandType, FetchLogsParamsSchema, LogLevel, type FetchLogsParams } from "../../../gen/spectra/v1/diagnostics_pb.js";
import { createCommandRunner } from "../../host/exec.js";
import type { CommandRunner, ExecOptions, ExecResult, HostAccess } from "../../host/host-access.js";
import { runCommand } from "../registry.js";
import { fetchLogsDiagnostic } from "./index.js";
import { journalctlArgs, journalFieldText, JournalUnavailableError, parseJournalJson, readJournal } from "./journal.js";
import { kmsgEntry, parseKmsgLine, readKmsg } from "./kmsg.js";
import { fetchLogsLinux } from "./linux.js";
import { InvalidLogParamsError, normalizeLogQuery, toLogEntry, type LogQuery } from "./params.js";
import { guessLevel, parseSyslogLine, readSyslogFile } from "./syslog.js";
import {
  FETCH_LOGS_SCRIPT_TEMPLATE,
  fetchLogsScript,
  fetchLogsWindows,
  parseWinEvents,
  windowsLevelsFor,
  winEventQuery,
} from "./windows.js";

const testdata = (p: string) => fileURLToPath(new URL(`testdata/${p}`, import.meta.url));
const read = (p: string) => readFileSync(testdata(p), "utf8");
const logger = pino({ level: "silent" });
const signal = new AbortController().signal;

const params = (p: MessageInitShape<typeof FetchLogsParamsSchema> = {}): FetchLogsParams => create(FetchLogsParamsSchema, p);
const query = (p: Partial<LogQuery> = {}): LogQuery => ({ maxLevel: 3, since: undefined, until: undefined, unit: "", limit: 10_000, ...p });

type Call = { file: string; args: readonly string[]; opts: ExecOptions };
const ok = (stdout: string, extra: Partial<ExecResult> = {}): ExecResult => ({
  stdout,
  stderr: "",
  exitCode: 0,
  signal: null,
  timedOut: false,
  truncated: false,
  ...extra,
});
/** A runner answering each call with the next scripted result (the last one repeats). */
function fakeExec(...answers: Array<ExecResult | Error>): CommandRunner & { calls: Call[] } {
  const calls: Call[] = [];
  return {
    calls,
    run: async (file, args, opts) => {
      calls.push({ file, args, opts });
      const a = answers[Math.min(calls.length - 1, answers.length - 1)]!;
      if (a instanceof Error) throw a;
      return a;
    },
  };
}
const hostWith = (exec: CommandRunner, platform: "linux" | "windows" = "linux"): HostAccess => ({
  platform,
  paths: { procRoot: "/proc", sysRoot: "/sys", rootfs: "" },
  exec,
});
const NOPERM = ok("", { exitCode: 1, stderr: read("journalctl-nopermission.stderr").split("\nexit=")[0]! });

const tmp = mkdtempSync(path.join(tmpdir(), "spectra-fetch-logs-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("parameters", () => {
  it("fills the defaults and caps the limit per platform", () => {
    expect(normalizeLogQuery(params(), "linux")).toEqual({ maxLevel: 3, since: undefined, until: undefined, unit: "", limit: 10_000 });
    expect(normalizeLogQuery(params(), "windows").limit).toBe(25_000);
    expect(normalizeLogQuery(params({ limit: 50_000 }), "linux").limit).toBe(10_000);
    expect(normalizeLogQuery(params({ limit: 50_000 }), "windows").limit).toBe(25_000);
    expect(normalizeLogQuery(params({ limit: 7 }), "linux").limit).toBe(7);
    expect(normalizeLogQuery(params({ minLevel: LogLevel.DEBUG }), "linux").maxLevel).toBe(7);
    expect(normalizeLogQuery(params({ minLevel: LogLevel.EMERGENCY }), "linux").maxLevel).toBe(0);
    const q = normalizeLogQuery(params({ since: timestampFromMs(1_795_769_000_000), until: timestampFromMs(1_795_770_000_999) }), "linux");
    expect([q.since, q.until]).toEqual([1_795_769_000, 1_795_770_000]);
  });

  it("refuses bad levels, windows and units (injection attempts included)", () => {
    expect(() => normalizeLogQuery(params({ minLevel: 42 as LogLevel }), "linux")).toThrow(InvalidLogParamsError);
    expect(() => normalizeLogQuery(params({ since: timestampFromMs(2000), until: timestampFromMs(1000) }), "linux")).toThrow("since is after until");
    expect(() => normalizeLogQuery(params({ since: timestampFromMs(-5000) }), "linux")).toThrow("after 1970");
    for (const unit of ["-x", "--all", "-.mount", ".hidden", "a;b", "$(reboot)", "`id`", "a\nb", "a b", "a|b", "*", "x".repeat(256), "ssh'"]) {
      expect(() => normalizeLogQuery(params({ unit }), "linux"), unit).toThrow(InvalidLogParamsError);
    }
    for (const unit of ["ssh", "ssh.service", "getty@tty1.service", "systemd-fsck@dev-disk-by\\x2duuid-1.service", "kernel"]) {
      expect(normalizeLogQuery(params({ unit }), "linux").unit).toBe(unit);
    }
    for (const unit of ["System'; Remove-Item C:\\ -Recurse", "$(Get-Process)", "-x", "a\r\nb", "`whoami`"]) {
      expect(() => normalizeLogQuery(params({ unit }), "windows"), unit).toThrow(InvalidLogParamsError);
    }
    expect(normalizeLogQuery(params({ unit: "Service Control Manager" }), "windows").unit).toBe("Service Control Manager");
  });

  it("writes entries in the legacy shape", () => {
    const e = toLogEntry({ timestamp: 1795769638.9, source: "sshd", level: 3, message: "x".repeat(10_000), pid: 42, processName: "sshd" });
    expect(e).toMatchObject({ timestamp: 1795769638n, source: "sshd", level: "ERROR", pid: 42, processName: "sshd" });
    expect(e.message).toHaveLength(8192);
    const bare = toLogEntry({ timestamp: 1, source: "kernel", level: 0, message: "m" });
    expect(bare.level).toBe("EMERGENCY");
    expect([bare.pid, bare.processName]).toEqual([undefined, undefined]);
  });
});

describe("journal", () => {
  it("builds the journalctl argument array", () => {
    expect(journalctlArgs(query({ maxLevel: 3, limit: 100 }), { outputFields: true, root: "" })).toEqual([
      "--no-pager", "-o", "json", "--all", "-r", "-n", "100",
      "--output-fields=MESSAGE,PRIORITY,SYSLOG_IDENTIFIER,SYSLOG_PID,_PID,_COMM,_SYSTEMD_UNIT,_TRANSPORT",
      "-p", "3",
    ]);
    expect(
      journalctlArgs(query({ maxLevel: 7, limit: 5, since: 100, until: 200, unit: "ssh.service" }), { outputFields: false, root: "/host" }),
    ).toEqual(["--no-pager", "-o", "json", "--all", "-r", "-n", "5", "--root=/host", "--since=@100", "--until=@200", "--unit=ssh.service"]);
    expect(journalctlArgs(query({ unit: "kernel" }), { outputFields: false, root: "" }).at(-1)).toBe("_TRANSPORT=kernel");
  });

  it("parses the captured journal JSON, binary messages included", () => {
    const { entries, badLines } = parseJournalJson(read("journalctl-p3-json.ndjson"), query());
    expect(badLines).toBe(0);
    expect(entries.map((e) => [e.timestamp, e.source, e.level, e.pid, e.processName])).toEqual([
      [1795769638, "spectra-test", 3, 20156, "logger"],
      [1795769638, "sshd", 2, 20158, "logger"],
      [1795769638, "spectra-test", 1, 20160, "logger"],
      [1795769642, "spectra-bin", 3, 20414, "logger"],
    ]);
    expect(entries[2]!.message).toBe('alert with "quotes" and unicode ✓');
    // [98,105,110,97,114,121,1,…,32,255,254]: "binary", a control byte, "payload ", two invalid bytes.
    expect(entries[3]!.message).toBe("binary\u0001payload \uFFFD\uFFFD");
    expect(parseJournalJson(read("journalctl-binary-message.ndjson"), query()).entries[0]!.message).toBe("binary\u0001payload \uFFFD\uFFFD");
    const full = parseJournalJson(read("journalctl-full-entries.ndjson"), query({ maxLevel: 4 })).entries;
    expect(full.map((e) => [e.level, e.message])).toEqual([
      [3, "disk /dev/sdz failed to respond (simulated)"],
      [4, "high memory usage 91% (simulated)"],
    ]);
    // The level, window and limit are applied again.
    expect(parseJournalJson(read("journalctl-p3-json.ndjson"), query({ maxLevel: 2 })).entries).toHaveLength(2);
    expect(parseJournalJson(read("journalctl-p3-json.ndjson"), query({ since: 1795769640 })).entries).toHaveLength(1);
    expect(parseJournalJson(read("journalctl-p3-json.ndjson"), query({ limit: 1 })).entries).toHaveLength(1);
  });

  it("handles bad PRIORITY values, null and repeated fields and broken lines", () => {
    const text = read("journal-handwritten.ndjson");
    const all = parseJournalJson(text, query({ maxLevel: 7 }));
    expect(all.badLines).toBe(2); // "not json at all" and the cut last line
    expect(all.entries.map((e) => [e.source, e.level, e.message, e.pid])).toEqual([
      ["odd", 6, "priority out of range", 100],
      ["odd", 6, "priority not a number", 101],
      ["odd", 6, "no priority at all", undefined],
      ["raid-check.service", 0, "", undefined],
      ["app", 2, "first value\nhi\uFFFD", 77],
    ]);
    // Unknown priorities count as INFO, so an ERROR query leaves them out as journalctl -p would.
    expect(parseJournalJson(text, query({ maxLevel: 3 })).entries.map((e) => e.level)).toEqual([0, 2]);
    expect(journalFieldText([1, 2, 300])).toBe("\u0001\u0002?");
    expect(journalFieldText({})).toBeUndefined();
  });

  it("reports an unreadable journal clearly (captured permission failure)", async () => {
    const exec = fakeExec(NOPERM);
    const err = await readJournal(query(), { exec, timeoutMs: 1000, maxOutputBytes: 1 << 20 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JournalUnavailableError);
    expect((err as Error).message).toBe(
      "journal not readable: No journal files were opened due to insufficient permissions. (add the agent's user to the systemd-journal or adm group)",
    );
    expect(exec.calls[0]!.file).toBe("journalctl");
    expect(exec.calls[0]!.opts).toMatchObject({ timeoutMs: 1000, maxOutputBytes: 1 << 20 });
  });

  it("passes on other journalctl failures with their message (captured bad priority)", async () => {
    const exec = fakeExec(ok("", { exitCode: 1, stderr: read("journalctl-badprio.stderr") }));
    await expect(readJournal(query(), { exec, timeoutMs: 1000, maxOutputBytes: 1 << 20 })).rejects.toThrow(
      "journalctl failed (exit 1): Unknown log level bogus",
    );
    const missing = fakeExec(Object.assign(new Error("run journalctl"), { cause: Object.assign(new Error("spawn"), { code: "ENOENT" }) }));
    await expect(readJournal(query(), { exec: missing, timeoutMs: 1000, maxOutputBytes: 1 << 20 })).rejects.toThrow("journalctl could not start (ENOENT)");
  });

  it("retries without --output-fields on an old systemd", async () => {
    const exec = fakeExec(ok("", { exitCode: 1, stderr: "journalctl: unrecognized option '--output-fields=MESSAGE'\n" }), ok(read("journalctl-p3-json.ndjson")));
    const r = await readJournal(query(), { exec, timeoutMs: 1000, maxOutputBytes: 1 << 20 });
    expect(r.entries).toHaveLength(4);
    expect(exec.calls[0]!.args.some((a) => a.startsWith("--output-fields"))).toBe(true);
    expect(exec.calls[1]!.args.some((a) => a.startsWith("--output-fields"))).toBe(false);
  });

  it("keeps the complete lines of an answer cut by the output cap", async () => {
    const text = read("journalctl-p3-json.ndjson");
    const exec = fakeExec(ok(text.slice(0, text.length - 100), { truncated: true, exitCode: null, signal: "SIGKILL" }));
    const r = await readJournal(query(), { exec, timeoutMs: 1000, maxOutputBytes: text.length - 100 });
    expect(r.entries).toHaveLength(3);
    expect(r.warnings[0]).toContain("output cap");
  });

  it("tells an empty journal (journald not running) from no matching entries", async () => {
    const empty = fakeExec(ok(""), ok(""));
    await expect(readJournal(query(), { exec: empty, timeoutMs: 1000, maxOutputBytes: 1 << 20 })).rejects.toThrow("the journal has no entries");
    expect(empty.calls[1]!.args).toEqual(["--no-pager", "-o", "json", "-n", "1"]);
    const noMatch = fakeExec(ok(""), ok(read("journalctl-binary-message.ndjson")));
    expect((await readJournal(query(), { exec: noMatch, timeoutMs: 1000, maxOutputBytes: 1 << 20 })).entries).toEqual([]);
  });
});

describe("syslog files", () => {
  const now = new Date(2026, 11, 5, 12, 0, 0).getTime();

  it("parses RFC 3164, ISO and RFC 5424 lines", () => {
    expect(parseSyslogLine("Nov 27 08:53:58 vm sshd[20158]: Failed password for root", now)).toEqual({
      timeMs: new Date(2026, 10, 27, 8, 53, 58).getTime(),
      host: "vm",
      tag: "sshd",
      pid: 20158,
      message: "Failed password for root",
      level: undefined,
    });
    // A December line read in January belongs to the year before.
    expect(parseSyslogLine("Dec 31 23:59:59 vm cron: x", new Date(2027, 0, 1, 0, 5).getTime())?.timeMs).toBe(new Date(2026, 11, 31, 23, 59, 59).getTime());
    expect(parseSyslogLine("Nov  3 01:02:03 vm kernel: [  1.0] usb 1-1: new device", now)).toMatchObject({ tag: "kernel", message: "[  1.0] usb 1-1: new device" });
    expect(parseSyslogLine("2026-11-27T08:53:50+0000 vm kernel: software IO TLB: No low mem", now)).toMatchObject({
      timeMs: Date.UTC(2026, 10, 27, 8, 53, 50),
      tag: "kernel",
      message: "software IO TLB: No low mem",
    });
    expect(parseSyslogLine("2026-11-27T08:53:58.022718+01:00 vm spectra-test[20156]: disk failed", now)).toMatchObject({
      timeMs: Date.UTC(2026, 10, 27, 7, 53, 58, 22),
      pid: 20156,
    });
    expect(parseSyslogLine("<13>Nov 27 08:53:58 vm app: hello", now)).toMatchObject({ level: 5, tag: "app" });
    expect(parseSyslogLine("<34>1 2026-11-27T08:53:58Z vm sshd 42 - - hi there", now)).toEqual({
      timeMs: Date.UTC(2026, 10, 27, 8, 53, 58),
      host: "vm",
      tag: "sshd",
      pid: 42,
      message: "hi there",
      level: 2,
    });
    expect(parseSyslogLine("Nov 27 08:53:58 vm -- MARK --", now)).toMatchObject({ tag: "", message: "-- MARK --" });
    for (const bad of ["", "ey 27 08:50:01 vm CRON[1]: x", "   wrapped continuation", "<999>Nov 27 08:53:58 vm a: b", "Foo 27 08:53:58 vm a: b"]) {
      expect(parseSyslogLine(bad, now), bad).toBeUndefined();
    }
  });

  it("guesses a level from keywords when the line has none", () => {
    expect(guessLevel("Kernel panic - not syncing")).toBe(0);
    expect(guessLevel("critical: RAID degraded")).toBe(2);
    expect(guessLevel("Failed password for root")).toBe(3);
    expect(guessLevel("Out of memory: Killed process 42")).toBe(3);
    expect(guessLevel("warning: disk almost full")).toBe(4);
    expect(guessLevel("Started session-42.scope")).toBe(6);
    expect(guessLevel("debug: x=1")).toBe(7);
    expect(guessLevel("errored")).toBe(6); // whole words only
  });

  it("reads a hand-written RFC 3164 tail newest first with heuristic levels", async () => {
    const r = await readSyslogFile(testdata("syslog-rfc3164.log"), query({ maxLevel: 3 }), { maxBytes: 1 << 20, nowMs: now });
    expect(r.truncated).toBe(false);
    expect(r.entries.map((e) => [e.source, e.level, e.pid, e.message.slice(0, 24)])).toEqual([
      ["spectra-test", 2, 20160, "critical: RAID array /de"],
      ["kernel", 3, undefined, "[ 5213.000001] Out of mem"],
      ["sshd", 3, 20158, "Failed password for inval"],
      ["sshd", 3, 20158, "error: PAM: Authenticatio"],
      ["kernel", 3, undefined, "[ 5123.456789] EXT4-fs er"],
    ].map(([s, l, p, m]) => [s, l, p, (m as string).slice(0, 24)]));
    expect(r.entries[1]!.timestamp).toBe(new Date(2026, 10, 27, 8, 54, 0).getTime() / 1000);
    // INFO lets everything through except the cut first line ("ey 27 …"), dropped as it has no header.
    const all = await readSyslogFile(testdata("syslog-rfc3164.log"), query({ maxLevel: 7 }), { maxBytes: 1 << 20, nowMs: now });
    expect(all.entries).toHaveLength(10);
    expect(all.entries[0]).toMatchObject({ source: "rsyslogd", level: 6, timestamp: new Date(2026, 11, 1, 6, 25, 1).getTime() / 1000 });
  });

  it("filters by unit, time window and limit", async () => {
    const f = testdata("syslog-rfc3164.log");
    const opts = { maxBytes: 1 << 20, nowMs: now };
    expect((await readSyslogFile(f, query({ maxLevel: 7, unit: "ssh.service" }), opts)).entries).toHaveLength(0);
    expect((await readSyslogFile(f, query({ maxLevel: 7, unit: "sshd" }), opts)).entries).toHaveLength(2);
    expect((await readSyslogFile(f, query({ maxLevel: 7, unit: "sshd.service" }), opts)).entries).toHaveLength(2);
    const t = (h: number, m: number, s: number) => new Date(2026, 10, 27, h, m, s).getTime() / 1000;
    const window = await readSyslogFile(f, query({ maxLevel: 7, since: t(8, 53, 58), until: t(8, 54, 2) }), opts);
    expect(window.entries.map((e) => e.timestamp)).toEqual([t(8, 54, 2), t(8, 54, 0), t(8, 53, 59), t(8, 53, 58)]);
    const two = await readSyslogFile(f, query({ maxLevel: 7, limit: 2 }), opts);
    expect(two.entries.map((e) => e.source)).toEqual(["rsyslogd", "systemd"]);
  });

  it("reads no more than the byte cap and drops the line it cut", async () => {
    const f = testdata("syslog-rfc3164.log");
    const size = readFileSync(f).length;
    const r = await readSyslogFile(f, query({ maxLevel: 7 }), { maxBytes: 300, chunkBytes: 64, nowMs: now });
    expect(r.truncated).toBe(true);
    expect(r.bytesRead).toBe(300);
    expect(r.bytesRead).toBeLessThan(size);
    // Only the lines wholly inside the last 300 bytes.
    const tail = readFileSync(f).subarray(size - 300).toString("utf8");
    expect(r.entries).toHaveLength(tail.split("\n").filter(Boolean).length - 1);
  });

  it("keeps multi-byte characters and continuation lines whole across tiny chunks", async () => {
    const file = path.join(tmp, "iso.log");
    writeFileSync(file, read("journalctl-p4-short-iso.txt"));
    for (const chunkBytes of [3, 7, 4096]) {
      const r = await readSyslogFile(file, query({ maxLevel: 7 }), { maxBytes: 1 << 20, chunkBytes, nowMs: now });
      expect(r.entries).toHaveLength(12);
      expect(r.entries[1]!.message).toBe('alert with "quotes" and unicode ✓');
      expect(r.entries[1]!.level).toBe(1); // keyword "alert"
      const wrapped = r.entries.find((e) => e.message.startsWith("amd_pstate: The CPPC"));
      expect(wrapped?.message).toBe("amd_pstate: The CPPC feature is supported but currently disabled by the BIOS.\nPlease enable it if your BIOS has the CPPC option.");
    }
  });

  it("takes the level from <PRI> in RFC 5424 files", async () => {
    const r = await readSyslogFile(testdata("syslog-rfc5424.log"), query({ maxLevel: 7 }), { maxBytes: 1 << 20, nowMs: now });
    expect(r.entries.map((e) => [e.source, e.level, e.pid, e.timestamp])).toEqual([
      ["kernel", 0, undefined, Date.UTC(2026, 10, 27, 8, 54, 1) / 1000],
      ["app", 4, undefined, Date.UTC(2026, 10, 27, 8, 54, 0) / 1000],
      ["spectra-test", 3, 20160, Date.UTC(2026, 10, 27, 8, 53, 59) / 1000],
      ["sshd", 3, 20158, Date.UTC(2026, 10, 27, 8, 53, 58) / 1000],
      ["sshd", 6, 20158, Date.UTC(2026, 10, 27, 8, 53, 57) / 1000],
      ["systemd", 6, 1, Date.UTC(2026, 10, 27, 8, 53, 50) / 1000],
    ]);
    expect(r.entries[1]!.message).toBe("BOM-prefixed message");
    expect(r.entries[2]!.message).toBe("disk /dev/sdz failed to respond");
    // With <PRI> no keyword counts: "error: maximum authentication…" is ERROR because of <35>, not of "error".
    const errors = await readSyslogFile(testdata("syslog-rfc5424.log"), query({ maxLevel: 3 }), { maxBytes: 1 << 20, nowMs: now });
    expect(errors.entries.map((e) => e.level)).toEqual([0, 3, 3]);
  });
});

describe("kernel ring buffer", () => {
  it("parses /dev/kmsg records", () => {
    expect(parseKmsgLine("3,845,5123456789,-;EXT4-fs error (device sdb1)")).toEqual({
      level: 3,
      facility: 0,
      seq: 845,
      usec: 5123456789,
      message: "EXT4-fs error (device sdb1)",
    });
    expect(parseKmsgLine("3,848,5214000000,c;error -71 caf\\xc3\\xa9 \\x1b[0m\\x5c")?.message).toBe("error -71 café \u001b[0m\\");
    expect(parseKmsgLine(" SUBSYSTEM=block")).toBeUndefined();
    const user = parseKmsgLine("30,846,5200000000,-;systemd[1]: Started systemd-journald.service - Journal Service.")!;
    expect(kmsgEntry(user, 1_795_000_000_000)).toEqual({
      timestamp: 1_795_005_200,
      source: "systemd",
      level: 6,
      message: "Started systemd-journald.service - Journal Service.",
      pid: 1,
      processName: "systemd",
    });
  });

  it("reads records newest first, keeping the newest `limit`", async () => {
    const boot = 1_795_000_000_000;
    const r = await readKmsg(testdata("kmsg.txt"), query({ maxLevel: 3 }), { maxBytes: 1 << 20, bootTimeMs: boot });
    expect(r.entries.map((e) => [e.timestamp, e.source, e.level])).toEqual([
      [1_795_005_214, "kernel", 3],
      [1_795_005_213, "kernel", 3],
      [1_795_005_123, "kernel", 3],
    ]);
    const one = await readKmsg(testdata("kmsg.txt"), query({ maxLevel: 7, limit: 1 }), { maxBytes: 1 << 20, bootTimeMs: boot });
    expect(one.entries.map((e) => e.message)).toEqual(["usb 1-1: device descriptor read/64, error -71 café \u001b[0m\\"]);
    const kernelOnly = await readKmsg(testdata("kmsg.txt"), query({ maxLevel: 7, unit: "kernel" }), { maxBytes: 1 << 20, bootTimeMs: boot });
    expect(kernelOnly.entries.every((e) => e.source === "kernel")).toBe(true);
    expect(kernelOnly.entries).toHaveLength(6);
    const capped = await readKmsg(testdata("kmsg.txt"), query({ maxLevel: 7 }), { maxBytes: 10, bootTimeMs: boot });
    expect(capped.truncated).toBe(true);
  });

  const kmsgReadable = (() => {
    try {
      accessSync("/dev/kmsg", constants.R_OK);
      return true;
    } catch {
      return false;
    }
  })();
  it.skipIf(!kmsgReadable)("live: reads this machine's /dev/kmsg without blocking", async () => {
    const started = Date.now();
    const r = await readKmsg("/dev/kmsg", query({ maxLevel: 7, limit: 5 }), { maxBytes: 64 << 20 });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(r.entries.length).toBeGreaterThan(0);
    expect(r.entries.length).toBeLessThanOrEqual(5);
    const ts = r.entries.map((e) => e.timestamp);
    expect([...ts].sort((a, b) => b - a)).toEqual(ts);
    expect(ts[0]!).toBeLessThanOrEqual(Date.now() / 1000 + 1);
  });
});

describe("fetch_logs on Linux: sources and fallbacks", () => {
  it("answers from the journal when it is readable", async () => {
    const exec = fakeExec(ok(read("journalctl-p3-json.ndjson")));
    const r = await fetchLogsLinux(query(), { host: hostWith(exec), signal, logger });
    expect(r.source).toBe("journal");
    expect(r.entries).toHaveLength(4);
    expect(r.entries[0]).toMatchObject({ timestamp: 1795769638n, source: "spectra-test", level: "ERROR", pid: 20156, processName: "logger" });
  });

  it("live: falls back to a syslog file the test writes when the journal is unreadable", async () => {
    const file = path.join(tmp, "syslog");
    const now = new Date();
    const stamp = (d: Date) => `${d.toLocaleString("en-US", { month: "short" })} ${String(d.getDate()).padStart(2, " ")} ${d.toTimeString().slice(0, 8)}`;
    const earlier = new Date(now.getTime() - 60_000);
    writeFileSync(
      file,
      [
        `${stamp(earlier)} testhost app[1]: started fine`,
        `${stamp(earlier)} testhost app[1]: error: could not open /data`,
        `${stamp(now)} testhost sshd[2]: warning: weak key`,
        `${stamp(now)} testhost sshd[2]: Failed password for root`,
        "",
      ].join("\n"),
    );
    const exec = fakeExec(NOPERM);
    const r = await fetchLogsLinux(query({ maxLevel: 4 }), { host: hostWith(exec), signal, logger }, { syslogPaths: [path.join(tmp, "missing"), file] });
    expect(r.source).toBe("syslog");
    expect(r.entries.map((e) => [e.source, e.level, e.message])).toEqual([
      ["sshd", "ERROR", "Failed password for root"],
      ["sshd", "WARNING", "warning: weak key"],
      ["app", "ERROR", "error: could not open /data"],
    ]);
    expect(Number(r.entries[0]!.timestamp)).toBe(Math.floor(now.getTime() / 1000));
  });

  it("falls back to the kernel ring buffer, then fails naming every source", async () => {
    const exec = fakeExec(NOPERM);
    const host = hostWith(exec);
    const k = await fetchLogsLinux(query(), { host, signal, logger }, { syslogPaths: [path.join(tmp, "nope")], kmsgPath: testdata("kmsg.txt"), bootTimeMs: 0 });
    expect(k.source).toBe("kmsg");
    expect(k.entries).toHaveLength(3);
    await expect(
      fetchLogsLinux(query(), { host, signal, logger }, { syslogPaths: [path.join(tmp, "nope")], kmsgPath: path.join(tmp, "no-kmsg") }),
    ).rejects.toThrow(
      `no readable log source: journal: journal not readable: No journal files were opened due to insufficient permissions. (add the agent's user to the systemd-journal or adm group); ${path.join(tmp, "nope")}: ENOENT; ${path.join(tmp, "no-kmsg")}: ENOENT`,
    );
  });

  it("uses the host root for the default syslog paths", async () => {
    const root = mkdtempSync(path.join(tmp, "rootfs-"));
    const dir = path.join(root, "var", "log");
    (await import("node:fs")).mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, "messages"), "Nov 27 08:53:58 vm sshd[1]: error: boom\n");
    const host: HostAccess = { ...hostWith(fakeExec(NOPERM)), paths: { procRoot: "/proc", sysRoot: "/sys", rootfs: root } };
    const r = await fetchLogsLinux(query(), { host, signal, logger }, { now: () => new Date(2026, 11, 1).getTime() });
    expect(r.source).toBe("syslog");
    expect(r.entries[0]?.message).toBe("error: boom");
  });

  const journalctlRuns = spawnSync("journalctl", ["-n", "1", "-o", "json", "--no-pager"], { encoding: "utf8", timeout: 10_000 });
  const journalHasEntries = journalctlRuns.status === 0 && journalctlRuns.stdout.trim() !== "";
  const journalEmpty = journalctlRuns.status === 0 && journalctlRuns.stdout.trim() === "";

  it.skipIf(!journalHasEntries)("live: reads this machine's journal through the real journalctl", async () => {
    const r = await fetchLogsLinux(query({ maxLevel: 7, limit: 5 }), { host: { ...hostWith(createCommandRunner()) }, signal, logger });
    expect(r.source).toBe("journal");
    expect(r.entries.length).toBeGreaterThan(0);
    expect(r.entries.length).toBeLessThanOrEqual(5);
    const ts = r.entries.map((e) => Number(e.timestamp));
    expect([...ts].sort((a, b) => b - a)).toEqual(ts);
  });

  it.skipIf(!journalEmpty)("live: an empty journal (journald not running here) falls back to the syslog file", async () => {
    const file = path.join(tmp, "syslog-live");
    writeFileSync(file, "Nov 27 08:53:58 vm sshd[1]: error: live fallback\n");
    const r = await fetchLogsLinux(query(), { host: hostWith(createCommandRunner()), signal, logger }, {
      syslogPaths: [file],
      now: () => new Date(2026, 11, 1).getTime(),
    });
    expect(r.source).toBe("syslog");
    expect(r.entries.map((e) => e.message)).toEqual(["error: live fallback"]);
  });
});

describe("fetch_logs on Windows (hand-written samples)", () => {
  it("maps syslog thresholds to Windows levels", () => {
    expect(windowsLevelsFor(0)).toEqual([1]);
    expect(windowsLevelsFor(2)).toEqual([1]);
    expect(windowsLevelsFor(3)).toEqual([1, 2]);
    expect(windowsLevelsFor(5)).toEqual([1, 2, 3]);
    expect(windowsLevelsFor(6)).toEqual([1, 2, 3, 0, 4]);
    expect(windowsLevelsFor(7)).toEqual([1, 2, 3, 0, 4, 5]);
  });

  it("parses Get-WinEvent JSON newest first", () => {
    const entries = parseWinEvents(read("winevent-system.json"));
    expect(entries.map((e) => [e.timestamp, e.source, e.level, e.pid])).toEqual([
      [Date.UTC(2026, 10, 27, 9, 10, 2) / 1000, "Microsoft-Windows-Kernel-Power", 2, 4],
      [Date.UTC(2026, 10, 27, 8, 53, 58) / 1000, "Service Control Manager", 3, 812], // 08:53:58.123
      [1795769638, "Service Control Manager", 6, 812], // \/Date(1795769638000)\/ = 08:53:58.000
      [Date.UTC(2026, 10, 27, 8, 40, 0) / 1000, "Microsoft-Windows-User Profiles Service", 4, 1234],
      [Date.UTC(2026, 10, 27, 8, 30, 0) / 1000, "LegacyApp", 3, undefined],
      [Date.UTC(2026, 10, 27, 8, 20, 0) / 1000, "Microsoft-Windows-Security-SPP", 6, undefined],
    ]);
    expect(entries[1]!.message).toBe("The Spectra Agent service failed to start due to the following error: \nThe system cannot find the file specified.");
    expect(entries[4]!.message).toBe("");
    expect(parseWinEvents(read("winevent-single.json"))).toHaveLength(1);
    expect(parseWinEvents(read("winevent-noevents.json"))).toEqual([]);
    expect(parseWinEvents("")).toEqual([]);
    expect(() => parseWinEvents(read("winevent-error.json"))).toThrow("Get-WinEvent: Attempted to perform an unauthorized operation.");
  });

  it("passes the query as base64 data, never as script text", () => {
    const q = winEventQuery(query({ unit: "Service Control Manager", since: 1_795_769_000, limit: 100 }));
    expect(q).toEqual({
      logs: ["System", "Application"],
      levels: [1, 2],
      provider: "Service Control Manager",
      start: "2026-11-27T08:43:20.000Z",
      end: "",
      max: 100,
      msgmax: 2048,
    });
    expect(winEventQuery(query({ unit: "system" }))).toMatchObject({ logs: ["System"], provider: "" });
    const script = fetchLogsScript(q);
    expect(script).not.toContain("Service Control Manager");
    const b64 = /FromBase64String\('([A-Za-z0-9+/=]+)'\)/.exec(script)![1]!;
    expect(JSON.parse(Buffer.from(b64, "base64").toString("utf8"))).toEqual(q);
    expect(script.replace(b64, "__PARAMS__")).toBe(FETCH_LOGS_SCRIPT_TEMPLATE);
  });

  it("queries the shared session and retries smaller when the answer is too large", async () => {
    const scripts: string[] = [];
    let calls = 0;
    const ps = {
      query: async (script: string) => {
        scripts.push(script);
        if (calls++ === 0) throw new Error("powershell answer exceeds 16777216 bytes");
        return read("winevent-system.json");
      },
    };
    const host = hostWith(fakeExec(new Error("no exec")), "windows");
    const r = await fetchLogsWindows(query({ limit: 25_000 }), { host, signal, logger }, ps);
    expect(r.source).toBe("eventlog");
    expect(r.entries).toHaveLength(6);
    expect(r.entries[0]).toMatchObject({ source: "Microsoft-Windows-Kernel-Power", level: "CRITICAL", pid: 4 });
    const data = (s: string) => JSON.parse(Buffer.from(/'([A-Za-z0-9+/=]+)'/.exec(s)![1]!, "base64").toString("utf8")) as { max: number; msgmax: number };
    expect(scripts.map(data).map((d) => [d.max, d.msgmax])).toEqual([
      [25_000, 2048],
      [6250, 512],
    ]);
  });
});

describe("fetch_logs through the registry", () => {
  it("runs as a command, also when queued by the legacy API with only a type", async () => {
    const exec = fakeExec(ok(read("journalctl-p3-json.ndjson")));
    const outcome = await runCommand(
      create(CommandSchema, { id: "l1", type: CommandType.FETCH_LOGS, params: { case: "fetchLogs", value: { minLevel: LogLevel.CRITICAL, limit: 20 } } }),
      { host: hostWith(exec), logger, timeoutMs: 10_000 },
    );
    expect(outcome.error).toBe("");
    expect(outcome.result.case === "fetchLogs" && outcome.result.value.entries.map((e) => e.level)).toEqual(["CRITICAL", "ALERT"]);
    expect(exec.calls[0]!.args).toEqual(expect.arrayContaining(["-n", "20", "-p", "2"]));
    const legacy = await runCommand(create(CommandSchema, { id: "l2", type: CommandType.FETCH_LOGS }), { host: hostWith(exec), logger, timeoutMs: 10_000 });
    expect(legacy.error).toBe("");
    expect(exec.calls[1]!.args).toEqual(expect.arrayContaining(["-n", "10000", "-p", "3"]));
  });

  it("refuses bad parameters and a second run at the same time", async () => {
    const exec = fakeExec(ok(read("journalctl-p3-json.ndjson")));
    const bad = await runCommand(
      create(CommandSchema, { id: "l3", type: CommandType.FETCH_LOGS, params: { case: "fetchLogs", value: { unit: "-f; rm -rf /" } } }),
      { host: hostWith(exec), logger, timeoutMs: 10_000 },
    );
    expect(bad.error).toBe('invalid unit "-f; rm -rf /"');
    expect(exec.calls).toHaveLength(0); // nothing ran
    let release!: () => void;
    const slow: CommandRunner = { run: () => new Promise((resolve) => (release = () => resolve(ok(read("journalctl-p3-json.ndjson"))))) };
    const host = hostWith(slow);
    const first = fetchLogsDiagnostic.run(params(), { host, logger, signal });
    await expect(fetchLogsDiagnostic.run(params(), { host, logger, signal })).rejects.toThrow("fetch_logs is already running on this agent");
    await new Promise((r) => setTimeout(r, 10));
    release();
    expect((await first).entries).toHaveLength(4);
  });
});
