import { closeSync, constants, openSync, readSync } from "node:fs";
import { setImmediate as yieldToLoop } from "node:timers/promises";
import { inWindow, parsePid, type LogQuery, type RawEntry, type SyslogLevel } from "./params.js";

/** One record of the kernel ring buffer. */
export interface KmsgRecord {
  /** Syslog severity (the low 3 bits of the priority). */
  level: SyslogLevel;
  /** Syslog facility (0 = kernel; userspace writers of /dev/kmsg use others). */
  facility: number;
  seq: number;
  /** Microseconds since boot (the kernel's monotonic clock). */
  usec: number;
  message: string;
}

// "PRI,SEQ,USEC,FLAGS[,…];MESSAGE" (Documentation/ABI/testing/dev-kmsg).
const HEADER = /^(\d{1,4}),(\d+),(\d+),[^;]*;(.*)$/s;

/**
 * Parses `/dev/kmsg` records (sample: testdata/kmsg.txt). Each record is a header line `6,1234,5678901,-;text`
 * followed by dictionary lines that start with a space (` SUBSYSTEM=…`, ignored). The kernel writes non-printable
 * bytes as `\xNN`; they are turned back into bytes and decoded as UTF-8 (lossy). Lines that are neither are skipped.
 */
export function parseKmsgLine(line: string): KmsgRecord | undefined {
  const m = HEADER.exec(line);
  if (!m) return undefined;
  const pri = Number(m[1]);
  return {
    level: (pri & 7) as SyslogLevel,
    facility: pri >> 3,
    seq: Number(m[2]),
    usec: Number(m[3]),
    message: unescapeKmsg(m[4]!),
  };
}

function unescapeKmsg(s: string): string {
  if (!s.includes("\\x")) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; ) {
    if (s[i] === "\\" && s[i + 1] === "x" && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 2, i + 4))) {
      bytes.push(parseInt(s.slice(i + 2, i + 4), 16));
      i += 4;
      continue;
    }
    const cp = s.codePointAt(i)!;
    for (const b of Buffer.from(String.fromCodePoint(cp), "utf8")) bytes.push(b);
    i += cp > 0xffff ? 2 : 1;
  }
  return Buffer.from(bytes).toString("utf8");
}

/** Turns a kernel record into an entry; userspace records ("systemd[1]: …") get their tag as source. */
export function kmsgEntry(r: KmsgRecord, bootTimeMs: number): RawEntry {
  const timestamp = Math.floor((bootTimeMs + r.usec / 1000) / 1000);
  if (r.facility !== 0) {
    const tag = /^([^\s[\]:]{1,64})(?:\[(\d{1,10})\])?: ?(.*)$/s.exec(r.message);
    if (tag) return { timestamp, source: tag[1]!, level: r.level, message: tag[3]!, pid: parsePid(tag[2]), processName: tag[1] };
  }
  return { timestamp, source: "kernel", level: r.level, message: r.message };
}

/** Boot time in ms since the epoch, on the clock the kernel stamps records with (CLOCK_MONOTONIC, via hrtime). */
export function monotonicBootTimeMs(): number {
  return Date.now() - Number(process.hrtime.bigint() / 1_000_000n);
}

/** Options for {@link readKmsg}. */
export interface ReadKmsgOptions {
  /** Stop after this many bytes (the ring buffer is at most a few MiB; this guards a wrong path). */
  maxBytes: number;
  /** Default {@link monotonicBootTimeMs}. */
  bootTimeMs?: number;
  signal?: AbortSignal;
}

/** What {@link readKmsg} found. */
export interface KmsgRead {
  /** Newest first. */
  entries: RawEntry[];
  truncated: boolean;
}

const READ_BUFFER_BYTES = 64 * 1024;
const READS_PER_SLICE = 256;

/**
 * Reads the kernel ring buffer from `path` (normally /dev/kmsg) without blocking: opened O_NONBLOCK, read record by
 * record until EAGAIN (the end), skipping EPIPE (records overwritten while reading). Reads are synchronous (each is a
 * memory copy in the kernel) in slices of 256 with a yield to the event loop between slices. A regular file with
 * the same text works too (tests). Keeps the newest `q.limit` records at or above the level, in the window, and,
 * with a unit filter, only kernel records for "kernel" or records whose tag is the unit. Reading needs root or
 * CAP_SYSLOG when `kernel.dmesg_restrict` is 1; the open error is thrown for the caller.
 */
export async function readKmsg(path: string, q: LogQuery, opts: ReadKmsgOptions): Promise<KmsgRead> {
  const bootTimeMs = opts.bootTimeMs ?? monotonicBootTimeMs();
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const kept: RawEntry[] = [];
  let truncated = false;
  try {
    const buf = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    let total = 0;
    let carry = "";
    let reads = 0;
    let overwritten = 0;
    const take = (line: string): void => {
      const r = parseKmsgLine(line);
      if (!r || r.level > q.maxLevel) return;
      const e = kmsgEntry(r, bootTimeMs);
      if (!inWindow(q, e.timestamp)) return;
      if (q.unit !== "" && !(q.unit === "kernel" ? e.source === "kernel" : e.source === q.unit.replace(/\.service$/, ""))) return;
      kept.push(e);
      // Keep only the newest `limit`; trim in steps so this stays linear.
      if (kept.length >= 2 * q.limit) kept.splice(0, kept.length - q.limit);
    };
    for (;;) {
      if (total >= opts.maxBytes) {
        truncated = true;
        break;
      }
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // The record we were at was overwritten; the next read goes on with the oldest one left.
        if (code === "EPIPE" && ++overwritten < 1000) continue;
        if (code === "EAGAIN" || code === "EWOULDBLOCK") break; // end of the buffer
        throw err;
      }
      if (n === 0) break; // end of a regular file
      total += n;
      const text = carry + buf.toString("utf8", 0, n);
      const lines = text.split("\n");
      carry = lines.pop() ?? "";
      for (const line of lines) if (line !== "" && line[0] !== " ") take(line);
      if (++reads % READS_PER_SLICE === 0) {
        await yieldToLoop();
        opts.signal?.throwIfAborted();
      }
    }
    if (carry !== "" && carry[0] !== " ") take(carry);
  } finally {
    closeSync(fd);
  }
  return { entries: kept.slice(-q.limit).reverse(), truncated };
}
