import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../../common/logger.js";
import type { WifiMetrics } from "../../../gen/spectra/v1/metrics_pb.js";
import type { CommandRunner } from "../../host/host-access.js";
import { enoent, fakeRunner } from "../../host/testing/fake-runner.js";
import { createHostAccess } from "../../host/index.js";
import { NO_DATA, type Payload } from "../types.js";
import wifi from "./index.js";
import { createLinuxWifiCollector } from "./linux.js";
import { createWindowsWifiCollector } from "./windows.js";

const testdata = path.join(import.meta.dirname, "testdata");
const read = (f: string): string => fs.readFileSync(path.join(testdata, f), "utf8");



const iwMissing = (): Error => enoent("iw");
const signal = new AbortController().signal;
let root: string;

/** Builds a host tree: `proc/net/wireless` (unless undefined) and `sys/class/net/<if>/{wireless/}`. */
function tree(name: string, procWireless: string | undefined, netIfs: Record<string, boolean>): { procRoot: string; sysRoot: string } {
  const base = path.join(root, name);
  fs.mkdirSync(path.join(base, "proc/net"), { recursive: true });
  if (procWireless !== undefined) fs.writeFileSync(path.join(base, "proc/net/wireless"), procWireless);
  for (const [ifname, wireless] of Object.entries(netIfs)) {
    const dir = path.join(base, "sys/class/net", ifname);
    fs.mkdirSync(dir, { recursive: true });
    if (wireless) fs.mkdirSync(path.join(dir, "wireless"));
  }
  return { procRoot: path.join(base, "proc"), sysRoot: path.join(base, "sys") };
}

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "spectra-wifi-"));
});
afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function linux(paths: { procRoot: string; sysRoot: string }, exec: CommandRunner, now?: () => number) {
  return createLinuxWifiCollector(
    { host: createHostAccess({ ...paths, rootfs: "" }, { platform: "linux", exec }), logger: silentLogger(), options: {} },
    now ? { now } : {},
  );
}

const values = (out: Payload[] | typeof NO_DATA): WifiMetrics[] => {
  expect(out).not.toBe(NO_DATA);
  return (out as Payload[]).map((p) => {
    expect(p.case).toBe("wifi");
    return p.value as WifiMetrics;
  });
};

describe("linux wifi collector", () => {
  it("captured host without Wi-Fi (no /proc/net/wireless, only eth0 and lo): NO_DATA, no command run", async () => {
    const exec = fakeRunner(() => ({ stdout: read("captured/iw-dev.txt"), exitCode: 1 }));
    const c = linux(tree("captured", undefined, { eth0: false, lo: false }), exec);
    expect(await c.collect(signal)).toBe(NO_DATA);
    expect(exec.calls).toEqual([]);
  });

  it("headers-only /proc/net/wireless: NO_DATA, no command run", async () => {
    const exec = fakeRunner(() => new Error("must not run"));
    const c = linux(tree("headers", read("linux/proc-net-wireless-headers-only"), { eth0: false }), exec);
    expect(await c.collect(signal)).toBe(NO_DATA);
    expect(exec.calls).toEqual([]);
  });

  it("asks iw with an argument array, a short timeout and a cap, and merges it with /proc", async () => {
    const exec = fakeRunner(() => ({ stdout: read("linux/iw-link-connected.txt") }));
    const c = linux(tree("connected", read("linux/proc-net-wireless-one"), { wlan0: true, eth0: false }), exec);
    const [m, ...rest] = values(await c.collect(signal));
    expect(rest).toEqual([]);
    expect(m).toMatchObject({
      interface: "wlan0",
      ssid: "HomeNet 5G",
      signalDbm: -56,
      frequencyGhz: 5.18,
      bitrateMbps: 780,
      rxBitrateMbps: 866.7,
    });
    expect(m!.linkQuality).toBeCloseTo((54 / 70) * 100, 6);
    expect(exec.calls.map((x) => [x.file, x.args])).toEqual([["iw", ["dev", "wlan0", "link"]]]);
    expect(exec.calls[0]!.opts.timeoutMs).toBeLessThanOrEqual(5_000);
    expect(exec.calls[0]!.opts.maxOutputBytes).toBeGreaterThan(0);
  });

  it("finds interfaces through sysfs when /proc/net/wireless is absent; iw found in /usr/sbin", async () => {
    const exec = fakeRunner((file) => (file === "iw" ? iwMissing() : { stdout: read("linux/iw-link-legacy.txt") }));
    const c = linux(tree("sysfs-only", undefined, { wlp2s0: true }), exec);
    const [m] = values(await c.collect(signal));
    expect(m).toMatchObject({ interface: "wlp2s0", ssid: "CafeGuest", signalDbm: -71, frequencyGhz: 2.437, bitrateMbps: 72.2 });
    expect(m!.rxBitrateMbps).toBeUndefined();
    // The path that worked is kept.
    await c.collect(signal);
    expect(exec.calls.map((x) => x.file)).toEqual(["iw", "/usr/sbin/iw", "/usr/sbin/iw"]);
  });

  it("iw missing: reports what /proc gives and does not try iw again for a while", async () => {
    let now = 0;
    const exec = fakeRunner(() => iwMissing());
    const c = linux(tree("no-iw", read("linux/proc-net-wireless-one"), {}), exec, () => now);
    const [m] = values(await c.collect(signal));
    expect(m).toMatchObject({ interface: "wlan0", ssid: "", signalDbm: -56, frequencyGhz: 0, bitrateMbps: 0 });
    // PATH first, then the sbin directories an unprivileged PATH lacks.
    expect(exec.calls.map((x) => x.file)).toEqual(["iw", "/usr/sbin/iw", "/sbin/iw"]);
    now += 30_000;
    values(await c.collect(signal));
    expect(exec.calls).toHaveLength(3);
    now += 10 * 60_000;
    values(await c.collect(signal));
    expect(exec.calls).toHaveLength(6);
  });

  it("iw without nl80211 (captured answer) or timing out: /proc only", async () => {
    for (const answer of [{ stdout: read("captured/iw-dev.txt").split("\n")[0]!, exitCode: 1 }, { timedOut: true, signal: "SIGKILL", exitCode: null }]) {
      const exec = fakeRunner(() => answer);
      const c = linux(tree(`iw-${String(answer.exitCode)}`, read("linux/proc-net-wireless-one"), {}), exec);
      const [m] = values(await c.collect(signal));
      expect(m).toMatchObject({ interface: "wlan0", signalDbm: -56, ssid: "" });
    }
  });

  it("not associated → NO_DATA; a vanished interface is skipped", async () => {
    const exec = fakeRunner((_f, args) =>
      args[1] === "wlan0" ? { stdout: read("linux/iw-link-not-connected.txt") } : { stderr: read("linux/iw-dev-no-device.stderr"), exitCode: 237 },
    );
    const c = linux(tree("idle", read("linux/proc-net-wireless-two"), {}), exec);
    expect(await c.collect(signal)).toBe(NO_DATA);
    expect(exec.calls.map((x) => x.args[1])).toEqual(["wlan0", "wlp3s0"]);
  });
});

