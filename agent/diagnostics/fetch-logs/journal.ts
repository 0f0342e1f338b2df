import type { CommandRunner, ExecResult } from "../../host/host-access.js";
import { inWindow, parsePid, type LogQuery, type RawEntry, type SyslogLevel } from "./params.js";

/**
 * Fields asked of journalctl (`--output-fields`, systemd ≥ 236; the cursor and timestamps always come too). Keeps
 * each JSON line a few hundred bytes instead of a few kilobytes.
 */
export const JOURNAL_FIELDS = ["MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "SYSLOG_PID", "_PID", "_COMM", "_SYSTEMD_UNIT", "_TRANSPORT"];

/** Options that shape the journalctl command line. */
export interface JournalArgsOptions {
  /** Add `--output-fields` (false for systemd < 236, which refuses the option). */
  outputFields: boolean;
  /** Read the journal of a host mounted at this root (`--root`); "" = this system. */
  root: string;
}

/**
 * The journalctl argument array for a query (no shell; every value is one argument, `--opt=value` form so no value
 * can be taken for an option):
 * `--no-pager -o json --all -r -n <limit> [-p <max>] [--since=@s] [--until=@s] [--unit=u | _TRANSPORT=kernel]`.
 * `-r` (newest first) with `-n` gives the newest `limit` entries, and a cut output loses the oldest ones. `--all`
 * keeps fields over 4096 bytes (journalctl prints them as null otherwise); messages are capped when parsed. `-p` is
 * left out for DEBUG so entries without a PRIORITY field are not dropped. The unit "kernel" selects kernel messages.
 */
export function journalctlArgs(q: LogQuery, opts: JournalArgsOptions): string[] {
  const args = ["--no-pager", "-o", "json", "--all", "-r", "-n", String(q.limit)];
  if (opts.outputFields) args.push(`--output-fields=${JOURNAL_FIELDS.join(",")}`);
  if (opts.root !== "") args.push(`--root=${opts.root}`);
  if (q.maxLevel < 7) args.push("-p", String(q.maxLevel));
  if (q.since !== undefined) args.push(`--since=@${q.since}`);
  if (q.until !== undefined) args.push(`--until=@${q.until}`);
  if (q.unit === "kernel") args.push("_TRANSPORT=kernel");
  else if (q.unit !== "") args.push(`--unit=${q.unit}`);
  return args;
}

/**
 * A journal field value as text. journalctl writes a field as a string, as an array of byte values when it is not
 * valid UTF-8 or holds control characters (decoded here as UTF-8 with U+FFFD for bad sequences), as an array of
 * such values when the field occurs more than once (joined with newlines), or as null when too large.
 */
export function journalFieldText(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "number") return String(v);
  if (!Array.isArray(v)) return undefined;
  if (v.every((b) => typeof b === "number")) {
    const bytes = Uint8Array.from(v.map((b) => (Number.isInteger(b) && b >= 0 && b <= 255 ? b : 0x3f)));
    return Buffer.from(bytes).toString("utf8");
  }
  const parts = v.map(journalFieldText).filter((s): s is string => s !== undefined);
  return parts.length > 0 ? parts.join("\n") : undefined;
}

/**
 * journald's PRIORITY ("0"…"7"). Anything else (missing, "9", "x", a byte array) counts as INFO (6), the level
 * journald gives stdout streams, and so stays out of any query above INFO as it does with `journalctl -p`.
 */
export function journalPriority(v: unknown): SyslogLevel {
  const s = journalFieldText(v);
  return s !== undefined && /^[0-7]$/.test(s) ? (Number(s) as SyslogLevel) : 6;
}

/** Outcome of parsing journalctl JSON output. */
export interface ParsedJournal {
  entries: RawEntry[];
  /** Lines that were not a JSON object (a line cut by the output cap, garbage). */
  badLines: number;
}

/**
 * Parses `journalctl -o json` output (one JSON object per line; sample: testdata/journalctl-p3-json.ndjson) into
 * entries, in output order, keeping at most `q.limit` entries that pass the level and time filters (journalctl
 * applied them already; they are checked again so a misbehaving journalctl cannot widen the answer).
 * timestamp = `__REALTIME_TIMESTAMP` (µs) in seconds; source = SYSLOG_IDENTIFIER, else the unit, else _COMM;
 * pid = _PID, else SYSLOG_PID; process_name = _COMM.
 */
export function parseJournalJson(text: string, q: Pick<LogQuery, "maxLevel" | "since" | "until" | "limit">): ParsedJournal {
  const entries: RawEntry[] = [];
  let badLines = 0;
  let start = 0;
  while (start < text.length && entries.length < q.limit) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end).trim();
    start = end + 1;
    if (line === "") continue;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      badLines++;
      continue;
    }
    if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
      badLines++;
      continue;
    }
    const e = journalEntry(obj as Record<string, unknown>);
    if (e === undefined || e.level > q.maxLevel || !inWindow(q, e.timestamp)) continue;
    entries.push(e);
  }
  return { entries, badLines };
}

