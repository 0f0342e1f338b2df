import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger, type Logger } from "../../../common/logger.js";
import type { ApplicationList } from "../../../gen/spectra/v1/metrics_pb.js";
import type { CommandRunner } from "../../host/host-access.js";
import { fakeRunnerTable } from "../../host/testing/fake-runner.js";
import type { PowerShellQuery } from "../../host/powershell.js";
import { createHostAccess } from "../../host/index.js";
import { NO_DATA, type Payload } from "../types.js";
import applications from "./index.js";
import { createLinuxApplicationsCollector } from "./linux.js";
import { UNINSTALL_SCRIPT } from "./windows-parse.js";
import { createWindowsApplicationsCollector } from "./windows.js";

const testdata = path.join(import.meta.dirname, "testdata");
const read = (f: string): string => fs.readFileSync(path.join(testdata, f), "utf8");


/**
 * A command runner answering `"<file> <args…>"` from a table (entries may be functions, to change answers between
 * runs); commands missing from the table fail to start with ENOENT, like a program that is not installed.
 */

const DPKG = "dpkg-query -W -f ${Package}\\t${Version}\\t${Architecture}\\t${db:Status-Abbrev}\\t${Maintainer}\\n";
const RPM = "rpm -qa --qf %{NAME}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\t%{ARCH}\\t%{VENDOR}\\n";
const SNAP = "snap list";
const FLATPAK = "flatpak list --app --columns=application,version,arch,origin";

const dpkgLines = (...pkgs: Array<[string, string]>): string =>
  pkgs.map(([n, v]) => `${n}\t${v}\tamd64\tii \tDebian Maintainers <x@debian.org>\n`).join("");

/** A local time (the process time zone), as the collector's clock returns it. */
const at = (day: number, hour: number, minute = 0): number => new Date(2024, 0, day, hour, minute).getTime();

const signal = new AbortController().signal;
let root: string;
let emptyRoot: string;

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "spectra-apps-"));
  emptyRoot = path.join(root, "empty");
  fs.mkdirSync(emptyRoot);
});
afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function captureLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: "debug" }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { logger, lines };
}

function linux(
  exec: CommandRunner,
  clock: { t: number },
  opts: { options?: Record<string, unknown>; logger?: Logger; fileRoot?: string } = {},
) {
  return createLinuxApplicationsCollector(
    { host: createHostAccess({}, { platform: "linux", exec }), logger: opts.logger ?? silentLogger(), options: opts.options ?? {} },
    { now: () => clock.t, fileRoot: opts.fileRoot ?? emptyRoot },
  );
}

const list = (out: Payload[] | typeof NO_DATA): ApplicationList => {
  expect(out).not.toBe(NO_DATA);
  const payloads = out as Payload[];
  expect(payloads).toHaveLength(1);
  expect(payloads[0]!.case).toBe("applicationList");
  return payloads[0]!.value as ApplicationList;
};

