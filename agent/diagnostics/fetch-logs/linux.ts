import { create } from "@bufbuild/protobuf";
import { FetchLogsResultSchema, type FetchLogsResult } from "../../../gen/spectra/v1/diagnostics_pb.js";
import type { DiagnosticContext } from "../registry.js";
import { JournalUnavailableError, readJournal } from "./journal.js";
import { readKmsg } from "./kmsg.js";
import { toLogEntry, type LogQuery, type RawEntry } from "./params.js";
import { readSyslogFile } from "./syslog.js";

/** Where and how the Linux sources are read; every path is injectable (tests, an agent in a container). */
export interface LinuxLogOptions {
  /** false skips the journal (as if journalctl were missing). Default true. */
  journal?: boolean;
  /** Program for the journal; default "journalctl". */
  journalctl?: string;
  /** Timeout of the journalctl run; default 45 s. */
  journalTimeoutMs?: number;
  /** Output cap of the journalctl run; default 16 MiB. */
  journalMaxBytes?: number;
  /** Syslog files, first readable one wins; default `<rootfs>/var/log/syslog`, `<rootfs>/var/log/messages`. */
  syslogPaths?: readonly string[];
  /** Bytes read at most from the end of a syslog file; default 8 MiB. */
  syslogMaxBytes?: number;
  /** The kernel ring buffer; default /dev/kmsg ("" skips it). */
  kmsgPath?: string;
  /** Boot time for kmsg timestamps (ms since the epoch); default from the monotonic clock. */
  bootTimeMs?: number;
  /** Clock for the RFC 3164 year guess; default Date.now. */
  now?: () => number;
}

const DEFAULT_JOURNAL_TIMEOUT_MS = 45_000;
const DEFAULT_JOURNAL_MAX_BYTES = 16 * 1024 * 1024;
const DEFAULT_SYSLOG_MAX_BYTES = 8 * 1024 * 1024;
const KMSG_MAX_BYTES = 64 * 1024 * 1024;

/**
 * Fetches logs on Linux, newest first, from the first source that can answer:
 * 1. the journal (`journalctl -o json -r`, see journal.ts) — unless it is missing, unreadable or empty;
 * 2. the first readable file of `/var/log/syslog`, `/var/log/messages` (read backwards from the end, bounded; levels
 *    from `<PRI>` when written, else keyword heuristics, see syslog.ts);
 * 3. the kernel ring buffer (`/dev/kmsg`, see kmsg.ts).
 * `source` in the result names the one used. Throws when none can be read, naming why each failed.
 */
export async function fetchLogsLinux(
  q: LogQuery,
  ctx: Pick<DiagnosticContext, "host" | "signal" | "logger" | "markTruncated">,
  opts: LinuxLogOptions = {},
): Promise<FetchLogsResult> {
  const rootfs = ctx.host.paths.rootfs;
  const failures: string[] = [];
  const done = (source: string, entries: RawEntry[], truncated: boolean, note?: string): FetchLogsResult => {
    if (failures.length > 0) ctx.logger.info({ source, unavailable: failures }, "logs read from a fallback source");
    if (truncated) {
      ctx.logger.warn({ source, entries: entries.length }, note ?? "log read cut by a bound; older entries left out");
      ctx.markTruncated?.();
    }
    return create(FetchLogsResultSchema, { source, entries: entries.slice(0, q.limit).map(toLogEntry) });
  };

  if (opts.journal !== false) {
    try {
      const j = await readJournal(q, {
        exec: ctx.host.exec,
        timeoutMs: opts.journalTimeoutMs ?? DEFAULT_JOURNAL_TIMEOUT_MS,
        maxOutputBytes: opts.journalMaxBytes ?? DEFAULT_JOURNAL_MAX_BYTES,
        root: rootfs,
        signal: ctx.signal,
        ...(opts.journalctl ? { journalctl: opts.journalctl } : {}),
      });
      for (const w of j.warnings) ctx.logger.warn({ source: "journal" }, w);
      return done("journal", j.entries, false);
    } catch (err) {
      if (!(err instanceof JournalUnavailableError)) throw err;
      failures.push(`journal: ${err.message}`);
    }
  }

  const nowMs = (opts.now ?? Date.now)();
  for (const path of opts.syslogPaths ?? [`${rootfs}/var/log/syslog`, `${rootfs}/var/log/messages`]) {
    try {
      const s = await readSyslogFile(path, q, { maxBytes: opts.syslogMaxBytes ?? DEFAULT_SYSLOG_MAX_BYTES, nowMs, signal: ctx.signal });
      return done("syslog", s.entries, s.truncated, `read only the last ${s.bytesRead} bytes of ${path}`);
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      failures.push(`${path}: ${errCode(err)}`);
    }
  }

  const kmsgPath = opts.kmsgPath ?? "/dev/kmsg";
  if (kmsgPath !== "") {
    try {
      const k = await readKmsg(kmsgPath, q, {
        maxBytes: KMSG_MAX_BYTES,
        signal: ctx.signal,
        ...(opts.bootTimeMs !== undefined ? { bootTimeMs: opts.bootTimeMs } : {}),
      });
      return done("kmsg", k.entries, k.truncated);
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      const code = errCode(err);
      failures.push(`${kmsgPath}: ${code}${code === "EPERM" || code === "EACCES" ? " (needs root or CAP_SYSLOG with kernel.dmesg_restrict=1)" : ""}`);
    }
  }
  throw new Error(`no readable log source: ${failures.join("; ")}`);
}

function errCode(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" ? code : err instanceof Error ? err.message : String(err);
}
