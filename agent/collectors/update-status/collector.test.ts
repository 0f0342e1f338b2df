import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../../common/logger.js";
import type { UpdateStatus } from "../../../gen/spectra/v1/metrics_pb.js";
import type { CommandRunner, ExecResult } from "../../host/host-access.js";
import { fakeRunnerTable, type Call } from "../../host/testing/fake-runner.js";
import { createHostAccess } from "../../host/index.js";
import { NO_DATA, type Payload } from "../types.js";
import { BackgroundCheck } from "./background-check.js";
import updateStatus from "./index.js";
import { createLinuxUpdateStatusCollector } from "./linux.js";
import { MAX_LISTED_PACKAGES, updateStatusPayload } from "./payload.js";
import { windowsUpdateScript } from "./windows-parse.js";
import { createWindowsUpdateStatusCollector } from "./windows.js";

const testdata = path.join(import.meta.dirname, "testdata");
const read = (f: string): string => fs.readFileSync(path.join(testdata, f), "utf8");



/**
 * A command runner answering `"<file> <args…>"` from a table; commands missing from the table fail to start
 * with ENOENT, like a program that is not installed.
 */

const APT = "apt-get -s -o Debug::NoLocking=true -o APT::Get::Show-User-Simulation-Note=false dist-upgrade";
/** The command lines run, in order. */
const commandsOf = (exec: { calls: Call[] }): string[] => exec.calls.map((c) => [c.file, ...c.args].join(" "));

const signal = new AbortController().signal;
let root: string;

/** A file tree under the temporary root: `{ "var/lib/apt/lists/x_Packages": "" }`. */
function files(name: string, content: Record<string, string>): string {
  const base = path.join(root, name);
  fs.mkdirSync(base, { recursive: true });
  for (const [p, text] of Object.entries(content)) {
    fs.mkdirSync(path.dirname(path.join(base, p)), { recursive: true });
    fs.writeFileSync(path.join(base, p), text);
  }
  return base;
}

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "spectra-updates-"));
});
afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function linux(exec: CommandRunner, fileRoot: string, kernelRelease = "6.1.0-18-amd64") {
  return createLinuxUpdateStatusCollector(
    { host: createHostAccess({}, { platform: "linux", exec }), logger: silentLogger(), options: {} },
    { fileRoot, kernelRelease: () => kernelRelease },
  );
}

const status = (out: Payload[] | typeof NO_DATA): UpdateStatus => {
  expect(out).not.toBe(NO_DATA);
  const list = out as Payload[];
  expect(list).toHaveLength(1);
  expect(list[0]!.case).toBe("updateStatus");
  return list[0]!.value as UpdateStatus;
};

const LISTS = { "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4": "" };

describe("linux update_status: apt", () => {
  it("simulates dist-upgrade without locking or refreshing; counts and reboot flag", async () => {
    const exec = fakeRunnerTable({ [APT]: { stdout: read("captured/apt-get-s-dist-upgrade.txt") } });
    const fileRoot = files("apt", { ...LISTS, "run/reboot-required": "*** System restart required ***\n" });
    const s = status(await linux(exec, fileRoot).collect(signal));
    expect(s).toMatchObject({ packageManager: "apt", pendingCount: 126, securityCount: 71, rebootRequired: true });
    expect(s.packages).toHaveLength(126);
    expect(s.packages.find((p) => p.name === "openssl")).toMatchObject({ version: "3.0.22-1~deb12u2", security: true });
    expect(commandsOf(exec)).toEqual([APT]);
    const opts = exec.calls[0]!.opts;
    expect(opts.timeoutMs).toBeGreaterThan(0);
    expect(opts.maxOutputBytes).toBeGreaterThan(0);
    // Never an index refresh.
    expect(commandsOf(exec).join("\n")).not.toMatch(/\bupdate\b/);
  });

  it("reboot-required.pkgs alone also means a reboot; no flag means none", async () => {
    const exec = fakeRunnerTable({ [APT]: { stdout: read("apt/ubuntu-dist-upgrade.txt") } });
    const withPkgs = files("apt-pkgs", { ...LISTS, "var/run/reboot-required.pkgs": "linux-image-5.15.0-92-generic\n" });
    expect(status(await linux(exec, withPkgs).collect(signal))).toMatchObject({ rebootRequired: true, pendingCount: 6, securityCount: 4 });
    const none = files("apt-noflag", LISTS);
    expect(status(await linux(exec, none).collect(signal)).rebootRequired).toBe(false);
  });

  it("without package lists: a clear error instead of a silent zero", async () => {
    const exec = fakeRunnerTable({ [APT]: { stdout: read("captured/apt-get-s-dist-upgrade-no-lists.txt") } });
    await expect(linux(exec, files("apt-nolists", {})).collect(signal)).rejects.toThrow(/no package lists.*apt-get update/);
  });

  it("apt-get failing: the exit code and stderr in the error", async () => {
    const exec = fakeRunnerTable({ [APT]: { exitCode: 100, stderr: "E: The package lists or status file could not be parsed or opened." } });
    await expect(linux(exec, files("apt-fail", LISTS)).collect(signal)).rejects.toThrow(/exit 100: E: The package lists/);
  });

  it("remembers the package manager after the first run", async () => {
    const exec = fakeRunnerTable({ [APT]: { stdout: "" } });
    const c = linux(exec, files("apt-twice", LISTS));
    await c.collect(signal);
    await c.collect(signal);
    expect(commandsOf(exec)).toEqual([APT, APT]);
  });
});