describe("applications on Linux: sources", () => {
  it("runs every source's command with a timeout and an output cap; dpkg + snap + flatpak together", async () => {
    const exec = fakeRunnerTable({
      [DPKG]: { stdout: dpkgLines(["bash", "5.2.15-2+b8"], ["zlib1g", "1:1.2.13.dfsg-1"]) },
      [SNAP]: { stdout: read("snap/list.txt") },
      [FLATPAK]: { stdout: read("flatpak/list-columns.tsv") },
    });
    const l = list(await linux(exec, { t: at(15, 10) }).collect(signal));
    expect(l.applications).toHaveLength(2 + 7 + 4);
    expect(new Set(l.applications.map((a) => a.source))).toEqual(new Set(["dpkg", "snap", "flatpak"]));
    expect(l.applications.map((a) => a.name)).toEqual([...l.applications.map((a) => a.name)].sort());
    expect(l.applications.find((a) => a.name === "bash")).toMatchObject({
      version: "5.2.15-2+b8",
      source: "dpkg",
      arch: "amd64",
      vendor: "Debian Maintainers",
    });
    expect(l.added).toEqual([]);
    expect(l.removed).toEqual([]);
    expect(l.upgraded).toEqual([]);
    expect(exec.calls.map((c) => c.file).sort()).toEqual(["dpkg-query", "flatpak", "pacman", "rpm", "snap"]);
    for (const c of exec.calls) {
      expect(c.opts.timeoutMs).toBe(60_000);
      expect(c.opts.maxOutputBytes).toBe(32 * 1024 * 1024);
      expect(c.opts.signal).toBe(signal);
    }
    expect(exec.calls.find((c) => c.file === "dpkg-query")!.args).toEqual([
      "-W",
      "-f",
      "${Package}\\t${Version}\\t${Architecture}\\t${db:Status-Abbrev}\\t${Maintainer}\\n",
    ]);
  });

  it("rpm, pacman and apk (database file) sources", async () => {
    const fileRoot = path.join(root, "alpine");
    fs.mkdirSync(path.join(fileRoot, "lib/apk/db"), { recursive: true });
    fs.copyFileSync(path.join(testdata, "apk/installed"), path.join(fileRoot, "lib/apk/db/installed"));
    const exec = fakeRunnerTable({ [RPM]: { stdout: read("rpm/qa.tsv") }, "pacman -Q": { stdout: read("pacman/Q.txt") } });
    const l = list(await linux(exec, { t: at(15, 10) }, { fileRoot }).collect(signal));
    const count = (s: string): number => l.applications.filter((a) => a.source === s).length;
    expect([count("rpm"), count("pacman"), count("apk")]).toEqual([6, 7, 4]);
  });

  it("dpkg-query exit 1 'no packages found' is an empty list; snap's 'no snaps' too", async () => {
    const stderr = read("dpkg/dpkg-query-W-some.stderr").split("\n")[0]!;
    const exec = fakeRunnerTable({ [DPKG]: { exitCode: 1, stderr }, [SNAP]: { stderr: read("snap/none.stderr") } });
    expect(list(await linux(exec, { t: at(15, 10) }).collect(signal)).applications).toEqual([]);
  });

  it("flatpak without --columns falls back to the plain list", async () => {
    const exec = fakeRunnerTable({
      [FLATPAK]: { exitCode: 1, stderr: read("flatpak/unknown-option.stderr") },
      "flatpak list --app": { stdout: read("flatpak/list-old.txt") },
    });
    const l = list(await linux(exec, { t: at(15, 10) }).collect(signal));
    expect(l.applications.map((a) => `${a.name} ${a.arch ?? ""}`)).toEqual(["org.gnome.Builder x86_64", "org.gnome.Recipes x86_64"]);
  });

  it("one failing source is logged once and does not hide the others; recovery is logged", async () => {
    let snapUp = false;
    const exec = fakeRunnerTable({
      [DPKG]: { stdout: dpkgLines(["bash", "1"]) },
      [SNAP]: () => (snapUp ? { stdout: read("snap/list-ascii.txt") } : { exitCode: 1, stderr: read("snap/no-snapd.stderr") }),
    });
    const { logger, lines } = captureLogger();
    const clock = { t: at(15, 10) };
    const c = linux(exec, clock, { logger });
    expect(list(await c.collect(signal)).applications.map((a) => a.name)).toEqual(["bash"]);
    clock.t = at(16, 2);
    expect(await c.collect(signal)).toEqual([]);
    const warns = lines.filter((l) => l["level"] === 40);
    expect(warns).toHaveLength(1);
    expect(warns[0]).toMatchObject({ source: "snap", msg: expect.stringMatching(/source failed/) });
    expect(JSON.stringify(warns[0]!["err"])).toMatch(/cannot communicate with server/);
    snapUp = true;
    clock.t = at(17, 2);
    // snap failed from the start: its snaps appear in the list but are not "added".
    const l = list(await c.collect(signal));
    expect(l.applications).toHaveLength(4);
    expect(l.added).toEqual([]);
    expect(lines.filter((x) => x["level"] === 30 && x["source"] === "snap")).toHaveLength(1);
  });

  it("every existing source failing is an error, retried at the next wake-up", async () => {
    let fail = true;
    const exec = fakeRunnerTable({
      [DPKG]: () => (fail ? { exitCode: 2, stderr: "dpkg-query: error: parsing file '/var/lib/dpkg/status' near line 7" } : { stdout: dpkgLines(["a", "1"]) }),
      [SNAP]: { exitCode: 1, stderr: read("snap/no-snapd.stderr") },
    });
    const clock = { t: at(15, 10) };
    const c = linux(exec, clock);
    await expect(c.collect(signal)).rejects.toThrow(/every package source failed: dpkg: dpkg-query -W: exit 2: .*parsing file.*; snap: snap list: exit 1/);
    fail = false;
    clock.t = at(15, 11);
    expect(list(await c.collect(signal)).applications.map((a) => a.name)).toEqual(["a"]);
    expect(exec.calls.map((c) => c.file).filter((f) => f === "dpkg-query")).toHaveLength(2);
  });

  it("a timed-out or truncated command is a failure of its source", async () => {
    const exec = fakeRunnerTable({ [DPKG]: { timedOut: true, exitCode: null, signal: "SIGKILL" }, "pacman -Q": { truncated: true, stdout: "a 1\n" } });
    await expect(linux(exec, { t: at(15, 10) }).collect(signal)).rejects.toThrow(/dpkg-query -W: timed out; pacman: pacman -Q: output exceeded/);
  });

  it("an aborted run throws and is not recorded: the next wake-up takes the inventory", async () => {
    const exec = fakeRunnerTable({ [DPKG]: { stdout: dpkgLines(["a", "1"]) } });
    const clock = { t: at(15, 10) };
    const c = linux(exec, clock);
    await expect(c.collect(AbortSignal.abort(new Error("run timed out")))).rejects.toThrow(/aborted/);
    clock.t = at(15, 11);
    expect(list(await c.collect(signal)).applications).toHaveLength(1);
  });

  it("no package source at all: NO_DATA, and NO_DATA without running anything until the next night", async () => {
    const exec = fakeRunnerTable({});
    const clock = { t: at(15, 10) };
    const c = linux(exec, clock);
    expect(await c.collect(signal)).toBe(NO_DATA);
    const n = exec.calls.length;
    expect(n).toBe(5);
    clock.t = at(15, 11);
    expect(await c.collect(signal)).toBe(NO_DATA);
    expect(exec.calls).toHaveLength(n);
    clock.t = at(16, 2);
    expect(await c.collect(signal)).toBe(NO_DATA);
    expect(exec.calls).toHaveLength(2 * n);
  });
});

