import { open } from "node:fs/promises";
import { inWindow, parsePid, type LogQuery, type RawEntry, type SyslogLevel } from "./params.js";

/** One parsed syslog line, before the level filter. */
export interface SyslogLine {
  /** Milliseconds since the epoch. */
  timeMs: number;
  host: string;
  /** Program name ("sshd", "kernel"); "" when the line has no tag. */
  tag: string;
  pid: number | undefined;
  message: string;
  /** From a `<PRI>` prefix (RFC 5424, or a template that writes it); undefined when the text has no severity. */
  level: SyslogLevel | undefined;
}

const MONTHS: Record<string, number> = { Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11 };

// "<34>" (optional): facility * 8 + severity.
const PRI = /^<(\d{1,3})>/;
// RFC 5424: "1 TIMESTAMP HOST APP PROCID MSGID SD MSG" (rsyslog RSYSLOG_SyslogProtocol23Format).
const RFC5424 = /^1 (\S+) (\S+) (\S+) (\S+) (\S+) (-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: (.*))?$/s;
// ISO timestamp first: rsyslog's high-precision default (Debian ≥ 12 rsyslog, "2026-11-27T08:53:58.123456+00:00")
// and journalctl's short-iso ("2026-11-27T08:53:50+0000").
const ISO = /^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)\s+(\S+)\s?(.*)$/s;
// RFC 3164 / rsyslog traditional: "Nov 27 08:53:58 host rest" (no year, local time).
const RFC3164 = /^([A-Z][a-z]{2})\s+(\d{1,2}) (\d{2}):(\d{2}):(\d{2})\s+(\S+)\s?(.*)$/s;
// "tag[pid]: message" or "tag: message".
const TAG = /^([^\s[\]:]{1,128})(?:\[(\d{1,10})\])?:\s?(.*)$/s;

/**
 * Parses one syslog file line. Formats: RFC 3164 (`Nov 27 08:53:58 vm sshd[20158]: msg`, local time, the year
 * guessed as the latest one not more than a day in the future of `nowMs`), ISO 8601 first (`2026-11-27T08:53:58+00:00
 * vm sshd[20158]: msg`, rsyslog's high-precision format and journalctl's short-iso) and RFC 5424 (`<34>1 2026-…Z vm
 * sshd 20158 - - msg`), each with an optional `<PRI>` prefix. Returns undefined for a line that is none of these
 * (a continuation line, a line cut in the middle). Samples: testdata/syslog-*.log.
 */
export function parseSyslogLine(line: string, nowMs: number): SyslogLine | undefined {
  let rest = line;
  let level: SyslogLevel | undefined;
  const pri = PRI.exec(rest);
  if (pri) {
    const n = Number(pri[1]);
    if (n > 191) return undefined;
    level = (n & 7) as SyslogLevel;
    rest = rest.slice(pri[0].length);
  }

  const r5424 = pri ? RFC5424.exec(rest) : null;
  if (r5424) {
    const timeMs = r5424[1] === "-" ? NaN : parseIsoMs(r5424[1]!);
    if (Number.isNaN(timeMs)) return undefined;
    const nil = (s: string | undefined): string => (s === undefined || s === "-" ? "" : s);
    const pid = /^\d{1,10}$/.test(r5424[4]!) ? Number(r5424[4]) : undefined;
    return { timeMs, host: nil(r5424[2]), tag: nil(r5424[3]), pid, message: (r5424[7] ?? "").replace(/^\uFEFF/, ""), level };
  }

  let timeMs: number;
  let host: string;
  let body: string;
  const iso = ISO.exec(rest);
  if (iso) {
    timeMs = parseIsoMs(iso[1]!);
    host = iso[2]!;
    body = iso[3]!;
  } else {
    const bsd = RFC3164.exec(rest);
    if (!bsd) return undefined;
    const month = MONTHS[bsd[1]!];
    if (month === undefined) return undefined;
    timeMs = bsdTimeMs(month, Number(bsd[2]), Number(bsd[3]), Number(bsd[4]), Number(bsd[5]), nowMs);
    host = bsd[6]!;
    body = bsd[7]!;
  }
  if (Number.isNaN(timeMs)) return undefined;
  const tag = TAG.exec(body);
  if (!tag) return { timeMs, host, tag: "", pid: undefined, message: body, level };
  return { timeMs, host, tag: tag[1]!, pid: tag[2] !== undefined ? Number(tag[2]) : undefined, message: tag[3]!, level };
}

function parseIsoMs(s: string): number {
  // "2026-11-27 08:53:58,123+0000" → a form Date.parse accepts everywhere.
  const norm = s.replace(" ", "T").replace(",", ".").replace(/([+-]\d{2})(\d{2})$/, "$1:$2");
  // Without a zone, ISO date-times are local time to Date.parse, as syslog means them.
  return Date.parse(norm);
}

function bsdTimeMs(month: number, day: number, h: number, m: number, s: number, nowMs: number): number {
  const year = new Date(nowMs).getFullYear();
  const t = new Date(year, month, day, h, m, s).getTime();
  // December's lines read in January belong to last year.
  return t > nowMs + 86_400_000 ? new Date(year - 1, month, day, h, m, s).getTime() : t;
}