function journalEntry(o: Record<string, unknown>): RawEntry | undefined {
  const us = journalFieldText(o["__REALTIME_TIMESTAMP"]);
  if (us === undefined || !/^\d{1,20}$/.test(us)) return undefined;
  // µs since the epoch does not fit a double exactly beyond 2^53 µs (year 2255): dividing the string is enough.
  const timestamp = Number(us.length > 6 ? us.slice(0, -6) : "0");
  const comm = journalFieldText(o["_COMM"]);
  const source = journalFieldText(o["SYSLOG_IDENTIFIER"]) || journalFieldText(o["_SYSTEMD_UNIT"]) || comm || "journal";
  return {
    timestamp,
    source,
    level: journalPriority(o["PRIORITY"]),
    message: journalFieldText(o["MESSAGE"]) ?? "",
    pid: parsePid(journalFieldText(o["_PID"])) ?? parsePid(journalFieldText(o["SYSLOG_PID"])),
    processName: comm,
  };
}

/** The journal cannot answer on this host (missing, unreadable, empty): the caller falls back to log files. */
export class JournalUnavailableError extends Error {
  override name = "JournalUnavailableError";
}

/** Options for {@link readJournal}. */
export interface ReadJournalOptions {
  exec: CommandRunner;
  /** Program name or absolute path; default "journalctl" (looked up in the agent's PATH). */
  journalctl?: string;
  /** `--root` for a host mounted elsewhere; default "". */
  root?: string;
  timeoutMs: number;
  maxOutputBytes: number;
  signal?: AbortSignal;
}

/** What {@link readJournal} found. */
export interface JournalRead {
  entries: RawEntry[];
  /** The output cap or the timeout cut the answer (the newest entries are still there: the output is newest first). */
  truncated: boolean;
  /** Notes worth a log line (a permission hint, a cut answer). */
  warnings: string[];
}

const UNKNOWN_OPTION = /unrecognized option|unknown option|invalid option/i;
const NO_PERMISSION = /insufficient permissions|permission denied/i;

/**
 * Reads the journal through journalctl (argument arrays, timeout, output cap). Throws
 * {@link JournalUnavailableError} when journalctl is missing, cannot read the journal (no permission: the agent's
 * user needs the `systemd-journal` or `adm` group), fails, or when the journal holds no entries at all (journald not
 * running: an empty answer is then checked with an unfiltered `-n 1`). Other failures (abort) are rethrown.
 */
export async function readJournal(q: LogQuery, opts: ReadJournalOptions): Promise<JournalRead> {
  const file = opts.journalctl ?? "journalctl";
  const root = opts.root ?? "";
  const run = async (args: string[], maxOutputBytes: number): Promise<ExecResult> => {
    try {
      return await opts.exec.run(file, args, {
        timeoutMs: opts.timeoutMs,
        maxOutputBytes,
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
    } catch (cause) {
      if (opts.signal?.aborted) throw cause;
      const code = (cause as { cause?: { code?: string } }).cause?.code;
      throw new JournalUnavailableError(`${file} could not start${code ? ` (${code})` : ""}`, { cause });
    }
  };

  let res = await run(journalctlArgs(q, { outputFields: true, root }), opts.maxOutputBytes);
  if (res.exitCode !== 0 && !res.timedOut && !res.truncated && UNKNOWN_OPTION.test(res.stderr)) {
    // systemd < 236 has no --output-fields.
    res = await run(journalctlArgs(q, { outputFields: false, root }), opts.maxOutputBytes);
  }
  const stderr = firstLine(res.stderr);
  const cut = res.timedOut || res.truncated;
  if (!cut && res.exitCode !== 0) {
    if (NO_PERMISSION.test(res.stderr)) {
      throw new JournalUnavailableError(
        `journal not readable: ${stderr || "permission denied"} (add the agent's user to the systemd-journal or adm group)`,
      );
    }
    throw new JournalUnavailableError(`${file} failed (exit ${res.exitCode ?? res.signal ?? "?"})${stderr ? `: ${stderr}` : ""}`);
  }
  // Complete lines only: a cut answer ends inside a JSON object.
  const text = cut ? res.stdout.slice(0, res.stdout.lastIndexOf("\n") + 1) : res.stdout;
  const parsed = parseJournalJson(text, q);
  const warnings: string[] = [];
  if (cut) {
    if (parsed.entries.length === 0) {
      throw new JournalUnavailableError(res.timedOut ? `${file} timed out after ${opts.timeoutMs} ms` : `${file} answer over the output cap`);
    }
    warnings.push(`journal answer cut (${res.timedOut ? "timeout" : "output cap"}); older entries left out`);
  }
  if (parsed.badLines > 0) warnings.push(`${parsed.badLines} journal lines were not JSON`);
  // Exit 0 with a hint: the user sees only its own journal.
  if (/not seeing messages from other users/i.test(res.stderr)) warnings.push(stderr);

  if (parsed.entries.length === 0) {
    // No match, or no journal at all (journald not running, as in a container)? Ask for any single entry.
    const probe = await run(["--no-pager", "-o", "json", "-n", "1", ...(root !== "" ? [`--root=${root}`] : [])], 64 * 1024);
    if (probe.exitCode === 0 && probe.stdout.trim() === "") throw new JournalUnavailableError("the journal has no entries");
  }
  return { entries: parsed.entries, truncated: cut, warnings };
}

function firstLine(s: string): string {
  return s.trim().split("\n")[0]?.trim() ?? "";
}
