import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../../common/logger.js";
import type { TemperatureMetrics } from "../../../gen/spectra/v1/metrics_pb.js";
import { createHostAccess, type HostPaths } from "../../host/index.js";
import type { PowerShellQuery } from "../../host/powershell.js";
import { NO_DATA, type CollectorContext, type Payload } from "../types.js";
import temperature from "./index.js";
import { createLinuxTemperatureCollector, type LinuxTemperatureDeps } from "./linux.js";
import { createWindowsTemperatureCollector, THERMAL_SCRIPT } from "./windows.js";

const testdata = path.join(import.meta.dirname, "testdata");
const signal = new AbortController().signal;
const ctxFor = (paths: Partial<HostPaths>, options: Record<string, unknown> = {}): CollectorContext => ({
  host: createHostAccess(paths, { platform: "linux" }),
  logger: silentLogger(),
  options,
});
/** The payloads as plain objects keyed by sensor id. */
function sensors(out: Payload[] | symbol): Map<string, Omit<TemperatureMetrics, "$typeName">> {
  expect(Array.isArray(out)).toBe(true);
  const m = new Map<string, Omit<TemperatureMetrics, "$typeName">>();
  for (const p of out as Payload[]) {
    expect(p.case).toBe("temperature");
    const { $typeName: _t, ...v } = p.value as TemperatureMetrics;
    expect(m.has(v.sensor), `duplicate id ${v.sensor}`).toBe(false);
    m.set(v.sensor, v);
  }
  return m;
}

/** Neither threshold is known (the optional fields are absent). */
function noLimits(v: Omit<TemperatureMetrics, "$typeName"> | undefined): void {
  expect(v).toBeDefined();
  expect(v!.maxTemp).toBeUndefined();
  expect(v!.critTemp).toBeUndefined();
}

const tmp: string[] = [];
afterEach(() => {
  for (const d of tmp.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
function copyTree(from: string): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "spectra-temperature-"));
  tmp.push(root);
  fs.cpSync(from, root, { recursive: true });
  return root;
}

