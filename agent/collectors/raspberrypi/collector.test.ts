import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../../common/logger.js";
import type { ClockMetrics, GpuMemory, ThrottleStatus, VoltageMetrics } from "../../../gen/spectra/v1/metrics_pb.js";
import type { CommandRunner, ExecResult } from "../../host/host-access.js";
import { enoent, fakeRunner } from "../../host/testing/fake-runner.js";
import { createHostAccess } from "../../host/index.js";
import { NO_DATA, type Payload } from "../types.js";
import raspberrypi from "./index.js";
import { createRaspberryPiCollector } from "./linux.js";

const testdata = path.join(import.meta.dirname, "testdata");
const read = (f: string): string => fs.readFileSync(path.join(testdata, f), "utf8");




/** vcgencmd on a healthy Pi 4, from the hand-written samples. */
const PI4_ANSWERS: Record<string, string> = {
  get_throttled: "vcgencmd/get_throttled-0x50005.txt",
  "measure_clock arm": "vcgencmd/measure_clock-arm.txt",
  "measure_clock core": "vcgencmd/measure_clock-core.txt",
  "measure_clock v3d": "vcgencmd/measure_clock-v3d.txt",
  "measure_volts core": "vcgencmd/measure_volts-core.txt",
  "measure_volts sdram_c": "vcgencmd/measure_volts-sdram.txt",
  "measure_volts sdram_i": "vcgencmd/measure_volts-sdram.txt",
  "measure_volts sdram_p": "vcgencmd/measure_volts-sdram.txt",
  "get_mem gpu": "vcgencmd/get_mem-gpu.txt",
  "get_mem reloc_total": "vcgencmd/get_mem-reloc_total.txt",
  "get_mem reloc": "vcgencmd/get_mem-reloc.txt",
};
const pi4Vcgencmd = (_file: string, args: readonly string[]): Partial<ExecResult> => {
  const f = PI4_ANSWERS[args.join(" ")];
  return f ? { stdout: read(f) } : { stdout: read("vcgencmd/error-invalid.txt"), exitCode: 255 };
};

const signal = new AbortController().signal;
let root: string;

/** Copies testdata files into a temporary host tree: `{ "proc/device-tree/model": "sysfs/device-tree-model-pi4" }`. */
function tree(name: string, files: Record<string, string>): { procRoot: string; sysRoot: string } {
  const base = path.join(root, name);
  fs.mkdirSync(path.join(base, "proc"), { recursive: true });
  fs.mkdirSync(path.join(base, "sys"), { recursive: true });
  for (const [dest, src] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(base, dest)), { recursive: true });
    fs.copyFileSync(path.join(testdata, src), path.join(base, dest));
  }
  return { procRoot: path.join(base, "proc"), sysRoot: path.join(base, "sys") };
}

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "spectra-rpi-"));
});
afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function collector(
  paths: { procRoot: string; sysRoot: string },
  exec: CommandRunner,
  clock: { t: number },
  options: Record<string, unknown> = {},
  logger = silentLogger(),
) {
  return createRaspberryPiCollector(
    { host: createHostAccess({ ...paths, rootfs: "" }, { platform: "linux", exec }), logger, options },
    { now: () => clock.t },
  );
}

const byCase = (out: Payload[] | typeof NO_DATA): Map<string, unknown> => {
  expect(out).not.toBe(NO_DATA);
  return new Map((out as Payload[]).map((p) => [p.case, p.value]));
};

