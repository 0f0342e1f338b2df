/**
 * Pure parsers for `systemctl` output (samples: testdata/cmd/). Parsers take text and never run anything.
 */

/** First systemd release whose `list-units`/`list-unit-files` accept `--output=json` (PR #15701). */
export const SYSTEMD_JSON_MIN_VERSION = 246;

/** One service unit as `systemctl list-units` shows it. */
export interface SystemdUnit {
  unit: string;
  /** LOAD: loaded, not-found, masked, bad-setting, error. */
  load: string;
  /** ACTIVE: active, reloading, inactive, failed, activating, deactivating (maintenance, refreshing on new systemd). */
  active: string;
  /** SUB: running, exited, dead, failed, auto-restart, … */
  sub: string;
  description: string;
}

/** The systemd version from line 1 of `systemctl --version` ("systemd 252 (252.38-1~deb12u1)"), or undefined. */
export function parseSystemdVersion(text: string): number | undefined {
  const m = /^\s*systemd\s+(\d+)/.exec(text);
  return m ? Number(m[1]) : undefined;
}

function lowerKeys(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) out[k.toLowerCase()] = v;
  return out;
}

const str = (v: unknown): string => (typeof v === "string" ? v : "");

/**
 * Parses `systemctl list-units --type=service --all --output=json` (sample:
 * testdata/cmd/handwritten-list-units.json): an array of `{unit, load, active, sub, description}`. Keys are matched
 * case-insensitively and extra keys (`job`) are ignored, because the exact shape could not be captured on a host
 * with systemd as PID 1. Records without a unit name are dropped. Throws on invalid JSON or a non-array.
 */
export function parseListUnitsJson(text: string): SystemdUnit[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new Error("systemctl list-units: invalid JSON", { cause });
  }
  if (!Array.isArray(value)) throw new Error("systemctl list-units: JSON is not an array");
  const out: SystemdUnit[] = [];
  for (const item of value) {
    if (typeof item !== "object" || item === null) continue;
    const o = lowerKeys(item as Record<string, unknown>);
    const unit = str(o["unit"]);
    if (unit === "") continue;
    const description = str(o["description"]);
    out.push({ unit, load: str(o["load"]), active: str(o["active"]), sub: str(o["sub"]), description });
  }
  return out;
}

/**
 * Parses `systemctl list-units --type=service --all --plain --no-legend --no-pager` (sample:
 * testdata/cmd/handwritten-list-units-plain.txt): four whitespace-separated columns, then the description (which
 * may contain spaces). A leading `●`/`*` marker (printed for not-found units without `--plain`) is skipped.
 */
export function parseListUnitsText(text: string): SystemdUnit[] {
  const out: SystemdUnit[] = [];
  for (const raw of text.split("\n")) {
    let line = raw.trim();
    if (line.startsWith("●") || line.startsWith("*")) line = line.slice(1).trim();
    const m = /^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)(?:\s+(.*))?$/.exec(line);
    if (!m) continue;
    out.push({ unit: m[1]!, load: m[2]!, active: m[3]!, sub: m[4]!, description: (m[5] ?? "").trim() });
  }
  return out;
}

/**
 * Parses `systemctl list-unit-files --type=service --output=json` (sample: testdata/cmd/systemctl-list-unit-files.json,
 * `[{"unit_file","state","preset"}]`) into unit file → state (enabled, disabled, static, masked, alias, indirect,
 * generated, transient, …). Throws on invalid JSON.
 */
export function parseUnitFilesJson(text: string): Map<string, string> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new Error("systemctl list-unit-files: invalid JSON", { cause });
  }
  if (!Array.isArray(value)) throw new Error("systemctl list-unit-files: JSON is not an array");
  const out = new Map<string, string>();
  for (const item of value) {
    if (typeof item !== "object" || item === null) continue;
    const o = lowerKeys(item as Record<string, unknown>);
    const unit = str(o["unit_file"]) || str(o["unit"]);
    if (unit !== "") out.set(unit, str(o["state"]));
  }
  return out;
}

/**
 * Parses `systemctl list-unit-files --type=service --no-legend --no-pager` text (samples:
 * testdata/cmd/systemctl-list-unit-files.txt with a VENDOR PRESET column, handwritten-list-unit-files-239.txt
 * without): the first two columns.
 */
export function parseUnitFilesText(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^\s*(\S+)\s+(\S+)/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

/**
 * Enablement of a unit from the unit-file states: its own file, else (for an instance like `getty@tty1.service`)
 * its template's (`getty@.service`) — an approximation, since an instance can be enabled on its own; "" when there
 * is no unit file (not-found units).
 */
export function enablementOf(unit: string, files: ReadonlyMap<string, string>): string {
  const own = files.get(unit);
  if (own !== undefined) return own;
  const m = /^([^@]+@).*(\.[a-z]+)$/.exec(unit);
  return m ? (files.get(`${m[1]}${m[2]}`) ?? "") : "";
}

/** Legacy `status` values of `service_list`. */
export type ServiceStatus = "active" | "inactive" | "failed";

/**
 * Maps systemd's ACTIVE state to the legacy status: active, reloading and refreshing are "active"; failed is
 * "failed"; everything else (inactive, activating, deactivating, maintenance) is "inactive". The precise state
 * stays visible through `sub_status` (e.g. activating/auto-restart of a crash-looping unit).
 */
export function systemdStatus(active: string): ServiceStatus {
  if (active === "active" || active === "reloading" || active === "refreshing") return "active";
  if (active === "failed") return "failed";
  return "inactive";
}

/**
 * Whether systemctl failed because systemd is not running as PID 1 (containers, WSL without systemd, other init
 * systems), as opposed to a real failure (sample: testdata/cmd/systemctl-list-units-nosystemd.stderr).
 */
export function isNoSystemdMessage(stderr: string): boolean {
  return (
    stderr.includes("not been booted with systemd") ||
    stderr.includes("Failed to connect to bus") ||
    stderr.includes("Failed to connect to system scope bus")
  );
}
