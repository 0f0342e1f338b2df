import { create } from "@bufbuild/protobuf";
import { FetchLogsResultSchema, type FetchLogsResult } from "../../../gen/spectra/v1/diagnostics_pb.js";
import { parsePsList, psDateMs, psNumber, psString } from "../../collectors/ps-json.js";
import { sharedPowerShell, type PowerShellQuery } from "../../host/powershell.js";
import type { DiagnosticContext } from "../registry.js";
import { parsePid, toLogEntry, type LogQuery, type RawEntry, type SyslogLevel } from "./params.js";

/** The event logs read when no log is named in the filter. */
export const DEFAULT_EVENT_LOGS = ["System", "Application"] as const;

/**
 * Windows event Level → syslog severity: 1 Critical → CRITICAL (2), 2 Error → ERROR (3), 3 Warning → WARNING (4),
 * 4 Information and 0 LogAlways (shown as Information) → INFO (6), 5 Verbose → DEBUG (7). Provider-defined levels
 * (above 5) count as INFO.
 */
export function windowsLevelToSyslog(level: number): SyslogLevel {
  switch (level) {
    case 1:
      return 2;
    case 2:
      return 3;
    case 3:
      return 4;
    case 5:
      return 7;
    default:
      return 6;
  }
}

/**
 * The Windows levels to ask for at a syslog threshold. Critical, the most severe Windows level, is kept for
 * EMERGENCY and ALERT too (Windows has nothing above it, so those would otherwise never match); NOTICE asks for the
 * same as WARNING (Windows has no notice level).
 */
export function windowsLevelsFor(maxLevel: SyslogLevel): number[] {
  const levels = [1];
  if (maxLevel >= 3) levels.push(2);
  if (maxLevel >= 4) levels.push(3);
  if (maxLevel >= 6) levels.push(0, 4);
  if (maxLevel >= 7) levels.push(5);
  return levels;
}

/** The query data the script reads (it travels as base64 JSON, never as script text). */
export interface WinEventQuery {
  logs: string[];
  levels: number[];
  provider: string;
  /** ISO 8601 UTC or "". */
  start: string;
  end: string;
  max: number;
  /** Longest message kept (characters). */
  msgmax: number;
}

/**
 * Builds the query data: the unit filter names a log when it is "System" or "Application" (any case), else an
 * event provider (ProviderName) searched in both logs.
 */
export function winEventQuery(q: LogQuery, msgmax = 2048, max = q.limit): WinEventQuery {
  const log = DEFAULT_EVENT_LOGS.find((l) => l.toLowerCase() === q.unit.toLowerCase());
  return {
    logs: log ? [log] : [...DEFAULT_EVENT_LOGS],
    levels: windowsLevelsFor(q.maxLevel),
    provider: log || q.unit === "" ? "" : q.unit,
    start: q.since !== undefined ? new Date(q.since * 1000).toISOString() : "",
    end: q.until !== undefined ? new Date(q.until * 1000).toISOString() : "",
    max,
    msgmax,
  };
}

/**
 * The PowerShell script: a constant in which only `__PARAMS__` is replaced, by base64 (alphabet `A-Za-z0-9+/=`, so
 * it cannot leave its single-quoted string). Each log is read with `Get-WinEvent -FilterHashtable` and
 * `-MaxEvents` (newest first); "no events" answers nothing instead of an error; the logs are merged newest first and
 * cut to `max`; `Level` is the number (`LevelDisplayName` is localized), the time ISO 8601 UTC, `Message` cut to
 * `msgmax` (null when the provider's message DLL is missing).
 */
