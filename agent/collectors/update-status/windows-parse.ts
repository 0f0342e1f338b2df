import { parsePsObject, psNumber, psString, type PsObject } from "../ps-json.js";
import type { PendingPackage } from "./parse.js";

/** The "Security Updates" category of Windows Update; GUIDs are not translated, category names are. */
export const SECURITY_CATEGORY_ID = "0fa1201d-4330-4fa8-8ae9-b877473b6441";

/** IUpdateSearcher result code for a failed search (orcFailed). */
const RESULT_FAILED = 4;

/** Registry keys whose presence means Windows waits for a reboot. */
const REBOOT_KEYS = [
  "HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\WindowsUpdate\\Auto Update\\RebootRequired",
  "HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Component Based Servicing\\RebootPending",
];

/**
 * The Windows Update search, as a constant script for `powershell.exe -EncodedCommand`. It asks the Windows Update
 * Agent (COM `Microsoft.Update.Session`) for `IsInstalled=0 and IsHidden=0`, marks an update as security when it
 * is in the Security Updates category or has an MSRC severity, and reads the reboot flag from
 * `Microsoft.Update.SystemInfo` and the two registry keys. `online` false searches the agent's last scan (like
 * apt's lists: no network, seconds); true makes the agent contact its update server first (minutes). The only
 * variable part is the literal `$true`/`$false`: no data is interpolated.
 */
export function windowsUpdateScript(online: boolean): string {
  return [
    "$ProgressPreference='SilentlyContinue'; $ErrorActionPreference='Stop'",
    "[Console]::OutputEncoding = New-Object System.Text.UTF8Encoding $false",
    "try {",
    "  $searcher = (New-Object -ComObject Microsoft.Update.Session).CreateUpdateSearcher()",
    `  $searcher.Online = ${online ? "$true" : "$false"}`,
    "  $result = $searcher.Search('IsInstalled=0 and IsHidden=0')",
    "  $updates = @(foreach ($u in $result.Updates) {",
    "    $security = -not [string]::IsNullOrEmpty([string]$u.MsrcSeverity)",
    `    foreach ($c in $u.Categories) { if ($c.CategoryID -eq '${SECURITY_CATEGORY_ID}') { $security = $true } }`,
    "    [pscustomobject]@{ Title = [string]$u.Title; KB = (@($u.KBArticleIDs) -join ',');",
    "      Security = $security; Severity = [string]$u.MsrcSeverity }",
    "  })",
    "  $reboot = $false",
    "  try { $reboot = [bool](New-Object -ComObject Microsoft.Update.SystemInfo).RebootRequired } catch { }",
    `  foreach ($k in @(${REBOOT_KEYS.map((k) => `'${k}'`).join(", ")})) { if (Test-Path -LiteralPath $k) { $reboot = $true } }`,
    "  $answer = @{ ResultCode = [int]$result.ResultCode; RebootRequired = $reboot; Updates = $updates }",
    "  ConvertTo-Json -Compress -Depth 4 -InputObject $answer",
    "} catch {",
    "  ConvertTo-Json -Compress -InputObject @{ error = $_.Exception.Message }",
    "}",
  ].join("\n");
}

/** What the Windows Update search found. */
export interface WindowsUpdateResult {
  packages: PendingPackage[];
  rebootRequired: boolean;
}

/**
 * Parses the script's answer (samples: testdata/windows/, hand-written): `{ResultCode, RebootRequired, Updates}`
 * where `Updates` may be an array, a single object (PowerShell 5.1) or null. Each update becomes a package named
 * by its title with `KB<id>` as its version. Throws for the `{"error": …}` answer and a failed search.
 */
export function parseWindowsUpdateResult(text: string): WindowsUpdateResult {
  const obj = parsePsObject(text, "Windows Update search");
  if (psNumber(obj["ResultCode"]) === RESULT_FAILED) throw new Error("Windows Update search: the search failed (result code 4)");
  const raw = obj["Updates"];
  const list = (Array.isArray(raw) ? raw : raw === null || raw === undefined ? [] : [raw]).filter(
    (v): v is PsObject => typeof v === "object" && v !== null && !Array.isArray(v),
  );
  const packages: PendingPackage[] = [];
  for (const u of list) {
    const title = psString(u["Title"]).trim();
    if (title === "") continue;
    const kb = psString(u["KB"]).split(",")[0]?.trim();
    packages.push({ name: title, ...(kb ? { version: `KB${kb}` } : {}), security: u["Security"] === true });
  }
  return { packages, rebootRequired: obj["RebootRequired"] === true };
}
