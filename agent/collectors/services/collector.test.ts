import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { silentLogger } from "../../../common/logger.js";
import type { ServiceList } from "../../../gen/spectra/v1/metrics_pb.js";
import type { CommandRunner, ExecOptions, ExecResult } from "../../host/host-access.js";
import { createHostAccess } from "../../host/index.js";
import type { PowerShellQuery } from "../../host/powershell.js";
import { NO_DATA, type CollectorContext, type Payload } from "../types.js";
import services from "./index.js";
import { createLinuxServicesCollector, SYSTEMCTL_TIMEOUT_MS } from "./linux.js";
import { createWindowsServicesCollector, SERVICES_SCRIPT } from "./windows.js";

const testdata = path.join(import.meta.dirname, "testdata");
const read = (p: string): string => fs.readFileSync(path.join(testdata, p), "utf8");
const signal = new AbortController().signal;

const tmp: string[] = [];
afterEach(() => {
  for (const d of tmp.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A rootfs whose /run/systemd/system exists (or not): what sd_booted() looks at. */
function rootfs(booted: boolean): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "spectra-services-"));
  tmp.push(root);
  if (booted) fs.mkdirSync(path.join(root, "run/systemd/system"), { recursive: true });
  return root;
}

const ok = (stdout: string): ExecResult => ({ stdout, stderr: "", exitCode: 0, signal: null, timedOut: false, truncated: false });
const fail = (stderr: string, exitCode = 1): ExecResult => ({ stdout: "", stderr, exitCode, signal: null, timedOut: false, truncated: false });
/** The captured stderr without the `exit=` line the capture appended. */
const noSystemdStderr = (): string => read("cmd/systemctl-list-units-nosystemd.stderr").replace(/^exit=.*\n?/m, "");

/** A fake runner answering by the systemctl subcommand (and whether JSON was asked), recording every call. */
function fakeRunner(answers: Record<string, ExecResult | (() => ExecResult)>): CommandRunner & { calls: Array<{ file: string; args: string[]; opts: ExecOptions }> } {
  const calls: Array<{ file: string; args: string[]; opts: ExecOptions }> = [];
  return {
    calls,
    async run(file, args, opts) {
      calls.push({ file, args: [...args], opts });
      const key = `${args[0]}${args.includes("--output=json") ? ":json" : args.includes("--plain") ? ":text" : ""}`;
      const a = answers[key];
      if (a === undefined) throw new Error(`unexpected command ${file} ${args.join(" ")}`);
      return typeof a === "function" ? a() : a;
    },
  };
}

function ctxFor(root: string, exec: CommandRunner, logger = silentLogger()): CollectorContext {
  return { host: createHostAccess({ rootfs: root }, { platform: "linux", exec }), logger, options: {} };
}
const listOf = (p: Payload[] | symbol): ServiceList => {
  expect(Array.isArray(p)).toBe(true);
  const first = (p as Payload[])[0]!;
  expect(first.case).toBe("serviceList");
  return first.value as ServiceList;
};