describe("windows wifi collector", () => {
  const windows = (exec: CommandRunner) =>
    createWindowsWifiCollector(
      { host: createHostAccess({}, { platform: "windows", exec }), logger: silentLogger(), options: {} },
      { netshPath: "C:\\Windows\\System32\\netsh.exe" },
    );

  it("runs netsh by absolute path with arguments, a timeout and a cap", async () => {
    const exec = fakeRunner(() => ({ stdout: read("windows/netsh-de-cp850.txt") }));
    const [m] = values(await windows(exec).collect(signal));
    expect(m).toMatchObject({ interface: "WLAN", ssid: "FRITZ!Box 7590 XY", signalDbm: -63, linkQuality: 74, bitrateMbps: 130, rxBitrateMbps: 144.4 });
    expect(exec.calls[0]).toMatchObject({ file: "C:\\Windows\\System32\\netsh.exe", args: ["wlan", "show", "interfaces"] });
    expect(exec.calls[0]!.opts.timeoutMs).toBeGreaterThan(0);
    expect(exec.calls[0]!.opts.maxOutputBytes).toBeGreaterThan(0);
  });

  it("no Wi-Fi, stopped service, disconnected: NO_DATA", async () => {
    for (const f of ["netsh-no-interface.txt", "netsh-en-disconnected.txt"]) {
      expect(await windows(fakeRunner(() => ({ stdout: read(`windows/${f}`) }))).collect(signal)).toBe(NO_DATA);
    }
    const stopped = fakeRunner(() => ({ stdout: read("windows/netsh-wlansvc-stopped.txt"), exitCode: 1 }));
    expect(await windows(stopped).collect(signal)).toBe(NO_DATA);
  });

  it("location permission refused: an error that names the setting", async () => {
    const exec = fakeRunner(() => ({ stdout: read("windows/netsh-location-permission.txt"), exitCode: 1 }));
    await expect(windows(exec).collect(signal)).rejects.toThrow(/location permission/);
  });

  it("a timeout or a start failure is an error with its cause", async () => {
    await expect(windows(fakeRunner(() => ({ timedOut: true, exitCode: null }))).collect(signal)).rejects.toThrow(/timed out/);
    const err = await windows(fakeRunner(() => iwMissing())).collect(signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).cause).toBeInstanceOf(Error);
  });
});

describe("wifi definition", () => {
  it("is `wifi`, every 30 s, on both platforms, and picks the per-OS module", async () => {
    expect(wifi).toMatchObject({ name: "wifi", defaultIntervalMs: 30_000, platforms: ["linux", "windows"] });
    const exec = fakeRunner(() => new Error("must not run at create"));
    const c = await wifi.create({ host: createHostAccess({}, { platform: "windows", exec }), logger: silentLogger(), options: {} });
    expect(typeof c.collect).toBe("function");
    expect(exec.calls).toEqual([]);
  });
});
