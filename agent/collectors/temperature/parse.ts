/**
 * Pure helpers of the temperature collector: value parsing and the naming of sensors. Samples: the hand-written
 * sysfs trees under testdata/sys and testdata/pi (see testdata/README.md).
 */

/**
 * °C from a sysfs temperature (`tempK_input`, `tempK_max`, thermal `temp`, trip points): an integer in
 * millidegrees. Undefined for an empty or garbled value (a sensor that is asleep or off may read as "").
 */
export function parseMilliCelsius(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  if (!/^-?\d+$/.test(t)) return undefined;
  return Number(t) / 1000;
}

/**
 * A threshold (max, crit) only when plausible: above absolute zero and below 1000 °C. Drivers use sentinels for
 * "not set" — NVMe reports 65261.85 °C (0xFFFF K) for an unset threshold, some chips −273.15 °C — which must not
 * reach alert rules as real limits.
 */
export function plausibleThreshold(celsius: number | undefined): number | undefined {
  return celsius !== undefined && celsius > -273 && celsius < 1000 ? celsius : undefined;
}

/** One temperature input found in sysfs, before it gets its id. */
export interface SensorSpec {
  source: "hwmon" | "thermal";
  /** hwmon: the chip `name` (coretemp, nvme, k10temp…); thermal zones: "thermal". */
  chip: string;
  /** hwmon: `tempK_label`, or "tempK" for an unlabelled input; thermal zones: the zone `type`. */
  label: string;
  /** The sysfs directory name: hwmonN or thermal_zoneN (NOT stable across boots; used only to break ties). */
  dir: string;
  /** Basename of the `device` link of a hwmon directory (nvme0, 0000:00:18.3, coretemp.0), when there is one. */
  device: string | undefined;
  /** K of `tempK_*` (hwmon), 0 for thermal zones. */
  index: number;
  /** File to read for the current value (millidegrees). */
  inputPath: string;
  maxC: number | undefined;
  critC: number | undefined;
}

/**
 * Gives every sensor an id that is unique on the host and stable across reboots where possible
 * (`TemperatureMetrics.sensor`):
 *
 * - hwmon: `<chip>/<label>`, e.g. `coretemp/Core 0`, `nvme/Composite`, `acpitz/temp1`. When several hwmon
 *   directories have the same chip name (two NVMe drives, two sockets), the chip part becomes
 *   `<chip>@<device>` (`nvme@nvme0/Composite`) — the device link, unlike the hwmonN number, does not move between
 *   boots — or `<chip>@hwmonN` when there is no device link. A label repeated within one chip gets `@tempK`.
 * - thermal zones: `thermal/<type>` (`thermal/acpitz`, `thermal/cpu-thermal`), `thermal/<type>@thermal_zoneN` when
 *   several zones share a type.
 *
 * Returns the ids in the order of `specs`.
 */
export function sensorIds(specs: readonly SensorSpec[]): string[] {
  // Chip key per hwmon directory.
  const dirsByChip = new Map<string, Set<string>>();
  for (const s of specs) {
    if (s.source !== "hwmon") continue;
    let dirs = dirsByChip.get(s.chip);
    if (!dirs) dirsByChip.set(s.chip, (dirs = new Set()));
    dirs.add(s.dir);
  }
  const deviceOfDir = new Map<string, string | undefined>();
  for (const s of specs) if (s.source === "hwmon" && !deviceOfDir.has(s.dir)) deviceOfDir.set(s.dir, s.device);
  const chipKeyOf = new Map<string, string>();
  for (const [chip, dirs] of dirsByChip) {
    if (dirs.size === 1) {
      for (const d of dirs) chipKeyOf.set(d, chip);
      continue;
    }
    const devCount = new Map<string, number>();
    for (const d of dirs) {
      const dev = deviceOfDir.get(d);
      if (dev !== undefined) devCount.set(dev, (devCount.get(dev) ?? 0) + 1);
    }
    for (const d of dirs) {
      const dev = deviceOfDir.get(d);
      chipKeyOf.set(d, dev !== undefined && devCount.get(dev) === 1 ? `${chip}@${dev}` : `${chip}@${d}`);
    }
  }

  const base = specs.map((s) =>
    s.source === "hwmon" ? `${chipKeyOf.get(s.dir) ?? s.chip}/${s.label}` : `thermal/${s.label}`,
  );
  const count = new Map<string, number>();
  for (const b of base) count.set(b, (count.get(b) ?? 0) + 1);
  return specs.map((s, i) => {
    const b = base[i]!;
    if (count.get(b) === 1) return b;
    return s.source === "hwmon" ? `${b}@temp${s.index}` : `${b}@${s.dir}`;
  });
}

/** Sorts names like hwmon2, hwmon10 or temp3_input by their number (sysfs lists them in hash order). */
export function byTrailingNumber(a: string, b: string): number {
  const na = Number(/(\d+)(?:_\w+)?$/.exec(a)?.[1] ?? NaN);
  const nb = Number(/(\d+)(?:_\w+)?$/.exec(b)?.[1] ?? NaN);
  if (Number.isFinite(na) && Number.isFinite(nb) && na !== nb) return na - nb;
  return a < b ? -1 : a > b ? 1 : 0;
}