describe("raspberrypi collector", () => {
  it("switches itself off on another board and on a host without device tree: NO_DATA, no command", async () => {
    const exec = fakeRunner(() => new Error("must not run"));
    const clock = { t: 0 };
    for (const paths of [tree("rockpro64", { "proc/device-tree/model": "sysfs/device-tree-model-rockpro64" }), tree("vm", {})]) {
      const c = collector(paths, exec, clock);
      for (let i = 0; i < 3; i++) {
        expect(await c.collect(signal)).toBe(NO_DATA);
        clock.t += 10_000;
      }
    }
    expect(exec.calls).toEqual([]);
  });

  it("reads everything on the first run, then each part on its own cadence", async () => {
    const exec = fakeRunner(pi4Vcgencmd);
    const clock = { t: 1_000 };
    const c = collector(tree("pi4", { "proc/device-tree/model": "sysfs/device-tree-model-pi4" }), exec, clock);

    const first = byCase(await c.collect(signal));
    expect([...first.keys()]).toEqual(["throttle", "clock", "voltage", "gpu"]);
    expect(first.get("throttle")).toMatchObject({
      undervoltage: true,
      armFreqCapped: false,
      throttled: true,
      softTempLimit: false,
      undervoltageOccurred: true,
      freqCapOccurred: false,
      throttledOccurred: true,
      softTempOccurred: false,
    } satisfies Partial<ThrottleStatus>);
    expect(first.get("clock")).toMatchObject({
      armFreqHz: 1500398464n,
      coreFreqHz: 500000000n,
      gpuFreqHz: 500000992n,
    } satisfies Partial<ClockMetrics>);
    expect(first.get("voltage")).toMatchObject({
      coreVolts: 0.85,
      sdramCVolts: 1.1,
      sdramIVolts: 1.1,
      sdramPVolts: 1.1,
    } satisfies Partial<VoltageMetrics>);
    expect(first.get("gpu")).toMatchObject({
      gpuMemTotal: BigInt(76 * 1024 * 1024),
      gpuMemUsed: BigInt(12 * 1024 * 1024),
    } satisfies Partial<GpuMemory>);
    // Argument arrays, a timeout and a cap on every call; vcgencmd found on PATH first.
    for (const call of exec.calls) {
      expect(call.file).toBe("vcgencmd");
      expect(call.opts.timeoutMs).toBeGreaterThan(0);
      expect(call.opts.timeoutMs).toBeLessThanOrEqual(5_000);
      expect(call.opts.maxOutputBytes).toBeGreaterThan(0);
    }
    expect(exec.calls).toHaveLength(11);

    const seen: string[][] = [];
    for (let i = 1; i <= 6; i++) {
      clock.t += 10_000;
      seen.push([...byCase(await c.collect(signal)).keys()]);
    }
    expect(seen).toEqual([
      ["throttle"],
      ["throttle", "clock"],
      ["throttle", "clock"],
      ["throttle"],
      ["throttle", "clock"],
      ["throttle", "clock", "voltage", "gpu"],
    ]);
  });

  it("without vcgencmd: tries the known paths once, then uses the sysfs fallbacks without spawning", async () => {
    const exec = fakeRunner((file) => enoent(file));
    const clock = { t: 0 };
    const paths = tree("pi5-no-vcgencmd", {
      "sys/firmware/devicetree/base/model": "sysfs/device-tree-model-pi5",
      "sys/devices/platform/soc/soc:firmware/get_throttled": "sysfs/get_throttled",
      "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq": "sysfs/scaling_cur_freq",
    });
    const c = collector(paths, exec, clock);
    const out = byCase(await c.collect(signal));
    expect([...out.keys()]).toEqual(["throttle", "clock"]);
    expect(out.get("throttle")).toMatchObject({ undervoltage: true, throttledOccurred: true });
    expect(out.get("clock")).toMatchObject({ armFreqHz: 1_500_000_000n });
    expect((out.get("clock") as ClockMetrics).coreFreqHz).toBeUndefined();
    expect(exec.calls.map((x) => x.file)).toEqual(["vcgencmd", "/usr/bin/vcgencmd", "/opt/vc/bin/vcgencmd"]);

    clock.t += 10_000;
    await c.collect(signal);
    expect(exec.calls).toHaveLength(3);
  });

  it("VCHI failure with no fallback: an error that names the video group; with a fallback: partial data", async () => {
    const vchi = (): Partial<ExecResult> => ({ stderr: read("vcgencmd/vchi-failed.stderr"), exitCode: 255 });
    const clock = { t: 0 };
    const bare = collector(tree("pi4-vchi", { "proc/device-tree/model": "sysfs/device-tree-model-pi4" }), fakeRunner(vchi), clock);
    await expect(bare.collect(signal)).rejects.toThrow(/VCHI initialization failed.*video/);

    const exec = fakeRunner(vchi);
    const withSysfs = collector(
      tree("pi4-vchi-sysfs", {
        "proc/device-tree/model": "sysfs/device-tree-model-pi4",
        "sys/devices/platform/soc/soc:firmware/get_throttled": "sysfs/get_throttled",
      }),
      exec,
      clock,
    );
    const out = byCase(await withSysfs.collect(signal));
    expect([...out.keys()]).toEqual(["throttle"]);
    // vcgencmd is not asked again after the permission failure.
    expect(exec.calls).toHaveLength(1);
  });

  it("a value vcgencmd does not know on this model is left out, the rest is sent", async () => {
    const exec = fakeRunner((file, args) =>
      args.join(" ") === "measure_clock v3d" || args[1]?.startsWith("sdram")
        ? { stdout: read("vcgencmd/error-invalid.txt"), exitCode: 255 }
        : pi4Vcgencmd(file, args),
    );
    const out = byCase(await collector(tree("pi5", { "proc/device-tree/model": "sysfs/device-tree-model-pi5" }), exec, { t: 0 }).collect(signal));
    expect((out.get("clock") as ClockMetrics).gpuFreqHz).toBeUndefined();
    expect((out.get("clock") as ClockMetrics).armFreqHz).toBe(1500398464n);
    expect(out.get("voltage")).toMatchObject({ coreVolts: 0.85 });
    expect((out.get("voltage") as VoltageMetrics).sdramCVolts).toBeUndefined();
  });

  it("takes the sub-cadences from options and rejects bad ones at creation", async () => {
    const exec = fakeRunner(pi4Vcgencmd);
    const clock = { t: 0 };
    const c = collector(tree("pi4-opts", { "proc/device-tree/model": "sysfs/device-tree-model-pi4" }), exec, clock, {
      clockInterval: "10s",
      voltageInterval: 20_000,
    });
    const seen: string[][] = [];
    for (let i = 0; i < 3; i++) {
      seen.push([...byCase(await c.collect(signal)).keys()]);
      clock.t += 10_000;
    }
    expect(seen).toEqual([
      ["throttle", "clock", "voltage", "gpu"],
      ["throttle", "clock"],
      ["throttle", "clock", "voltage", "gpu"],
    ]);
    expect(() => collector(tree("bad", {}), exec, clock, { clockInterval: "soon" })).toThrow(/clockInterval/);
    expect(() => collector(tree("bad2", {}), exec, clock, { voltageInterval: 10 })).toThrow(/voltageInterval/);
  });
});

describe("raspberrypi definition", () => {
  it("is `raspberrypi`, every 10 s, Linux only", () => {
    expect(raspberrypi).toMatchObject({ name: "raspberrypi", defaultIntervalMs: 10_000, platforms: ["linux"] });
  });
});
