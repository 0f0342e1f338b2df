import { create } from "@bufbuild/protobuf";
import fs from "node:fs";
import path from "node:path";
import { TemperatureMetricsSchema } from "../../../gen/spectra/v1/metrics_pb.js";
import { NO_DATA, type Collector, type CollectorContext, type Payload } from "../types.js";
import { byTrailingNumber, parseMilliCelsius, plausibleThreshold, sensorIds, type SensorSpec } from "./parse.js";
import { monotonicMs } from "../../clock.js";

/** Re-read names, labels and thresholds this often even when no sensor directory appeared or vanished. */
const REDISCOVER_MS = 5 * 60_000;

/** Test seams for the Linux temperature collector. */
export interface LinuxTemperatureDeps {
  /** Reads one sysfs attribute; default `fs.promises.readFile(path, "latin1")`. */
  readFile?: (path: string, signal: AbortSignal) => Promise<string>;
  /** Monotonic clock in ms; default `monotonicMs` (agent/clock.ts). */
  now?: () => number;
}

/** Options read from `collectors.temperature.options`. */
interface TemperatureOptions {
  /** `thermal_zones` (default true): also report /sys/class/thermal zones. */
  thermalZones: boolean;
}

function readOptions(o: Readonly<Record<string, unknown>>): TemperatureOptions {
  const tz = o["thermal_zones"];
  if (tz !== undefined && tz !== null && typeof tz !== "boolean") {
    throw new Error(`collectors.temperature.options.thermal_zones must be true or false, got ${JSON.stringify(tz)}`);
  }
  return { thermalZones: tz !== false };
}

const TEMP_INPUT = /^temp(\d+)_input$/;
const TRIP_TYPE = /^trip_point_(\d+)_type$/;

/** A discovered sensor with its id. */
interface Sensor extends SensorSpec {
  id: string;
}

/**
 * Every temperature sensor of `<sysRoot>/class/hwmon` and `<sysRoot>/class/thermal` (docs/data-sources.md 3.8),
 * one `temperature` payload per sensor.
 *
 * - hwmon: every `tempK_input` of every chip — labelled or not (unlabelled ones are named `tempK`), NVMe
 *   (Composite, Sensor 1…) and drivetemp included — with `tempK_max` and `tempK_crit` when plausible. Old drivers
 *   keep the attributes in `hwmonN/device/`; both places are looked at.
 * - thermal zones: `temp` and `type`, the `critical` trip point as crit and the `hot` one as max.
 * - Both are reported: a zone that is also registered as a hwmon chip (acpitz, cpu_thermal on a Pi) appears twice,
 *   once as `thermal/<type>` and once as `<chip>/tempK`. That is deliberate — the two interfaces can carry different
 *   thresholds and neither is always present — and documented; turn zones off with `thermal_zones: false`.
 *
 * Values are millidegrees → °C. A sensor whose input cannot be read this time (EIO/ENODATA/EAGAIN from a drive
 * asleep or a GPU powered off, or an empty value) is left out of that run only. Discovery (names, labels,
 * thresholds, device links) is cached and redone when the set of sensor directories changes, after a sensor
 * disappeared, or every 5 minutes; a run then reads only the inputs, asynchronously (a hwmon read can take
 * milliseconds: NVMe issues an admin command, I²C chips wait on the bus). No sensor at all (VMs, containers,
 * this project's CI machine) returns NO_DATA.
 */