// Keyword heuristics, most severe first; the first match decides. Whole words, case-insensitive.
const LEVEL_KEYWORDS: ReadonlyArray<readonly [SyslogLevel, RegExp]> = [
  [0, /\b(?:emerg|emergency|panic)\b/i],
  [1, /\balert\b/i],
  [2, /\b(?:crit|critical|fatal)\b/i],
  [3, /\b(?:err|error|errors|fail|failed|failure|failing|denied|refused|unable|cannot|segfault|oops|bug|out of memory)\b|\bcan't\b/i],
  [4, /\b(?:warn|warning|warnings|deprecated)\b/i],
  [5, /\bnotice\b/i],
  [7, /\bdebug\b/i],
];

/**
 * A severity for a syslog line whose text carries none (the usual rsyslog templates write no priority): the first
 * matching keyword class, most severe first — emerg/panic → EMERGENCY, alert → ALERT, crit/fatal → CRITICAL,
 * error/failed/denied/unable/cannot/segfault/out of memory… → ERROR, warn/deprecated → WARNING, notice → NOTICE, debug → DEBUG,
 * anything else INFO. A heuristic: it errs towards reporting a line as more severe than it was.
 */
export function guessLevel(message: string): SyslogLevel {
  for (const [level, re] of LEVEL_KEYWORDS) if (re.test(message)) return level;
  return 6;
}

/** The unit filter against a syslog tag: the tag equals the unit, or the unit without its ".service" suffix. */
export function tagMatchesUnit(tag: string, unit: string): boolean {
  return unit === "" || tag === unit || tag === unit.replace(/\.service$/, "");
}

/** Options for {@link readSyslogFile}. */
export interface ReadSyslogOptions {
  /** Stop after reading this many bytes from the end of the file. */
  maxBytes: number;
  /** Size of each backward read; default 64 KiB. */
  chunkBytes?: number;
  nowMs: number;
  signal?: AbortSignal;
}

/** What {@link readSyslogFile} found. */
export interface SyslogRead {
  /** Newest first. */
  entries: RawEntry[];
  /** The byte cap stopped the read before the start of the file (older lines left out). */
  truncated: boolean;
  bytesRead: number;
}

/** Continuation lines kept per entry. */
const MAX_CONTINUATION_LINES = 64;
/** Lines older than `since` in a row before the backward read stops (syslog order is arrival order, not strictly time). */
const OLDER_LINES_BEFORE_STOP = 100;

/**
 * Reads a syslog file from its END backwards in chunks (never the whole file: at most `maxBytes`), parsing lines
 * newest first until `q.limit` entries matched, the byte cap, the start of the file, or a run of lines older than
 * `q.since`. Lines that do not parse (indented continuation lines, `journalctl -o short-iso`'s wrapped messages) are
 * joined to the entry above them; a first line cut by the byte cap is dropped. The level is the `<PRI>` one when the
 * line has it, else {@link guessLevel}. Throws the open error (ENOENT, EACCES) for the caller's fallback.
 */
export async function readSyslogFile(path: string, q: LogQuery, opts: ReadSyslogOptions): Promise<SyslogRead> {
  const chunkBytes = opts.chunkBytes ?? 64 * 1024;
  const fh = await open(path, "r");
  try {
    const size = (await fh.stat()).size;
    let pos = size;
    let bytesRead = 0;
    let carry: Buffer = Buffer.alloc(0);
    const entries: RawEntry[] = [];
    let continuation: string[] = [];
    let olderInARow = 0;
    let done = false;

    const takeLine = (line: string): void => {
      if (line.trim() === "") return;
      const parsed = parseSyslogLine(line, opts.nowMs);
      if (!parsed) {
        if (continuation.length < MAX_CONTINUATION_LINES) continuation.unshift(line.trim());
        return;
      }
      const more = continuation;
      continuation = [];
      const t = Math.floor(parsed.timeMs / 1000);
      if (q.since !== undefined && t < q.since) {
        if (++olderInARow >= OLDER_LINES_BEFORE_STOP) done = true;
        return;
      }
      olderInARow = 0;
      if (!inWindow(q, t) || !tagMatchesUnit(parsed.tag, q.unit)) return;
      const message = more.length > 0 ? [parsed.message, ...more].join("\n") : parsed.message;
      const level = parsed.level ?? guessLevel(message);
      if (level > q.maxLevel) return;
      entries.push({
        timestamp: t,
        source: parsed.tag || parsed.host || "syslog",
        level,
        message,
        pid: parsePid(parsed.pid),
        processName: parsed.tag || undefined,
      });
      if (entries.length >= q.limit) done = true;
    };

    while (pos > 0 && !done && bytesRead < opts.maxBytes) {
      opts.signal?.throwIfAborted();
      const len = Math.min(chunkBytes, pos, opts.maxBytes - bytesRead);
      pos -= len;
      const buf = Buffer.allocUnsafe(len);
      const { bytesRead: n } = await fh.read(buf, 0, len, pos);
      bytesRead += n;
      // Split on "\n" bytes, so a multi-byte character is never cut; the part before the first "\n" may continue
      // in the older chunk and is carried.
      const data = carry.length > 0 ? Buffer.concat([buf.subarray(0, n), carry]) : buf.subarray(0, n);
      let end = data.length;
      while (!done && end > 0) {
        const i = data.lastIndexOf(0x0a, end - 1);
        if (i < 0) break;
        if (i + 1 < end) takeLine(data.toString("utf8", i + 1, end));
        end = i;
      }
      carry = Buffer.from(data.subarray(0, end));
    }
    // The file's first line is whole; a line where the byte cap stopped is not (dropped).
    if (!done && pos === 0 && carry.length > 0) takeLine(carry.toString("utf8"));
    return { entries, truncated: !done && pos > 0, bytesRead };
  } finally {
    await fh.close();
  }
}