describe("linux services collector", () => {
  it("uses JSON on systemd ≥ 246 and joins enablement (captured unit files, hand-written units)", async () => {
    const exec = fakeRunner({
      "--version": ok(read("cmd/systemctl-version.txt")),
      "list-units:json": ok(read("cmd/handwritten-list-units.json")),
      "list-unit-files:json": ok(read("cmd/systemctl-list-unit-files.json")),
    });
    const c = createLinuxServicesCollector(ctxFor(rootfs(true), exec));
    const l = listOf(await c.collect(signal));
    expect(l.manager).toBe("systemd");
    expect(l.services).toHaveLength(10);
    const by = new Map(l.services.map((s) => [s.name, s]));
    expect(by.get("docker.service")).toMatchObject({
      status: "active",
      subStatus: "running",
      loadState: "loaded",
      description: "Docker Application Container Engine",
      enabled: "enabled",
    });
    expect(by.get("cgroupfs-mount.service")).toMatchObject({ status: "inactive", loadState: "masked", enabled: "masked" });
    expect(by.get("containerd.service")).toMatchObject({ status: "inactive", subStatus: "auto-restart", enabled: "enabled" });
    expect(by.get("pg_receivewal@main.service")).toMatchObject({ status: "failed", subStatus: "failed", enabled: "disabled" });
    expect(by.get("getty@tty1.service")!.enabled).toBe("enabled");
    expect(by.get("systemd-journald.service")!.enabled).toBe("static");
    expect(by.get("foo.service")).toMatchObject({ loadState: "not-found", enabled: "" });
    expect(by.get("ssh.service")!.enabled).toBe(""); // no unit file in the capture

    // Argument arrays, a timeout and an output cap on every command; the version is asked once.
    await c.collect(signal);
    expect(exec.calls.filter((x) => x.args[0] === "--version")).toHaveLength(1);
    for (const call of exec.calls) {
      expect(call.file).toBe("systemctl");
      expect(call.opts.timeoutMs).toBe(SYSTEMCTL_TIMEOUT_MS);
      expect(call.opts.maxOutputBytes).toBeGreaterThan(0);
    }
    expect(exec.calls.find((x) => x.args[0] === "list-units")!.args).toEqual([
      "list-units",
      "--type=service",
      "--all",
      "--output=json",
      "--no-pager",
    ]);
  });

  it("uses the text output before systemd 246 (Ubuntu 20.04's 245, RHEL 8's 239)", async () => {
    for (const version of ["245", "239"]) {
      const exec = fakeRunner({
        "--version": ok(read(`cmd/handwritten-systemctl-version-${version}.txt`)),
        "list-units:text": ok(read("cmd/handwritten-list-units-plain.txt")),
        "list-unit-files:text": ok(read("cmd/handwritten-list-unit-files-239.txt")),
      });
      const l = listOf(await createLinuxServicesCollector(ctxFor(rootfs(true), exec)).collect(signal));
      expect(l.services).toHaveLength(10);
      const ssh = l.services.find((s) => s.name === "ssh.service")!;
      expect(ssh).toMatchObject({ status: "active", description: "OpenBSD Secure Shell server", enabled: "enabled" });
      expect(exec.calls.find((x) => x.args[0] === "list-units")!.args).toEqual([
        "list-units",
        "--type=service",
        "--all",
        "--plain",
        "--no-legend",
        "--no-pager",
      ]);
    }
  });

  it("falls back to text for good when JSON is rejected", async () => {
    const exec = fakeRunner({
      "--version": ok(read("cmd/systemctl-version.txt")),
      "list-units:json": fail("Unknown output 'json'.\n"),
      "list-units:text": ok(read("cmd/handwritten-list-units-plain.txt")),
      "list-unit-files:json": ok(read("cmd/systemctl-list-unit-files.json")),
      "list-unit-files:text": ok(read("cmd/systemctl-list-unit-files.txt")),
    });
    const c = createLinuxServicesCollector(ctxFor(rootfs(true), exec));
    const first = listOf(await c.collect(signal));
    expect(first.services).toHaveLength(10);
    expect(first.services.find((s) => s.name === "docker.service")!.enabled).toBe("enabled");
    exec.calls.length = 0;
    expect(listOf(await c.collect(signal)).services.find((s) => s.name === "docker.service")!.enabled).toBe("enabled");
    expect(exec.calls.every((x) => !x.args.includes("--output=json"))).toBe(true);
  });

  it("reports NO_DATA, logged once, when systemd is not PID 1 — without running anything", async () => {
    const exec = fakeRunner({});
    const logger = silentLogger();
    const info = vi.spyOn(logger, "info");
    const c = createLinuxServicesCollector(ctxFor(rootfs(false), exec, logger));
    expect(await c.collect(signal)).toBe(NO_DATA);
    expect(await c.collect(signal)).toBe(NO_DATA);
    expect(exec.calls).toHaveLength(0);
    expect(info).toHaveBeenCalledTimes(1);
    expect(String(info.mock.calls[0]![1])).toMatch(/not the init system \(PID 1\)/);
  });

  it("reports NO_DATA when systemctl itself says systemd is not PID 1 (the captured answer)", async () => {
    const exec = fakeRunner({
      "--version": ok(read("cmd/systemctl-version.txt")),
      "list-units:json": fail(noSystemdStderr()),
      "list-unit-files:json": ok(read("cmd/systemctl-list-unit-files.json")),
    });
    expect(await createLinuxServicesCollector(ctxFor(rootfs(true), exec)).collect(signal)).toBe(NO_DATA);
  });

  it("fails clearly on a timeout or another error, and survives a failing list-unit-files", async () => {
    const timedOut: ExecResult = { stdout: "", stderr: "", exitCode: null, signal: "SIGKILL", timedOut: true, truncated: false };
    const slow = fakeRunner({ "--version": ok("systemd 252 (252)\n"), "list-units:json": timedOut, "list-unit-files:json": ok("[]") });
    await expect(createLinuxServicesCollector(ctxFor(rootfs(true), slow)).collect(signal)).rejects.toThrow(
      /systemctl list-units .*timed out after 10000 ms/,
    );

    const broken = fakeRunner({
      "--version": ok("systemd 252 (252)\n"),
      "list-units:json": ok(read("cmd/handwritten-list-units.json")),
      "list-unit-files:json": fail("Failed to get unit file list: Access denied\n"),
    });
    const l = listOf(await createLinuxServicesCollector(ctxFor(rootfs(true), broken)).collect(signal));
    expect(l.services).toHaveLength(10);
    expect(l.services.every((s) => s.enabled === "")).toBe(true);

    const missing: CommandRunner = {
      run: async () => {
        throw Object.assign(new Error("spawn systemctl ENOENT"), { code: "ENOENT" });
      },
    };
    await expect(createLinuxServicesCollector(ctxFor(rootfs(true), missing)).collect(signal)).rejects.toThrow("run systemctl --version");
  });

  it("on this machine (systemd installed, not PID 1): NO_DATA, also when the real systemctl is asked", async () => {
    const real = createHostAccess({}, { platform: "linux" });
    const c = await services.create({ host: real, logger: silentLogger(), options: {} });
    expect(await c.collect(signal)).toBe(NO_DATA);
    // Pretend the marker exists so the real systemctl runs and answers that systemd is not PID 1.
    if (!fs.existsSync("/run/systemd/system") && fs.existsSync("/usr/bin/systemctl")) {
      const forced = createLinuxServicesCollector({ host: createHostAccess({ rootfs: rootfs(true) }, { platform: "linux" }), logger: silentLogger(), options: {} });
      expect(await forced.collect(signal)).toBe(NO_DATA);
    }
  });
});

describe("windows services collector", () => {
  it("sends every service with its start mode", async () => {
    const ps: PowerShellQuery = {
      query: async (script) => {
        expect(script).toBe(SERVICES_SCRIPT);
        return read("windows/services.json");
      },
    };
    const c = createWindowsServicesCollector({ host: createHostAccess({}, { platform: "windows" }), logger: silentLogger(), options: {} }, { ps });
    const l = listOf(await c.collect(signal));
    expect(l.manager).toBe("windows");
    expect(l.services).toHaveLength(8);
    expect(l.services[1]).toMatchObject({ name: "BITS", status: "active", subStatus: "running", enabled: "auto-delayed", loadState: "" });
    expect(l.services[2]).toMatchObject({ name: "Spooler", status: "failed", description: "Print Spooler" });
  });
});