describe("linux update_status: rpm, pacman, apk, zypper (hand-written samples)", () => {
  it("dnf: cache-only check-update (exit 100), security from updateinfo, reboot from needs-restarting", async () => {
    const exec = fakeRunnerTable({
      "dnf -q -C check-update": { stdout: read("dnf/check-update.txt"), exitCode: 100 },
      "dnf -q -C updateinfo list --security": { stdout: read("dnf/updateinfo-security.txt") },
      "needs-restarting -r": { stdout: read("dnf/needs-restarting-required.txt"), exitCode: 1 },
    });
    const s = status(await linux(exec, files("dnf", {})).collect(signal));
    expect(s).toMatchObject({ packageManager: "dnf", pendingCount: 5, securityCount: 2, rebootRequired: true });
    expect(s.packages.filter((p) => p.security).map((p) => p.name)).toEqual(["kernel", "openssl-libs"]);
    expect(commandsOf(exec)).toEqual([APT, "dnf -q -C check-update", "dnf -q -C updateinfo list --security", "needs-restarting -r"]);
  });

  it("dnf: a missing needs-restarting plugin (exit 1) is not read as 'reboot required'", async () => {
    const exec = fakeRunnerTable({
      "dnf -q -C check-update": { stdout: "", exitCode: 0 },
      "dnf -q -C updateinfo list --security": { stdout: "" },
      "dnf -q -C needs-restarting -r": { stderr: read("dnf/no-such-command.stderr"), exitCode: 1 },
    });
    const s = status(await linux(exec, files("dnf-noplugin", {})).collect(signal));
    expect(s).toMatchObject({ packageManager: "dnf", pendingCount: 0, securityCount: 0, rebootRequired: false });
  });

  it("dnf without a metadata cache: an error that says so", async () => {
    const exec = fakeRunnerTable({ "dnf -q -C check-update": { stderr: read("dnf/no-cache.stderr"), exitCode: 1 } });
    await expect(linux(exec, files("dnf-nocache", {})).collect(signal)).rejects.toThrow(/no metadata cache.*makecache/);
  });

  it("yum when there is no dnf", async () => {
    const exec = fakeRunnerTable({
      "yum -q -C check-update": { stdout: read("dnf/check-update.txt"), exitCode: 100 },
      "yum -q -C updateinfo list --security": { exitCode: 1 },
      "needs-restarting -r": { stdout: read("dnf/needs-restarting-ok.txt") },
    });
    expect(status(await linux(exec, files("yum", {})).collect(signal))).toMatchObject({
      packageManager: "yum",
      pendingCount: 5,
      securityCount: 0,
      rebootRequired: false,
    });
  });

  it("pacman: checkupdates; the running kernel's modules gone means a reboot", async () => {
    const exec = fakeRunnerTable({ checkupdates: { stdout: read("pacman/checkupdates.txt") } });
    const fileRoot = files("pacman", { "usr/lib/modules/6.7.5-arch1-1/modules.dep": "" });
    expect(status(await linux(exec, fileRoot, "6.7.4-arch1-1").collect(signal))).toMatchObject({
      packageManager: "pacman",
      pendingCount: 3,
      securityCount: 0,
      rebootRequired: true,
    });
    expect(status(await linux(exec, fileRoot, "6.7.5-arch1-1").collect(signal)).rebootRequired).toBe(false);
  });

  it("pacman: without checkupdates, pacman -Qu (exit 1 and no output = nothing pending)", async () => {
    const exec = fakeRunnerTable({ "pacman -Qu": { exitCode: 1 } });
    expect(status(await linux(exec, files("pacman-qu", {})).collect(signal))).toMatchObject({ packageManager: "pacman", pendingCount: 0 });
    expect(commandsOf(exec).slice(-2)).toEqual(["checkupdates", "pacman -Qu"]);
  });

  it("apk: version -l '<' as an argument (no shell); a missing index is an error", async () => {
    const exec = fakeRunnerTable({ "apk version -l <": { stdout: read("apk/version.txt") } });
    expect(status(await linux(exec, files("apk", {})).collect(signal))).toMatchObject({ packageManager: "apk", pendingCount: 3 });
    expect(exec.calls.at(-1)!.args).toEqual(["version", "-l", "<"]);
    const noIndex = fakeRunnerTable({ "apk version -l <": { stdout: "Installed:   Available:\n", stderr: read("apk/no-index.stderr") } });
    await expect(linux(noIndex, files("apk-noindex", {})).collect(signal)).rejects.toThrow(/no package index/);
  });

  it("zypper: no refresh; security patches counted; needs-rebooting exit 102", async () => {
    const exec = fakeRunnerTable({
      "zypper --non-interactive --no-refresh --quiet list-updates": { stdout: read("zypper/list-updates.txt") },
      "zypper --non-interactive --no-refresh --quiet list-patches --category security": {
        stdout: read("zypper/list-patches-security.txt"),
        exitCode: 101,
      },
      "zypper --non-interactive needs-rebooting": { exitCode: 102 },
    });
    expect(status(await linux(exec, files("zypper", {})).collect(signal))).toMatchObject({
      packageManager: "zypper",
      pendingCount: 3,
      securityCount: 1,
      rebootRequired: true,
    });
  });

  it("no known package manager: NO_DATA", async () => {
    const exec = fakeRunnerTable({});
    expect(await linux(exec, files("none", {})).collect(signal)).toBe(NO_DATA);
    expect(exec.calls.map((c) => c.file)).toEqual([
      "apt-get",
      "dnf",
      "yum",
      "checkupdates",
      "pacman",
      "apk",
      "/sbin/apk",
      "zypper",
    ]);
  });
});

