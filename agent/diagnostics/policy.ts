import { posix, win32 } from "node:path";
import type { DiagnosticName, DiagnosticParams } from "./registry.js";

/**
 * What this agent's owner allows (config file `diagnostics:`): a diagnostic can be switched off, and disk usage can
 * be limited to some paths. Checked before anything runs; a refusal comes back as a typed error result.
 */
export interface DiagnosticPolicy {
  /** Diagnostics switched off (`diagnostics.<name>.enabled: false`). */
  disabled: ReadonlySet<DiagnosticName>;
  /** Absolute paths a disk-usage scan may start in (`diagnostics.disk_usage.allowed_paths`); undefined = any. */
  diskUsagePaths?: readonly string[];
  /**
   * Units (journal) or sources (Windows event logs) fetch_logs may read (`diagnostics.fetch_logs.allowed_units`);
   * when set, a request must name one of them. undefined = any, including no filter.
   */
  logUnits?: readonly string[];
}

/** Config-file key (snake_case, as in the proto) of each diagnostic. */
export const DIAGNOSTIC_KEYS: Readonly<Record<DiagnosticName, string>> = {
  fetchLogs: "fetch_logs",
  diskUsage: "disk_usage",
  listMounts: "list_mounts",
  networkDiag: "network_diag",
};

/** Everything allowed. */
export const ALLOW_ALL: DiagnosticPolicy = { disabled: new Set() };

/** Returns why the policy refuses this command, or undefined when it may run. */
export function policyRefusal<K extends DiagnosticName>(
  policy: DiagnosticPolicy,
  name: K,
  params: DiagnosticParams<K>,
  platform: "linux" | "windows",
): string | undefined {
  const key = DIAGNOSTIC_KEYS[name];
  if (policy.disabled.has(name)) return `${key} is disabled in this agent's config (diagnostics.${key}.enabled)`;
  if (name === "fetchLogs" && policy.logUnits) {
    const unit = (params as DiagnosticParams<"fetchLogs">).unit;
    if (!policy.logUnits.includes(unit)) {
      const asked = unit === "" ? "all logs" : `unit ${JSON.stringify(unit)}`;
      return `fetch_logs of ${asked} is outside this agent's allowed units (${policy.logUnits.join(", ")})`;
    }
  }
  if (name === "diskUsage" && policy.diskUsagePaths) {
    const path = (params as DiagnosticParams<"diskUsage">).path;
    const p = platform === "windows" ? win32 : posix;
    // An empty path means the system drive's root.
    const wanted = p.normalize(path === "" ? (platform === "windows" ? "C:\\" : "/") : path);
    const inside = policy.diskUsagePaths.some((allowed) => {
      const rel = p.relative(p.normalize(allowed), wanted);
      return rel === "" || (!rel.startsWith("..") && !p.isAbsolute(rel));
    });
    if (!inside) {
      return `disk_usage of ${wanted} is outside this agent's allowed paths (${policy.diskUsagePaths.join(", ")})`;
    }
  }
  return undefined;
}
