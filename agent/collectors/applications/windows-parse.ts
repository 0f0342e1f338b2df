import { parsePsList, psNumber, psString } from "../ps-json.js";
import type { App } from "./inventory.js";

/** The Uninstall keys read, by hive label; the label tells the parser which view an entry came from. */
export const UNINSTALL_PATHS = {
  machine: "Registry::HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\*",
  machine32: "Registry::HKEY_LOCAL_MACHINE\\SOFTWARE\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\*",
  user: "Registry::HKEY_USERS\\*\\Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\*",
} as const;

/**
 * The inventory script for the shared PowerShell session, a constant (nothing interpolated but the fixed paths
 * above). It reads the three Uninstall views with `Get-ItemProperty` (a plain registry read: never `Win32_Product`,
 * whose enumeration runs an MSI consistency check and self-repair on every MSI product):
 *
 * - the machine's native view and its 32-bit view (WOW6432Node), and
 * - the per-user view of every loaded user hive under HKEY_USERS, which includes the current user's HKCU; an
 *   agent running as LocalSystem would otherwise see only SYSTEM's own HKCU. `.DEFAULT` is skipped (an alias of
 *   S-1-5-18, which would list SYSTEM's entries twice). Users who are logged off have no loaded hive: their
 *   per-user programs are not seen.
 *
 * It emits the raw values; the filtering is in {@link parseWindowsUninstall} so it can be tested. `@(…)` with
 * `-InputObject` keeps a single entry an array. Unreadable keys are skipped (`-ErrorAction SilentlyContinue`).
 */
export const UNINSTALL_SCRIPT = [
  "$views = @(",
  ...Object.entries(UNINSTALL_PATHS).map(([hive, p], i, all) => `  @('${hive}', '${p}')${i < all.length - 1 ? "," : ""}`),
  ")",
  // PSPath reads "Microsoft.PowerShell.Core\Registry::HKEY_USERS\<SID>\…": the pattern matches from HKEY_USERS on.
  "$list = @(foreach ($v in $views) {",
  "  foreach ($e in @(Get-ItemProperty -Path $v[1] -ErrorAction SilentlyContinue)) {",
  "    if ($v[0] -eq 'user' -and [string]$e.PSPath -like '*HKEY_USERS\\.DEFAULT\\*') { continue }",
  "    [pscustomobject]@{ Hive = $v[0]; Key = [string]$e.PSChildName; DisplayName = [string]$e.DisplayName;",
  "      DisplayVersion = [string]$e.DisplayVersion; Publisher = [string]$e.Publisher;",
  "      SystemComponent = $e.SystemComponent; ParentKeyName = [string]$e.ParentKeyName; ReleaseType = [string]$e.ReleaseType }",
  "  }",
  "})",
  "ConvertTo-Json -Compress -InputObject $list",
].join("\n");

/**
 * Parses the script's answer (samples: testdata/windows/, hand-written): one object per Uninstall entry. Kept are
 * the entries "Apps & features" shows: with a DisplayName, not `SystemComponent=1` (parts of a bundle hidden
 * from the list), and not updates (`ParentKeyName` names the product they patch, or a `ReleaseType` such as
 * "Update", "Hotfix", "Security Update"). Name is DisplayName, version DisplayVersion ("" when absent), vendor
 * Publisher, source "registry"; the 32-bit view's entries get arch "x86", the others none (the native view is
 * the OS's own architecture, a per-user entry does not say).
 */
export function parseWindowsUninstall(text: string): App[] {
  const out: App[] = [];
  for (const e of parsePsList(text, "Uninstall registry keys")) {
    const name = psString(e["DisplayName"]).trim();
    if (name === "") continue;
    if (psNumber(e["SystemComponent"]) === 1) continue;
    if (psString(e["ParentKeyName"]).trim() !== "" || psString(e["ReleaseType"]).trim() !== "") continue;
    const version = psString(e["DisplayVersion"]).trim();
    const vendor = psString(e["Publisher"]).trim();
    out.push({
      name,
      version,
      source: "registry",
      ...(vendor !== "" ? { vendor } : {}),
      ...(e["Hive"] === "machine32" ? { arch: "x86" } : {}),
    });
  }
  return out;
}