describe("BackgroundCheck", () => {
  it("a check that outlives the run is reported by the next run, which refreshes in the background", async () => {
    let n = 0;
    let release: () => void = () => {};
    const check = new BackgroundCheck(
      (): Promise<number> =>
        new Promise((resolve) => {
          const value = ++n;
          release = () => resolve(value);
        }),
    );
    const run1 = new AbortController();
    const first = check.next(run1.signal);
    run1.abort(new Error("timed out"));
    await expect(first).rejects.toThrow(/next run/);
    expect(check.running).toBe(true);
    release();
    await new Promise((r) => setImmediate(r));
    expect(check.running).toBe(false);

    // Run 2 gets check 1's result at once and starts check 2.
    expect(await check.next(signal)).toBe(1);
    expect(check.running).toBe(true);
    release();
    await new Promise((r) => setImmediate(r));
    // Run 3 gets check 2's result.
    expect(await check.next(signal)).toBe(2);
  });

  it("a fast check reports its own result; errors reach the caller", async () => {
    let fail = false;
    const check = new BackgroundCheck(async () => {
      if (fail) throw new Error("boom");
      return "ok";
    });
    expect(await check.next(signal)).toBe("ok");
    expect(await check.next(signal)).toBe("ok");
    fail = true;
    await expect(check.next(signal)).rejects.toThrow("boom");
  });

  it("close() aborts the check in flight", async () => {
    let seen: AbortSignal | undefined;
    const check = new BackgroundCheck(
      (s) =>
        new Promise<void>((_resolve, reject) => {
          seen = s;
          s.addEventListener("abort", () => reject(s.reason as Error));
        }),
    );
    const run = new AbortController();
    const p = check.next(run.signal);
    check.close();
    await expect(p).rejects.toThrow(/closed/);
    expect(seen?.aborted).toBe(true);
  });
});

