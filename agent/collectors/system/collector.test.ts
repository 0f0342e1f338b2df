import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../../common/logger.js";
import type { SystemMetrics } from "../../../gen/spectra/v1/metrics_pb.js";
import { createHostAccess, type HostPaths } from "../../host/index.js";
import type { PowerShellQuery } from "../../host/powershell.js";
import type { CollectorContext, Payload } from "../types.js";
import system from "./index.js";
import { createLinuxSystemCollector } from "./linux.js";
import { makeUtmp, TYPICAL_SESSIONS } from "./testdata/make-utmp.js";
import { createWindowsSystemCollector, SYSTEM_SCRIPT } from "./windows.js";

const testdata = path.join(import.meta.dirname, "testdata");
const signal = new AbortController().signal;
const ctxFor = (
  paths: Partial<HostPaths>,
  options: Record<string, unknown> = {},
  platform: "linux" | "windows" = "linux",
): CollectorContext => ({ host: createHostAccess(paths, { platform }), logger: silentLogger(), options });
const sysOf = (p: Payload[] | symbol): SystemMetrics => {
  const first = (p as Payload[])[0]!;
  expect(first.case).toBe("system");
  return first.value as SystemMetrics;
};

const tmp: string[] = [];
afterEach(() => {
  for (const d of tmp.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
function fixtureRoot(): { proc: string; root: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "spectra-system-"));
  tmp.push(root);
  const proc = path.join(root, "proc");
  fs.mkdirSync(proc);
  fs.copyFileSync(path.join(testdata, "proc/uptime"), path.join(proc, "uptime"));
  fs.copyFileSync(path.join(testdata, "proc/stat"), path.join(proc, "stat"));
  for (const pid of ["1", "2", "4", "21726", "21732", "21733", "21737", "self", "net"]) fs.mkdirSync(path.join(proc, pid));
  return { proc, root };
}

describe("linux system collector", () => {
  it("reports uptime, btime, process count and utmp sessions from a fixture tree", async () => {
    const { proc, root } = fixtureRoot();
    const utmp = path.join(root, "utmp");
    fs.writeFileSync(utmp, makeUtmp(TYPICAL_SESSIONS));
    const c = createLinuxSystemCollector(ctxFor({ procRoot: proc }, { utmpPath: utmp }));
    expect(sysOf(await c.collect(signal))).toMatchObject({ uptime: 545n, bootTime: 1795769124n, processes: 7, users: 3 });
    await c.close?.();
  });

  it("finds utmp under rootfs (/run first) and reports 0 users without one", async () => {
    const { proc, root } = fixtureRoot();
    const c = createLinuxSystemCollector(ctxFor({ procRoot: proc, rootfs: root }));
    expect(sysOf(await c.collect(signal)).users).toBe(0);
    fs.mkdirSync(path.join(root, "run"));
    fs.writeFileSync(path.join(root, "run/utmp"), makeUtmp(TYPICAL_SESSIONS.slice(0, 4)));
    expect(sysOf(await c.collect(signal)).users).toBe(1);
  });

  it("fails with context when procfs is unreadable", async () => {
    const c = createLinuxSystemCollector(ctxFor({ procRoot: "/nonexistent/proc" }));
    await expect(c.collect(signal)).rejects.toThrow("read /nonexistent/proc/uptime");
  });

  it("reports this machine", async () => {
    const c = await system.create(ctxFor({}));
    const m = sysOf(await c.collect(signal));
    expect(Math.abs(Number(m.uptime) - os.uptime())).toBeLessThanOrEqual(2);
    expect(Math.abs(Number(m.bootTime) + Number(m.uptime) - Date.now() / 1000)).toBeLessThan(5);
    expect(m.processes).toBeGreaterThan(1);
    // Within a few of what the test itself counts a moment later.
    const count = fs.readdirSync("/proc").filter((n) => /^\d+$/.test(n)).length;
    expect(Math.abs(m.processes - count)).toBeLessThan(20);
    expect(m.users).toBeGreaterThanOrEqual(0);
    await c.close?.();
  });
});

describe("windows system collector", () => {
  it("reports boot time, uptime, processes and users from one query", async () => {
    const ps: PowerShellQuery = {
      query: async (script) => {
        expect(script).toBe(SYSTEM_SCRIPT);
        return fs.readFileSync(path.join(testdata, "windows/system.json"), "utf8");
      },
    };
    const c = createWindowsSystemCollector(ctxFor({}, {}, "windows"), { ps, nowMs: () => (1795161600 + 3600) * 1000 });
    expect(sysOf(await c.collect(signal))).toMatchObject({ bootTime: 1795161600n, uptime: 3600n, processes: 187, users: 2 });
  });
});