describe("linux temperature collector on the hand-written sysfs tree", () => {
  it("reports every hwmon input (labelled or not, NVMe, old layout) and every thermal zone", async () => {
    const c = createLinuxTemperatureCollector(ctxFor({ sysRoot: path.join(testdata, "sys") }));
    const s = sensors(await c.collect(signal));
    expect([...s.keys()]).toEqual([
      "coretemp/Package id 0",
      "coretemp/Core 0",
      "coretemp/Core 8",
      "nvme/Composite",
      "nvme/Sensor 1",
      "acpitz/temp1",
      // drivetemp/temp1 is unreadable (empty) this run
      "k10temp/Tctl",
      "k10temp/Tccd1",
      "amdgpu/edge",
      "amdgpu/temp2",
      "thermal/acpitz",
      "thermal/x86_pkg_temp",
    ]);
    expect(s.get("coretemp/Package id 0")).toEqual({
      sensor: "coretemp/Package id 0",
      temperature: 45,
      maxTemp: 84,
      critTemp: 100,
      chip: "coretemp",
      label: "Package id 0",
    });
    expect(s.get("nvme/Composite")).toMatchObject({ temperature: 38.85, maxTemp: 81.85, critTemp: 84.85 });
    // The NVMe "no threshold" sentinel (65261.85 °C) is not a limit.
    expect(s.get("nvme/Sensor 1")).toMatchObject({ temperature: 41.85 });
    noLimits(s.get("nvme/Sensor 1"));
    expect(s.get("acpitz/temp1")).toMatchObject({ chip: "acpitz", label: "temp1", temperature: 27.8, critTemp: 119 });
    expect(s.get("k10temp/Tctl")).toMatchObject({ temperature: 52.125 });
    noLimits(s.get("k10temp/Tctl"));
    expect(s.get("amdgpu/temp2")).toMatchObject({ label: "temp2", temperature: 41 });
    // Thermal zones: the critical trip as crit, the hot one as max; passive trips are not limits.
    expect(s.get("thermal/acpitz")).toEqual({
      sensor: "thermal/acpitz",
      temperature: 27.8,
      maxTemp: 105,
      critTemp: 119,
      chip: "thermal",
      label: "acpitz",
    });
    expect(s.get("thermal/x86_pkg_temp")).toMatchObject({ temperature: 45 });
    noLimits(s.get("thermal/x86_pkg_temp"));
  });

  it("leaves thermal zones out with thermal_zones: false and validates the option", async () => {
    const c = createLinuxTemperatureCollector(ctxFor({ sysRoot: path.join(testdata, "sys") }, { thermal_zones: false }));
    expect([...sensors(await c.collect(signal)).keys()].some((k) => k.startsWith("thermal/"))).toBe(false);
    expect(() => createLinuxTemperatureCollector(ctxFor({}, { thermal_zones: "no" }))).toThrow(/thermal_zones must be/);
  });

  it("reports the Raspberry Pi's SoC zone (also as its hwmon twin)", async () => {
    const s = sensors(await createLinuxTemperatureCollector(ctxFor({ sysRoot: path.join(testdata, "pi/sys") })).collect(signal));
    expect([...s.keys()]).toEqual(["cpu_thermal/temp1", "thermal/cpu-thermal"]);
    expect(s.get("thermal/cpu-thermal")).toMatchObject({ temperature: 48.686, critTemp: 110 });
  });

  it("skips an input that fails with EIO for that run only, and picks up sensors that appear", async () => {
    const sys = copyTree(path.join(testdata, "sys"));
    let failNvme = true;
    const deps: LinuxTemperatureDeps = {
      readFile: async (p, sig) => {
        if (failNvme && p.endsWith("hwmon1/temp1_input")) throw Object.assign(new Error("EIO: i/o error"), { code: "EIO" });
        return fs.promises.readFile(p, { encoding: "latin1", signal: sig });
      },
    };
    const c = createLinuxTemperatureCollector(ctxFor({ sysRoot: sys }), deps);
    expect(sensors(await c.collect(signal)).has("nvme/Composite")).toBe(false);
    failNvme = false;
    fs.writeFileSync(path.join(sys, "class/hwmon/hwmon3/temp1_input"), "36000\n"); // the drive answers again
    const s = sensors(await c.collect(signal));
    expect(s.get("nvme/Composite")!.temperature).toBe(38.85);
    expect(s.get("drivetemp/temp1")).toMatchObject({ temperature: 36, maxTemp: 70, critTemp: 85 });

    // A new chip is discovered on the next run.
    fs.mkdirSync(path.join(sys, "class/hwmon/hwmon7"));
    fs.writeFileSync(path.join(sys, "class/hwmon/hwmon7/name"), "spd5118\n");
    fs.writeFileSync(path.join(sys, "class/hwmon/hwmon7/temp1_input"), "33500\n");
    expect(sensors(await c.collect(signal)).get("spd5118/temp1")!.temperature).toBe(33.5);
  });

  it("tells two chips with the same name apart by their device link, stable across hwmon renumbering", async () => {
    const sys = fs.mkdtempSync(path.join(os.tmpdir(), "spectra-temperature-"));
    tmp.push(sys);
    const devices = path.join(sys, "devices/pci0000:00");
    const hwmon = path.join(sys, "class/hwmon");
    fs.mkdirSync(hwmon, { recursive: true });
    // hwmon2 → nvme1 and hwmon3 → nvme0: the ids follow the device, not the hwmon number.
    for (const [n, dev, temp] of [["2", "nvme1", "40850"], ["3", "nvme0", "35850"]] as const) {
      fs.mkdirSync(path.join(devices, dev), { recursive: true });
      const dir = path.join(hwmon, `hwmon${n}`);
      fs.mkdirSync(dir);
      fs.symlinkSync(`../../../devices/pci0000:00/${dev}`, path.join(dir, "device"));
      fs.writeFileSync(path.join(dir, "name"), "nvme\n");
      fs.writeFileSync(path.join(dir, "temp1_label"), "Composite\n");
      fs.writeFileSync(path.join(dir, "temp1_input"), `${temp}\n`);
    }
    // Two inputs of one chip with the same label.
    const dup = path.join(hwmon, "hwmon4");
    fs.mkdirSync(dup);
    fs.writeFileSync(path.join(dup, "name"), "it8686\n");
    for (const k of ["1", "2"]) {
      fs.writeFileSync(path.join(dup, `temp${k}_label`), "AUXTIN\n");
      fs.writeFileSync(path.join(dup, `temp${k}_input`), `3${k}000\n`);
    }
    const s = sensors(await createLinuxTemperatureCollector(ctxFor({ sysRoot: sys })).collect(signal));
    expect(s.get("nvme@nvme0/Composite")!.temperature).toBe(35.85);
    expect(s.get("nvme@nvme1/Composite")!.temperature).toBe(40.85);
    expect(s.get("it8686/AUXTIN@temp1")!.temperature).toBe(31);
    expect(s.get("it8686/AUXTIN@temp2")!.temperature).toBe(32);
  });

  it("answers NO_DATA quietly where there is no sensor: an empty tree, and this machine's real /sys", async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), "spectra-temperature-"));
    tmp.push(empty);
    fs.mkdirSync(path.join(empty, "class/thermal"), { recursive: true }); // like the capture: an empty thermal class
    expect(await createLinuxTemperatureCollector(ctxFor({ sysRoot: empty })).collect(signal)).toBe(NO_DATA);
    const real = await temperature.create(ctxFor({}));
    const out = await real.collect(signal);
    if (fs.existsSync("/sys/class/hwmon") || fs.readdirSync("/sys/class/thermal").some((e) => e.startsWith("thermal_zone"))) {
      // A host with sensors: each one must be a sane reading.
      for (const v of sensors(out).values()) expect(v.temperature).toBeGreaterThan(-60);
    } else {
      expect(out).toBe(NO_DATA);
    }
  });
});