describe("applications: daily schedule and change detection", () => {
  it("inventory at start, then not again until the first wake-up at or after 02:00 local next day", async () => {
    const exec = fakeRunnerTable({ [DPKG]: { stdout: dpkgLines(["a", "1"]) } });
    const clock = { t: at(15, 10) };
    const c = linux(exec, clock);
    const inventories = (): number => exec.calls.filter((x) => x.file === "dpkg-query").length;
    list(await c.collect(signal));
    for (const [day, hour, minute] of [[15, 11, 0], [15, 23, 59], [16, 0, 30], [16, 1, 59]] as const) {
      clock.t = at(day, hour, minute);
      expect(await c.collect(signal)).toEqual([]);
    }
    expect(inventories()).toBe(1);
    clock.t = at(16, 2, 3);
    expect(await c.collect(signal)).toEqual([]); // ran, unchanged
    expect(inventories()).toBe(2);
    clock.t = at(16, 3);
    await c.collect(signal);
    expect(inventories()).toBe(2);
    // A missed night (agent suspended): the next wake-up after 02:00 runs once.
    clock.t = at(18, 14);
    await c.collect(signal);
    clock.t = at(18, 15);
    await c.collect(signal);
    expect(inventories()).toBe(3);
  });

  it("started before 02:00: the nightly run comes the same night; `at` is configurable", async () => {
    const exec = fakeRunnerTable({ [DPKG]: { stdout: dpkgLines(["a", "1"]) } });
    const clock = { t: at(15, 1) };
    const c = linux(exec, clock);
    await c.collect(signal);
    clock.t = at(15, 2);
    await c.collect(signal);
    expect(exec.calls.map((c) => c.file).filter((f) => f === "dpkg-query")).toHaveLength(2);

    const exec2 = fakeRunnerTable({ [DPKG]: { stdout: dpkgLines(["a", "1"]) } });
    const clock2 = { t: at(15, 10) };
    const c2 = linux(exec2, clock2, { options: { at: "23:30" } });
    await c2.collect(signal);
    clock2.t = at(15, 23, 20);
    await c2.collect(signal);
    clock2.t = at(15, 23, 40);
    await c2.collect(signal);
    expect(exec2.calls.map((c) => c.file).filter((f) => f === "dpkg-query")).toHaveLength(2);
  });

  it("sends only changes: added, removed and upgraded against the last inventory sent", async () => {
    let stdout = dpkgLines(["bash", "5.2.15-2+b2"], ["libssl3", "3.0.11-1~deb12u2"], ["vim", "2:9.0.1378-2"]);
    const exec = fakeRunnerTable({ [DPKG]: () => ({ stdout }) });
    const clock = { t: at(15, 10) };
    const c = linux(exec, clock);
    expect(list(await c.collect(signal)).applications).toHaveLength(3);
    clock.t = at(16, 2);
    expect(await c.collect(signal)).toEqual([]);
    stdout = dpkgLines(["bash", "5.2.15-2+b8"], ["curl", "7.88.1-10+deb12u5"], ["libssl3", "3.0.13-1~deb12u1"]);
    clock.t = at(17, 2);
    const l = list(await c.collect(signal));
    expect(l.applications.map((a) => `${a.name} ${a.version}`)).toEqual(["bash 5.2.15-2+b8", "curl 7.88.1-10+deb12u5", "libssl3 3.0.13-1~deb12u1"]);
    expect(l.added.map((a) => a.name)).toEqual(["curl"]);
    expect(l.removed.map((a) => `${a.name} ${a.version}`)).toEqual(["vim 2:9.0.1378-2"]);
    expect(l.upgraded.map((u) => [u.name, u.source, u.fromVersion, u.toVersion])).toEqual([
      ["bash", "dpkg", "5.2.15-2+b2", "5.2.15-2+b8"],
      ["libssl3", "dpkg", "3.0.11-1~deb12u2", "3.0.13-1~deb12u1"],
    ]);
    clock.t = at(18, 2);
    expect(await c.collect(signal)).toEqual([]);
  });

  it("full resend of an unchanged inventory after `full_resend`", async () => {
    const exec = fakeRunnerTable({ [DPKG]: { stdout: dpkgLines(["a", "1"]) } });
    const clock = { t: at(15, 10) };
    const c = linux(exec, clock, { options: { full_resend: "2d" } });
    list(await c.collect(signal));
    clock.t = at(16, 2);
    expect(await c.collect(signal)).toEqual([]);
    clock.t = at(17, 2); // 1 d 16 h after the last send
    expect(await c.collect(signal)).toEqual([]);
    clock.t = at(18, 2);
    const l = list(await c.collect(signal));
    expect(l.applications).toHaveLength(1);
    expect([l.added, l.removed, l.upgraded]).toEqual([[], [], []]);
  });

  it("default 7 days: a run a few minutes earlier in the day than a week ago still resends", async () => {
    const exec = fakeRunnerTable({ [DPKG]: { stdout: dpkgLines(["a", "1"]) } });
    const clock = { t: at(15, 2, 10) };
    const c = linux(exec, clock);
    list(await c.collect(signal));
    for (let d = 16; d <= 21; d++) {
      clock.t = at(d, 2, 5);
      expect(await c.collect(signal)).toEqual([]);
    }
    clock.t = at(22, 2, 1);
    list(await c.collect(signal));
  });

  it("validates the options at create", async () => {
    const exec = fakeRunnerTable({});
    for (const bad of [{ at: "2:00" }, { at: "24:00" }, { at: 200 }, { full_resend: "5m" }, { full_resend: "soon" }]) {
      expect(() => linux(exec, { t: 0 }, { options: bad })).toThrow(/collectors\.applications\.options\.(at|full_resend)/);
    }
    const host = createHostAccess({}, { platform: "windows", exec });
    await expect(applications.create({ host, logger: silentLogger(), options: { at: "noon" } })).rejects.toThrow(/"HH:MM"/);
    expect(() => linux(exec, { t: 0 }, { options: { at: "00:00", full_resend: "1d" } })).not.toThrow();
    expect(exec.calls).toEqual([]);
  });
});