export const FETCH_LOGS_SCRIPT_TEMPLATE = [
  "$p = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String('__PARAMS__')) | ConvertFrom-Json",
  "$inv = [Globalization.CultureInfo]::InvariantCulture; $rt = [Globalization.DateTimeStyles]::RoundtripKind",
  "$all = New-Object System.Collections.Generic.List[object]",
  "foreach ($log in @($p.logs)) {",
  "  $f = @{ LogName = [string]$log; Level = [int[]]@($p.levels) }",
  "  if ($p.provider) { $f['ProviderName'] = [string]$p.provider }",
  "  if ($p.start) { $f['StartTime'] = [DateTime]::Parse($p.start, $inv, $rt) }",
  "  if ($p.end) { $f['EndTime'] = [DateTime]::Parse($p.end, $inv, $rt) }",
  "  try { foreach ($e in @(Get-WinEvent -FilterHashtable $f -MaxEvents ([int]$p.max) -ErrorAction Stop)) { $all.Add($e) } }",
  "  catch { if ($_.FullyQualifiedErrorId -notlike 'NoMatching*') { throw } }",
  "}",
  "$sel = @($all | Sort-Object -Property TimeCreated -Descending | Select-Object -First ([int]$p.max))",
  "ConvertTo-Json -Compress -Depth 2 -InputObject @($sel | ForEach-Object {",
  "  $m = $_.Message; if ($null -ne $m -and $m.Length -gt $p.msgmax) { $m = $m.Substring(0, [int]$p.msgmax) }",
  "  [ordered]@{ time = $_.TimeCreated.ToUniversalTime().ToString('o'); id = $_.Id; level = [int]$_.Level;",
  "    provider = $_.ProviderName; log = $_.LogName; pid = $_.ProcessId; message = $m }",
  "})",
].join("\n");

/** The script for one query. */
export function fetchLogsScript(query: WinEventQuery): string {
  const b64 = Buffer.from(JSON.stringify(query), "utf8").toString("base64");
  return FETCH_LOGS_SCRIPT_TEMPLATE.replace("__PARAMS__", b64);
}

/**
 * Parses the script's JSON (sample, hand-written: testdata/winevent-system.json) into entries, newest first:
 * timestamp from `time`, source = the provider, level mapped by {@link windowsLevelToSyslog}, message ("" when
 * null), pid when above 0. The "No events were found…" error (NoMatchingEventsFound) is an empty list; other
 * `{"error": …}` answers throw.
 */
export function parseWinEvents(text: string): RawEntry[] {
  let list;
  try {
    list = parsePsList(text, "Get-WinEvent");
  } catch (err) {
    if (/No events were found|NoMatchingEventsFound/i.test((err as Error).message)) return [];
    throw err;
  }
  const entries: Array<RawEntry & { ms: number }> = [];
  for (const e of list) {
    const ms = psDateMs(e["time"]);
    if (ms === undefined) continue;
    const provider = psString(e["provider"]);
    const level = psNumber(e["level"]) ?? 4;
    const pid = parsePid(psNumber(e["pid"]));
    entries.push({
      ms,
      timestamp: Math.floor(ms / 1000),
      source: provider || psString(e["log"]) || "eventlog",
      level: windowsLevelToSyslog(level),
      message: psString(e["message"]).replace(/\r\n/g, "\n").trimEnd(),
      pid,
    });
  }
  return entries.sort((a, b) => b.ms - a.ms).map(({ ms: _ms, ...e }) => e);
}

const QUERY_TIMEOUT_MS = 100_000;

/**
 * Reads the System and Application event logs (or the one log / provider named by the unit filter) through the
 * host's shared PowerShell session. When the answer is too large for the session's cap (25 000 long messages), asks
 * once more for a quarter of the entries with messages cut to 512 characters.
 */
export async function fetchLogsWindows(q: LogQuery, ctx: Pick<DiagnosticContext, "host" | "signal" | "logger">, ps?: PowerShellQuery): Promise<FetchLogsResult> {
  const lease = ps ? undefined : sharedPowerShell(ctx.host, { logger: ctx.logger });
  const session = ps ?? lease!;
  try {
    let text: string;
    try {
      text = await session.query(fetchLogsScript(winEventQuery(q)), QUERY_TIMEOUT_MS, ctx.signal);
    } catch (err) {
      if (ctx.signal.aborted || !/exceeds/.test((err as Error).message)) throw err;
      const smaller = Math.max(1, Math.ceil(q.limit / 4));
      ctx.logger.warn({ limit: q.limit, retryLimit: smaller }, "event log answer too large; asking for fewer, shorter entries");
      text = await session.query(fetchLogsScript(winEventQuery(q, 512, smaller)), QUERY_TIMEOUT_MS, ctx.signal);
    }
    const entries = parseWinEvents(text).slice(0, q.limit);
    return create(FetchLogsResultSchema, { source: "eventlog", entries: entries.map(toLogEntry) });
  } finally {
    await lease?.release();
  }
}