export function createLinuxTemperatureCollector(ctx: CollectorContext, deps: LinuxTemperatureDeps = {}): Collector {
  const opts = readOptions(ctx.options);
  const hwmonClass = `${ctx.host.paths.sysRoot}/class/hwmon`;
  const thermalClass = `${ctx.host.paths.sysRoot}/class/thermal`;
  const readFile =
    deps.readFile ?? ((p: string, signal: AbortSignal) => fs.promises.readFile(p, { encoding: "latin1", signal }));
  const now = deps.now ?? (() => monotonicMs());

  let sensors: Sensor[] = [];
  let listingKey: string | undefined;
  let discoveredAt = 0;
  let stale = true;
  /** Sensors whose last read failed (logged when they start failing, not every run). */
  const failing = new Set<string>();

  /** An attribute's text, or undefined when it does not exist. */
  const readText = async (p: string, signal: AbortSignal): Promise<string | undefined> => {
    try {
      return (await readFile(p, signal)).trim();
    } catch (err) {
      if (signal.aborted) throw err; // never cache a discovery cut short
      // Anything but "no such attribute" is transient (EAGAIN, EIO): use the fallback now, discover again next run.
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") stale = true;
      return undefined;
    }
  };

  const list = async (dir: string): Promise<string[]> => {
    try {
      return await fs.promises.readdir(dir);
    } catch {
      return []; // no such class on this kernel or in this container
    }
  };

  const discoverHwmon = async (entry: string, signal: AbortSignal): Promise<SensorSpec[]> => {
    const dir = `${hwmonClass}/${entry}`;
    let attrDir = dir;
    let files = await list(dir);
    if (!files.some((f) => TEMP_INPUT.test(f)) && files.includes("device")) {
      // Drivers from before the hwmon class attributes moved (pre-3.x style) keep them on the device.
      const devFiles = await list(`${dir}/device`);
      if (devFiles.some((f) => TEMP_INPUT.test(f))) {
        attrDir = `${dir}/device`;
        files = devFiles;
      }
    }
    const inputs = files.filter((f) => TEMP_INPUT.test(f)).sort(byTrailingNumber);
    if (inputs.length === 0) return [];
    const chip = (await readText(`${attrDir}/name`, signal)) || (await readText(`${dir}/name`, signal)) || entry;
    let device: string | undefined;
    try {
      device = path.basename(await fs.promises.readlink(`${dir}/device`));
    } catch {
      device = undefined; // no device link (virtual chips), or a plain directory in a test tree
    }
    return Promise.all(
      inputs.map(async (input): Promise<SensorSpec> => {
        const k = Number(TEMP_INPUT.exec(input)![1]);
        const label = (await readText(`${attrDir}/temp${k}_label`, signal)) || `temp${k}`;
        return {
          source: "hwmon",
          chip,
          label,
          dir: entry,
          device,
          index: k,
          inputPath: `${attrDir}/${input}`,
          maxC: plausibleThreshold(parseMilliCelsius(await readText(`${attrDir}/temp${k}_max`, signal))),
          critC: plausibleThreshold(parseMilliCelsius(await readText(`${attrDir}/temp${k}_crit`, signal))),
        };
      }),
    );
  };

  const discoverZone = async (entry: string, signal: AbortSignal): Promise<SensorSpec> => {
    const dir = `${thermalClass}/${entry}`;
    const type = (await readText(`${dir}/type`, signal)) || entry;
    let maxC: number | undefined;
    let critC: number | undefined;
    for (const f of (await list(dir)).filter((x) => TRIP_TYPE.test(x)).sort(byTrailingNumber)) {
      const n = TRIP_TYPE.exec(f)![1]!;
      const kind = await readText(`${dir}/${f}`, signal);
      if (kind !== "critical" && kind !== "hot") continue;
      const t = plausibleThreshold(parseMilliCelsius(await readText(`${dir}/trip_point_${n}_temp`, signal)));
      if (kind === "critical") critC ??= t;
      else maxC ??= t;
    }
    const inputPath = `${dir}/temp`;
    return { source: "thermal", chip: "thermal", label: type, dir: entry, device: undefined, index: 0, inputPath, maxC, critC };
  };

  const discover = async (hwmon: string[], zones: string[], signal: AbortSignal): Promise<Sensor[]> => {
    const specs = [
      ...(await Promise.all(hwmon.map((e) => discoverHwmon(e, signal)))).flat(),
      ...(await Promise.all(zones.map((z) => discoverZone(z, signal)))),
    ];
    const ids = sensorIds(specs);
    return specs.map((s, i) => ({ ...s, id: ids[i]! }));
  };

  return {
    async collect(signal) {
      const hwmon = (await list(hwmonClass)).filter((e) => e.startsWith("hwmon")).sort(byTrailingNumber);
      const zones = opts.thermalZones
        ? (await list(thermalClass)).filter((e) => e.startsWith("thermal_zone")).sort(byTrailingNumber)
        : [];
      const key = `${hwmon.join(",")}|${zones.join(",")}`;
      if (stale || key !== listingKey || now() - discoveredAt > REDISCOVER_MS) {
        stale = false;
        sensors = await discover(hwmon, zones, signal);
        listingKey = key;
        discoveredAt = now();
      }
      if (sensors.length === 0) return NO_DATA;

      const values = await Promise.all(
        sensors.map(async (s) => {
          try {
            return parseMilliCelsius(await readFile(s.inputPath, signal));
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === "ENOENT") stale = true; // the device went away
            if (signal.aborted) throw err;
            return undefined;
          }
        }),
      );
      const out: Payload[] = [];
      sensors.forEach((s, i) => {
        const v = values[i];
        if (v === undefined) {
          if (!failing.has(s.id)) {
            failing.add(s.id);
            ctx.logger.debug({ sensor: s.id, path: s.inputPath }, "temperature sensor unreadable; skipped while so");
          }
          return;
        }
        failing.delete(s.id);
        out.push({
          case: "temperature",
          value: create(TemperatureMetricsSchema, {
            sensor: s.id,
            temperature: v,
            maxTemp: s.maxC,
            critTemp: s.critC,
            chip: s.chip,
            label: s.label,
          }),
        });
      });
      return out.length > 0 ? out : NO_DATA;
    },
  };
}