describe("updateStatusPayload", () => {
  it("caps the listed packages but not the counts, security ones first", () => {
    const packages = Array.from({ length: MAX_LISTED_PACKAGES + 10 }, (_, i) => ({ name: `p${i}`, security: i >= MAX_LISTED_PACKAGES }));
    const v = updateStatusPayload({ packageManager: "apt", packages, securityCount: 10, rebootRequired: false }).value as UpdateStatus;
    expect(v.pendingCount).toBe(MAX_LISTED_PACKAGES + 10);
    expect(v.packages).toHaveLength(MAX_LISTED_PACKAGES);
    expect(v.packages.slice(0, 10).every((p) => p.security)).toBe(true);
  });
});

describe("windows update_status", () => {
  const PS = "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe";
  const windows = (exec: CommandRunner, options: Record<string, unknown> = {}) =>
    createWindowsUpdateStatusCollector(
      { host: createHostAccess({}, { platform: "windows", exec }), logger: silentLogger(), options },
      { powershellPath: PS },
    );
  /** Answers any PowerShell invocation. */
  const psRunner = (answer: Partial<ExecResult>): CommandRunner & { calls: Call[] } => {
    const calls: Call[] = [];
    return {
      calls,
      async run(file, args, opts) {
        calls.push({ file, args, opts });
        return { stdout: "", stderr: "", exitCode: 0, signal: null, timedOut: false, truncated: false, ...answer };
      },
    };
  };

  it("runs the constant search script in its own powershell.exe with a long timeout", async () => {
    const exec = psRunner({ stdout: read("windows/search-two.json") });
    const s = status(await windows(exec).collect(signal));
    expect(s).toMatchObject({ packageManager: "windows_update", pendingCount: 2, securityCount: 1, rebootRequired: true });
    const call = exec.calls[0]!;
    expect(call.file).toBe(PS);
    expect(call.args.slice(0, -1)).toEqual(["-NoLogo", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-EncodedCommand"]);
    expect(Buffer.from(call.args.at(-1)!, "base64").toString("utf16le")).toBe(windowsUpdateScript(false));
    expect(call.opts.timeoutMs).toBeGreaterThanOrEqual(10 * 60_000);
    expect(call.opts.maxOutputBytes).toBeGreaterThan(0);
  });

  it("option online switches the script; a wrong type is rejected at creation", async () => {
    const exec = psRunner({ stdout: read("windows/search-none.json") });
    await windows(exec, { online: true }).collect(signal);
    expect(Buffer.from(exec.calls[0]!.args.at(-1)!, "base64").toString("utf16le")).toBe(windowsUpdateScript(true));
    expect(() => windows(exec, { online: "yes" })).toThrow(/online/);
  });

  it("errors: the script's error answer, no output, a timeout", async () => {
    await expect(windows(psRunner({ stdout: read("windows/search-error.json") })).collect(signal)).rejects.toThrow(/0x8024402C/);
    await expect(windows(psRunner({ exitCode: 1, stderr: "Access denied" })).collect(signal)).rejects.toThrow(/no answer.*Access denied/);
    await expect(windows(psRunner({ timedOut: true, exitCode: null })).collect(signal)).rejects.toThrow(/timed out/);
  });
});

describe("update_status definition", () => {
  it("is `update_status`, hourly, both platforms; nothing runs at creation", async () => {
    expect(updateStatus).toMatchObject({ name: "update_status", defaultIntervalMs: 3_600_000, platforms: ["linux", "windows"] });
    for (const platform of ["linux", "windows"] as const) {
      const exec = fakeRunnerTable({});
      const c = await updateStatus.create({ host: createHostAccess({}, { platform, exec }), logger: silentLogger(), options: {} });
      expect(exec.calls).toEqual([]);
      await c.close?.();
    }
  });
});