describe("windows temperature collector", () => {
  const collect = async (file: string): Promise<Payload[] | symbol> => {
    const ps: PowerShellQuery = {
      query: async (script) => {
        expect(script).toBe(THERMAL_SCRIPT);
        return fs.readFileSync(path.join(testdata, "windows", file), "utf8");
      },
    };
    return createWindowsTemperatureCollector(
      { host: createHostAccess({}, { platform: "windows" }), logger: silentLogger(), options: {} },
      { ps },
    ).collect(signal);
  };

  it("converts the performance-counter zones (tenths of kelvin, or kelvin)", async () => {
    const s = sensors(await collect("thermal-perf.json"));
    expect(s.get("acpi/\\_TZ.TZ00")).toEqual({
      sensor: "acpi/\\_TZ.TZ00",
      temperature: 28.05,
      maxTemp: undefined,
      critTemp: undefined,
      chip: "acpi",
      label: "\\_TZ.TZ00",
    });
    expect(s.get("acpi/\\_TZ.TZ01")!.temperature).toBe(44.85);
  });

  it("uses MSAcpi_ThermalZoneTemperature with its critical trip point, dropping zones that read 0", async () => {
    const s = sensors(await collect("thermal-acpi.json"));
    expect([...s.keys()]).toEqual(["acpi/ACPI\\ThermalZone\\THM0_0"]);
    expect(s.get("acpi/ACPI\\ThermalZone\\THM0_0")).toMatchObject({ temperature: 45.05, critTemp: 100.05 });
    const single = sensors(await collect("thermal-single-bom.json"));
    expect(single.get("acpi/ACPI\\ThermalZone\\TZ00_0")).toMatchObject({ temperature: 29.95, critTemp: 105.05 });
  });

  it("is quietly NO_DATA where WMI has no zone, and fails on a broken script", async () => {
    expect(await collect("thermal-none.json")).toBe(NO_DATA);
    await expect(collect("thermal-error.json")).rejects.toThrow(/not recognized/);
  });
});
