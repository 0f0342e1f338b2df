/** Seconds since boot from `/proc/uptime` ("545.16 668.92": uptime, then idle time summed over CPUs). */
export function parseUptime(text: string): number {
  const n = Number.parseFloat(text);
  if (!Number.isFinite(n) || n < 0) throw new Error(`unexpected uptime: ${JSON.stringify(text.slice(0, 40))}`);
  return n;
}

/** Boot time in Unix seconds from the `btime` line of `/proc/stat`, or undefined when there is none. */
export function parseBtime(statText: string): number | undefined {
  let at = 0;
  if (!statText.startsWith("btime ")) {
    const i = statText.indexOf("\nbtime ");
    if (i < 0) return undefined;
    at = i + 1;
  }
  let end = statText.indexOf("\n", at);
  if (end < 0) end = statText.length;
  const n = Number(statText.slice(at + 6, end).trim());
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

/** Number of processes: the numeric entries of a `/proc` listing (not loadavg's count, which is threads). */
export function countProcessEntries(names: readonly string[]): number {
  let n = 0;
  for (const name of names) {
    const c = name.charCodeAt(0);
    if (c >= 48 && c <= 57) n++;
  }
  return n;
}

/** Size of one glibc `struct utmp` record on Linux (x86-64, arm64, armhf and i386 alike). */
export const UTMP_RECORD_BYTES = 384;
/** `ut_type` of a login session. */
export const UTMP_USER_PROCESS = 7;

/** One login record of utmp. */
export interface UtmpEntry {
  type: number;
  pid: number;
  /** Terminal, e.g. "pts/0". */
  line: string;
  user: string;
  host: string;
  /** Login time, Unix seconds. */
  timeSec: number;
}

function cString(buf: Buffer, start: number, len: number): string {
  const end = buf.indexOf(0, start);
  return buf.toString("utf8", start, end >= start && end < start + len ? end : start + len);
}

/**
 * Decodes a binary utmp file (`/var/run/utmp`): 384-byte records with `ut_type` (int16) at 0, `ut_pid` at 4,
 * `ut_line[32]` at 8, `ut_user[32]` at 44, `ut_host[256]` at 76, `ut_tv.tv_sec` (int32) at 340. Records are in
 * the host's byte order; a trailing partial record (file being written) is ignored.
 */
export function parseUtmp(buf: Buffer, littleEndian = true): UtmpEntry[] {
  const out: UtmpEntry[] = [];
  for (let off = 0; off + UTMP_RECORD_BYTES <= buf.length; off += UTMP_RECORD_BYTES) {
    out.push({
      type: littleEndian ? buf.readInt16LE(off) : buf.readInt16BE(off),
      pid: littleEndian ? buf.readInt32LE(off + 4) : buf.readInt32BE(off + 4),
      line: cString(buf, off + 8, 32),
      user: cString(buf, off + 44, 32),
      host: cString(buf, off + 76, 256),
      timeSec: littleEndian ? buf.readInt32LE(off + 340) : buf.readInt32BE(off + 340),
    });
  }
  return out;
}

/**
 * Logged-in sessions as `who`/`uptime` count them: USER_PROCESS records with a user name. A user with two
 * terminals counts twice, like the legacy agent's `users`.
 */
export function countUtmpUsers(buf: Buffer, littleEndian = true): number {
  let n = 0;
  for (let off = 0; off + UTMP_RECORD_BYTES <= buf.length; off += UTMP_RECORD_BYTES) {
    const type = littleEndian ? buf.readInt16LE(off) : buf.readInt16BE(off);
    if (type === UTMP_USER_PROCESS && buf[off + 44] !== 0) n++;
  }
  return n;
}
