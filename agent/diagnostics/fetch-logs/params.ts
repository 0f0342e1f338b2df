import { create } from "@bufbuild/protobuf";
import { LogEntrySchema, LogLevel, type FetchLogsParams, type LogEntry } from "../../../gen/spectra/v1/diagnostics_pb.js";
import type { Platform } from "../../collectors/types.js";

/** Legacy level names by syslog severity (0 = EMERGENCY … 7 = DEBUG), as the original wrote them in `level`. */
export const LEVEL_NAMES = ["EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG"] as const;

/** A syslog severity, 0 (most severe) to 7. */
export type SyslogLevel = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7;

/** Default and hard cap of `limit`, as in the original agent. */
export const LOG_LIMIT: Readonly<Record<Platform, number>> = { linux: 10_000, windows: 25_000 };

/** Longest message kept per entry (characters); longer ones are cut, so one runaway line cannot fill the result. */
export const MAX_MESSAGE_CHARS = 8192;

/** Parameters after validation: what the per-source readers get. */
export interface LogQuery {
  /** Entries at this syslog severity or more severe (numerically ≤) are kept. */
  maxLevel: SyslogLevel;
  /** Unix seconds, inclusive; undefined = unbounded. */
  since: number | undefined;
  /** Unix seconds, inclusive; undefined = unbounded. */
  until: number | undefined;
  /** Unit (Linux) or log/provider (Windows) filter; "" = none. */
  unit: string;
  /** 1 … LOG_LIMIT[platform]. */
  limit: number;
}

/**
 * systemd unit name grammar (unit-name.c: letters, digits and ":-_.\@"), at most 255 characters, plus the rule that
 * the name does not start with "-" or "." (so it can never be read as an option; "-.mount" and "-.slice" are refused).
 * journalctl appends ".service" to a name without a unit suffix ("ssh" → "ssh.service").
 */
const UNIT_NAME = /^[A-Za-z0-9:_@\\][A-Za-z0-9:_.@\\-]{0,254}$/;

/**
 * Windows: a log name or an event provider name ("Service Control Manager", "Microsoft-Windows-Kernel-Power"). The
 * value reaches PowerShell as base64 JSON data, never as script text; the grammar only keeps the filter sane.
 */
const WINDOWS_SOURCE = /^[A-Za-z0-9][A-Za-z0-9 ._()/-]{0,254}$/;

/** Raised for parameters the agent refuses (the message goes back to the server as the command's error). */
export class InvalidLogParamsError extends Error {
  override name = "InvalidLogParamsError";
}

/**
 * Validates FetchLogsParams again on the agent (the server did too) and fills the defaults: min_level ERROR when
 * unspecified, limit the platform default when 0 and clamped to the platform cap (10 000 Linux, 25 000 Windows),
 * 0 ≤ since ≤ until, the unit filter by grammar. Throws {@link InvalidLogParamsError}.
 */
export function normalizeLogQuery(params: FetchLogsParams, platform: Platform): LogQuery {
  const level = params.minLevel === LogLevel.UNSPECIFIED ? LogLevel.ERROR : params.minLevel;
  if (!Number.isInteger(level) || level < LogLevel.EMERGENCY || level > LogLevel.DEBUG) {
    throw new InvalidLogParamsError(`unknown min_level ${params.minLevel}`);
  }
  const since = params.since ? Number(params.since.seconds) : undefined;
  const until = params.until ? Number(params.until.seconds) : undefined;
  if ((since !== undefined && since < 0) || (until !== undefined && until < 0)) throw new InvalidLogParamsError("since and until must be after 1970");
  if (since !== undefined && until !== undefined && since > until) throw new InvalidLogParamsError("since is after until");
  const unit = params.unit;
  if (unit !== "") {
    const ok = platform === "windows" ? WINDOWS_SOURCE.test(unit) : UNIT_NAME.test(unit);
    if (!ok) throw new InvalidLogParamsError(`invalid ${platform === "windows" ? "source" : "unit"} ${JSON.stringify(unit.slice(0, 300))}`);
  }
  const cap = LOG_LIMIT[platform];
  const limit = params.limit === 0 ? cap : Math.min(params.limit, cap);
  return { maxLevel: (level - 1) as SyslogLevel, since, until, unit, limit };
}

/** True when `t` (unix seconds) is inside the query's window. */
export function inWindow(q: Pick<LogQuery, "since" | "until">, t: number): boolean {
  return (q.since === undefined || t >= q.since) && (q.until === undefined || t <= q.until);
}

/** Cuts a message to {@link MAX_MESSAGE_CHARS} (marking the cut with "…"). */
export function capMessage(message: string): string {
  return message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS - 1)}…` : message;
}

/** Fields of one entry before it becomes a message. */
export interface RawEntry {
  /** Unix seconds. */
  timestamp: number;
  source: string;
  level: SyslogLevel;
  message: string;
  pid?: number | undefined;
  processName?: string | undefined;
}

/** Builds a LogEntry (legacy shape: unix seconds, level name, optional pid and process name). */
export function toLogEntry(e: RawEntry): LogEntry {
  return create(LogEntrySchema, {
    timestamp: BigInt(Math.floor(e.timestamp)),
    source: e.source,
    level: LEVEL_NAMES[e.level],
    message: capMessage(e.message),
    ...(e.pid !== undefined ? { pid: e.pid } : {}),
    ...(e.processName ? { processName: e.processName } : {}),
  });
}

/** A pid from a decimal string or number when it is a positive 32-bit integer, else undefined. */
export function parsePid(v: unknown): number | undefined {
  const n = typeof v === "number" ? v : typeof v === "string" && /^\d{1,10}$/.test(v) ? Number(v) : NaN;
  return Number.isInteger(n) && n > 0 && n <= 0x7fffffff ? n : undefined;
}