describe("applications on Windows", () => {
  function fakePs(answers: Array<string | Error>): PowerShellQuery & { scripts: string[]; timeouts: number[] } {
    const scripts: string[] = [];
    const timeouts: number[] = [];
    return {
      scripts,
      timeouts,
      async query(script, timeoutMs) {
        scripts.push(script);
        timeouts.push(timeoutMs);
        const a = answers.shift();
        if (a === undefined) throw new Error("no more answers");
        if (a instanceof Error) throw a;
        return a;
      },
    };
  }

  it("the Uninstall keys through the shared session; errors retried; changes detected", async () => {
    const base = read("windows/uninstall.json");
    const upgraded = base.replace('"DisplayVersion":"8.6.2"', '"DisplayVersion":"8.6.4"');
    const ps = fakePs([new Error("powershell query timed out after 60000 ms"), base, upgraded]);
    const clock = { t: at(15, 10) };
    const c = createWindowsApplicationsCollector(
      { host: createHostAccess({}, { platform: "windows", exec: fakeRunnerTable({}) }), logger: silentLogger(), options: {} },
      { ps, now: () => clock.t },
    );
    await expect(c.collect(signal)).rejects.toThrow(/timed out/);
    clock.t = at(15, 11);
    const first = list(await c.collect(signal));
    expect(first.applications).toHaveLength(8);
    expect(first.applications.every((a) => a.source === "registry")).toBe(true);
    expect(first.applications.filter((a) => a.arch === "x86")).toHaveLength(3);
    clock.t = at(16, 2);
    const next = list(await c.collect(signal));
    expect(next.upgraded.map((u) => [u.name, u.fromVersion, u.toVersion])).toEqual([["Notepad++ (32-bit x86)", "8.6.2", "8.6.4"]]);
    expect(ps.scripts).toEqual([UNINSTALL_SCRIPT, UNINSTALL_SCRIPT, UNINSTALL_SCRIPT]);
    expect(ps.timeouts.every((t) => t === 60_000)).toBe(true);
    await c.close?.();
  });
});
