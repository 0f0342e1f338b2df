import { parsePsList, psNumber, psString } from "../ps-json.js";
import type { ServiceStatus } from "./parse.js";

/** One Windows service, mapped to the fields of `ServiceInfo`. */
export interface WindowsService {
  name: string;
  /** DisplayName (the short human name, like systemd's description; Win32_Service.Description is a paragraph). */
  description: string;
  status: ServiceStatus;
  /** The service state in systemd's style: running, stopped, paused, start-pending, stop-pending, … */
  subStatus: string;
  /** auto, auto-delayed, manual, disabled (boot/system for driver-like start types); "" when unknown. */
  enabled: string;
}

/** Win32_Exit codes that do not mean a failure: success, and ERROR_SERVICE_NEVER_STARTED. */
const CLEAN_EXIT_CODES = new Set([0, 1077]);

/**
 * Legacy status from Win32_Service State and ExitCode: Running, Paused and the Continue/Pause Pending states are
 * "active"; Stopped with an exit code other than 0 or 1077 (never started) is "failed"; the rest (Stopped, Start
 * Pending, Stop Pending, Unknown) is "inactive" — the same split as systemd, where activating/deactivating are
 * inactive.
 */
export function windowsServiceStatus(state: string, exitCode: number | undefined): ServiceStatus {
  switch (state) {
    case "Running":
    case "Paused":
    case "Continue Pending":
    case "Pause Pending":
      return "active";
    case "Stopped":
      return exitCode !== undefined && !CLEAN_EXIT_CODES.has(exitCode) ? "failed" : "inactive";
    default:
      return "inactive";
  }
}

/** Start mode as `enabled`: Auto (+ DelayedAutoStart) → "auto-delayed", else the mode in lower case. */
export function windowsStartMode(startMode: string, delayed: unknown): string {
  const mode = startMode.trim().toLowerCase();
  if (mode === "auto" && delayed === true) return "auto-delayed";
  return mode;
}

/**
 * Parses the answer of the services script (sample: testdata/windows/services.json): a list (or a lone object) of
 * Name, DisplayName, State, StartMode, DelayedAutoStart (true/false/null/absent), ExitCode. Throws on the
 * `{"error":…}` answer.
 */
export function parseWindowsServices(text: string): WindowsService[] {
  const out: WindowsService[] = [];
  for (const o of parsePsList(text, "Win32_Service")) {
    const name = psString(o["Name"]);
    if (name === "") continue;
    const state = psString(o["State"]);
    out.push({
      name,
      description: psString(o["DisplayName"]),
      status: windowsServiceStatus(state, psNumber(o["ExitCode"])),
      subStatus: state.toLowerCase().replace(/\s+/g, "-"),
      enabled: windowsStartMode(psString(o["StartMode"]), o["DelayedAutoStart"]),
    });
  }
  return out;
}
