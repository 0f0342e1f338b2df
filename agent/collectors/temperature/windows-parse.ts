import { parsePsObject, psNumber, psString } from "../ps-json.js";

/** One Windows thermal zone reading, in °C. */
export interface WindowsThermalZone {
  /** "\_TZ.THM0" (performance counter instance) or "ACPI\ThermalZone\THM0_0" (MSAcpi InstanceName). */
  name: string;
  /** Which class answered: "perf" (Win32_PerfFormattedData_Counters_ThermalZoneInformation) or "acpi". */
  source: string;
  celsius: number;
  critC: number | undefined;
}

/** What the thermal script returns. */
export interface WindowsThermalAnswer {
  zones: WindowsThermalZone[];
  /** Messages of the classes that failed (access denied, not supported): expected on many machines. */
  errors: string[];
}

/** Kelvin → °C, undefined for the zeros and negatives that unsupported firmware reports. */
function fromKelvin(k: number | undefined): number | undefined {
  return k !== undefined && k > 0 ? k - 273.15 : undefined;
}

/**
 * Parses the answer of the thermal script (sample: testdata/windows/thermal-perf.json): `{Zones, Errors}`, each
 * zone with Source, Name, Temperature (kelvin), HighPrecisionTemperature (tenths of kelvin; preferred) and
 * CriticalTripPoint (tenths of kelvin). Zones without a plausible temperature are dropped. Throws on the
 * `{"error":…}` answer (a broken script, not a missing sensor).
 */
export function parseWindowsThermal(text: string): WindowsThermalAnswer {
  const root = parsePsObject(text, "thermal zones");
  const raw = root["Zones"];
  const list = Array.isArray(raw) ? raw : raw === null || raw === undefined ? [] : [raw];
  const zones: WindowsThermalZone[] = [];
  for (const item of list) {
    if (typeof item !== "object" || item === null) continue;
    const o = item as Record<string, unknown>;
    const tenths = psNumber(o["HighPrecisionTemperature"]);
    const celsius = fromKelvin(tenths !== undefined && tenths > 0 ? tenths / 10 : psNumber(o["Temperature"]));
    if (celsius === undefined) continue;
    const crit = psNumber(o["CriticalTripPoint"]);
    zones.push({
      name: psString(o["Name"]),
      source: psString(o["Source"]),
      celsius: Math.round(celsius * 100) / 100,
      critC: crit !== undefined && crit > 0 ? Math.round((crit / 10 - 273.15) * 100) / 100 : undefined,
    });
  }
  const errs = root["Errors"];
  const errList = Array.isArray(errs) ? errs : errs === null || errs === undefined ? [] : [errs];
  const errors = errList.map(psString).filter((e) => e !== "");
  return { zones, errors };
}
