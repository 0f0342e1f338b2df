import fs from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { crc32 } from "node:zlib";
import { fromBinary } from "@bufbuild/protobuf";
import type { Logger } from "../../common/logger.js";
import { fastToBinary } from "../../common/proto/fast-encode.js";
import {
  MetricBatchSchema,
  type CollectorStatus,
  type MetricBatch,
  type MetricEnvelope,
} from "../../gen/spectra/v1/metrics_pb.js";

/*
 * Format: append-only segment files plus one small state file, in the data directory.
 *
 *   spool-<first sequence, 20 digits>.seg   header, then records; a new segment starts when one is full
 *     header:  "SPECTRA-SPOOL-1\n" (16 bytes), u16 length of the session id, session id (ASCII)
 *     record:  u32 payload length, u32 CRC-32 of the payload, payload
 *     payload: u8 version (1), f64 sequence, f64 created (ms since the epoch), u16 length of the counts,
 *              envelopes per collector as JSON, the MetricBatch protobuf
 *   spool-state.json   {version, sessionId, ackedThrough, ackedAbove, nextSequence, dropped}; replaced atomically
 *                      (write spool-state.json.tmp, fsync, rename, fsync the directory)
 *   spool.lock         pid and start time of the agent using the directory
 *
 * Durability without stalling the event loop: segments are opened with O_DSYNC (write + fdatasync on platforms
 * without it), and every write runs in libuv's thread pool; append() resolves once the record is on disk, and only
 * then can read() return it, so a batch is on disk before it is sent.
 *
 * Crash safety: a record the agent was writing when it died (or the zeros a power cut can leave after it) fails its
 * length or CRC check and is cut off when the spool opens; it was never sent, so its sequence may be handed out
 * again. A damaged record elsewhere is skipped and its envelopes are counted as dropped. Acknowledged and dropped
 * batches are retired in the state file (a watermark plus the few retired above it) before a segment whose
 * batches are all retired is deleted, so the highest sequence ever sent is always in a segment or at most the
 * watermark: a sequence is never reused, after a power cut either. The session id is in the state file and in
 * every segment header; an unreadable state file is moved aside and the session recovered from the segments
 * (batches already acknowledged are then sent again, and the server recognises them as duplicates).
 */

/** Options for {@link openSpool}. */
export interface SpoolOptions {
  /** Data directory; created when missing. */
  dir: string;
  /** Bound on the stored batch bytes; the oldest batches go first. */
  maxBytes: number;
  /** Bound on batch age. */
  maxAgeMs: number;
  logger: Logger;
  /** Called with envelope counts per collector whenever batches are dropped (full, too old, corrupt, unwritable). */
  onDrop?: (countsByCollector: Record<string, number>) => void;
  now?: () => number;
  /** A segment file is closed and a new one started past this size; default maxBytes/16, within 16 KiB..4 MiB. */
  segmentBytes?: number;
  /** Longest delay before acknowledgements are saved; default 60 s (see persistAcksLater). */
  ackSaveDelayMs?: number;
}

/** What goes into one batch. */
export interface SpoolAppend {
  hostname: string;
  envelopes: readonly MetricEnvelope[];
  collectorStatus: readonly CollectorStatus[];
  /** Envelopes per collector, kept so drops can be reported per collector. */
  countsByCollector: Readonly<Record<string, number>>;
}

/** One stored batch. */
export interface SpooledBatch {
  sequence: bigint;
  /** The batch, decoded from {@link data} on first access. */
  readonly batch: MetricBatch;
  /** The MetricBatch protobuf as stored; the sender passes it on without decoding it. */
  data: Uint8Array;
  /** Size of {@link data}. */
  bytes: number;
  createdMs: number;
}

/** Durable, bounded store of batches not yet acknowledged by the server. */
export interface Spool {
  /** Random id of this spool's sequence space; kept across restarts, new when the spool is lost. */
  readonly sessionId: string;
  /**
   * Stores a batch under the next sequence number and enforces the bounds. Resolves with the sequence once the
   * batch is on disk, or with undefined when it could not be stored (counted as dropped). Appends complete in order.
   */
  append(input: SpoolAppend): Promise<bigint | undefined>;
  /** Up to `limit` batches with sequence > `after`, oldest first, all on disk. Corrupt records are dropped, not returned. */
  read(after: bigint | undefined, limit: number): Promise<SpooledBatch[]>;
  /** Retires batches (acknowledged or rejected by the server); unknown sequences are ignored. Returns how many. */
  remove(sequences: readonly bigint[]): number;
  /** Whether any batch waits. */
  hasPending(): boolean;
  stats(): { batches: number; bytes: number; oldestMs: number | undefined; nextSequence: bigint };
  /** Envelopes dropped since the spool was created, per collector (persisted). */
  dropped(): Record<string, number>;
  /** Resolves once every append issued so far has finished. */
  settled(): Promise<void>;
  /** Finishes pending writes, saves the state and releases the directory. */
  close(): Promise<void>;
}

const STATE_FILE = "spool-state.json";
const LOCK_FILE = "spool.lock";
const SEGMENT_RE = /^spool-(\d{20})\.seg$/;
const MAGIC = Buffer.from("SPECTRA-SPOOL-1\n", "latin1");
const FRAME_HEADER = 8;
/** version + sequence + created + counts length. */
const PAYLOAD_FIXED = 1 + 8 + 8 + 2;
const RECORD_VERSION = 1;
/** Larger lengths are damage, not data (a batch is tens of KiB). */
const MAX_PAYLOAD = 64 * 1024 * 1024;
/** Default longest delay before acknowledgements are saved (see persistAcksLater). */
const ACK_SAVE_DELAY_MS = 60_000;
/** Recently written batches are kept in memory (up to this many bytes) so sending them needs no read. */
const CACHE_BYTES = 1024 * 1024;

/** Directories held by this process (a second spool on one of them is refused like a second agent). */
const heldDirs = new Set<string>();

interface Segment {
  firstSeq: number;
  path: string;
  size: number;
  /** Records in the file that are not retired. */
  live: number;
  /** Descriptor for appending (the active segment only). */
  appendFd: number | undefined;
  readFd: Promise<number> | undefined;
}

/** A row's metadata, copied out of the table. */
interface RowRef {
  seq: number;
  createdMs: number;
  segment: Segment;
  offset: number;
  length: number;
  counts: number;
}

interface PersistedState {
  version: 1;
  sessionId: string;
  ackedThrough: number;
  ackedAbove: number[];
  nextSequence: number;
  dropped: Record<string, number>;
  /** Damaged records already counted as dropped, as "<segment first sequence>:<offset>". */
  skipped: string[];
}

/**
 * Opens (or creates) the spool in `opts.dir`: reads the state and the segments (synchronously: this runs once, at
 * start), cuts off a torn last record, and takes the directory's lock. Throws when the directory cannot be used
 * (permissions, another agent holding it).
 */
export function openSpool(opts: SpoolOptions): Spool {
  const now = opts.now ?? Date.now;
  const log = opts.logger;
  const dir = opts.dir;
  const segmentBytes = opts.segmentBytes ?? Math.min(4 * 1024 * 1024, Math.max(16 * 1024, Math.floor(opts.maxBytes / 16)));
  const statePath = join(dir, STATE_FILE);
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new Error(`open spool ${dir}`, { cause: err });
  }
  const releaseLock = acquireLock(dir);

  const table = new RecordTable();
  const segments = new Map<number, Segment>();
  const segmentOf: Segment[] = []; // by the segment number stored per record
  const countsIds = new Map<string, number>();
  const countsList: Record<string, number>[] = [];
  const cache = new Map<number, Uint8Array>();
  let cacheBytes = 0;
  let liveBytes = 0;
  let sessionId = "";
  let nextSequence = 1;
  let dropped: Record<string, number> = {};
  /** Damaged records counted as dropped, so a restart does not count them again. */
  const skipped: string[] = [];
  let active: Segment | undefined;
  let closed = false;
  let dirFd: number | undefined;
  let writeChain: Promise<unknown> = Promise.resolve();
  let stateDirty = false;
  let stateWriting: Promise<void> | undefined;
  let ackTimer: NodeJS.Timeout | undefined;
  let unloggedDrops = { batches: 0, envelopes: 0 };
  let lastDropLogMs = 0;

  try {
    load();
  } catch (err) {
    releaseLock();
    throw err;
  }

  function countsIdOf(json: string): number {
    let id = countsIds.get(json);
    if (id === undefined) {
      id = countsList.length;
      countsIds.set(json, id);
      countsList.push(parseCounts(json));
    }
    return id;
  }

  function segmentNumber(seg: Segment): number {
    let n = segmentOf.indexOf(seg);
    if (n < 0) {
      n = segmentOf.length;
      segmentOf.push(seg);
    }
    return n;
  }

  /** Reads the state and every segment; repairs what a crash can leave behind. */
  function load(): void {
    let state = readState();
    const names = safeReaddir(dir)
      .filter((n) => SEGMENT_RE.test(n))
      .sort();
    const acked = new Set(state?.ackedAbove ?? []);
    const knownBad = new Set(state?.skipped ?? []);
    const ackedThrough = state?.ackedThrough ?? 0;
    let maxSeq = 0;
    let firstSeqOfLast = 0;
    const lostCounts: Record<string, number> = {};
    let lostBatches = 0;
    for (let idx = 0; idx < names.length; idx++) {
      const name = names[idx]!;
      const isLast = idx === names.length - 1;
      const path = join(dir, name);
      const firstSeq = Number(SEGMENT_RE.exec(name)![1]);
      const buf = fs.readFileSync(path);
      const header = parseSegmentHeader(buf);
      if (!header) {
        if (isLast && buf.length < MAGIC.length + 2 + 64) {
          // Created but its header never reached the disk: nothing was written after it.
          fs.rmSync(path, { force: true });
          continue;
        }
        const aside = moveAside(path, now());
        log.error({ segment: name, movedTo: aside }, "spool segment has no valid header; moved aside");
        continue;
      }
      if (state === undefined && sessionId === "") sessionId = header.sessionId;
      const session = state?.sessionId ?? sessionId;
      if (header.sessionId !== session) {
        const aside = moveAside(path, now());
        log.error({ segment: name, movedTo: aside }, "spool segment belongs to another session; moved aside");
        continue;
      }
      const seg: Segment = { firstSeq, path, size: buf.length, live: 0, appendFd: undefined, readFd: undefined };
      const segNo = segmentNumber(seg);
      segments.set(firstSeq, seg);
      firstSeqOfLast = firstSeq;
      let pos = header.length;
      while (pos < buf.length) {
        const rec = parseRecord(buf, pos);
        if (rec.kind === "ok") {
          maxSeq = Math.max(maxSeq, rec.seq);
          if (table.size === 0 || rec.seq > table.lastSeq()) {
            // Retired rows stay in the table (not live) so the next state file still lists them.
            const isLive = rec.seq > ackedThrough && !acked.has(rec.seq);
            table.push(rec.seq, rec.createdMs, segNo, pos, rec.frameLength, countsIdOf(rec.countsJson), isLive);
            if (isLive) {
              seg.live++;
              liveBytes += rec.frameLength;
            }
          }
          pos += rec.frameLength;
          continue;
        }
        const tail = rec.kind === "truncated" || (rec.kind === "bad-crc" && pos + rec.frameLength === buf.length);
        if (isLast && (tail || rec.kind === "bad-length")) {
          // The write in progress when the agent died (or zeros after it): never durable, never sent.
          log.warn({ segment: name, offset: pos, bytes: buf.length - pos }, "spool: cut off a torn record at the end");
          fs.truncateSync(path, pos);
          seg.size = pos;
          break;
        }
        if (rec.kind === "bad-crc") {
          const where = `${firstSeq}:${pos}`;
          skipped.push(where);
          if (!knownBad.has(where)) {
            lostBatches++;
            addInto(lostCounts, parseCounts(rec.countsJson));
            log.warn({ segment: name, offset: pos }, "spool record failed its checksum; skipped");
          }
          pos += rec.frameLength;
          continue;
        }
        log.error({ segment: name, offset: pos, lost: buf.length - pos }, "spool segment damaged; the rest of it is skipped");
        break;
      }
    }

    if (state === undefined) {
      sessionId ||= newSessionId();
      state = { version: 1, sessionId, ackedThrough: 0, ackedAbove: [], nextSequence: 1, dropped: {}, skipped: [] };
    }
    sessionId = state.sessionId;
    dropped = { ...state.dropped };
    nextSequence = Math.max(state.nextSequence, state.ackedThrough + 1, maxSeq + 1, firstSeqOfLast, 1);

    // Fully retired segments whose state is already on disk can go now; the newest one is appended to again.
    const all = [...segments.values()].sort((a, b) => a.firstSeq - b.firstSeq);
    const last = all[all.length - 1];
    for (const seg of all) {
      if (seg !== last && seg.live === 0) {
        fs.rmSync(seg.path, { force: true });
        segments.delete(seg.firstSeq);
      }
    }
    if (last && last.size < segmentBytes) {
      last.appendFd = fs.openSync(last.path, appendFlags());
      active = last;
    }
    try {
      dirFd = fs.openSync(dir, "r");
    } catch {
      dirFd = undefined; // Windows cannot open a directory; its renames are durable without it
    }
    if (lostBatches > 0) noteDrop(lostCounts, lostBatches, "corrupt record", false);
    if (fs.existsSync(join(dir, "spool.db"))) {
      log.warn({ file: join(dir, "spool.db") }, "a spool of an earlier agent version (SQLite) is in the data directory; its batches are not sent");
    }
    writeStateSync(stateSnapshot());
  }

  function readState(): PersistedState | undefined {
    let text: string;
    try {
      text = fs.readFileSync(statePath, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new Error(`open spool ${dir}: read ${STATE_FILE}`, { cause: err });
    }
    const state = parseState(text);
    if (!state) {
      const aside = moveAside(statePath, now());
      log.error({ movedTo: aside }, "spool state file is unreadable; the session is recovered from the segments");
    }
    return state;
  }

  function stateSnapshot(): PersistedState {
    const first = table.firstLive();
    const ackedThrough = first < 0 ? nextSequence - 1 : table.seqAt(first) - 1;
    return {
      version: 1,
      sessionId,
      ackedThrough,
      ackedAbove: first < 0 ? [] : table.retiredAfter(first),
      nextSequence,
      dropped,
      skipped: skipped.filter((w) => segments.has(Number(w.slice(0, w.indexOf(":"))))),
    };
  }

  function writeStateSync(state: PersistedState): void {
    const tmp = `${statePath}.tmp`;
    const fd = fs.openSync(tmp, "w");
    try {
      fs.writeSync(fd, JSON.stringify(state));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, statePath);
    if (dirFd !== undefined) fs.fsyncSync(dirFd);
  }

  async function writeState(state: PersistedState): Promise<void> {
    const tmp = `${statePath}.tmp`;
    const fh = await fs.promises.open(tmp, "w");
    try {
      await fh.writeFile(JSON.stringify(state));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, statePath);
    await syncDir();
  }

  function syncDir(): Promise<void> {
    const fd = dirFd;
    if (fd === undefined) return Promise.resolve();
    return new Promise((res, rej) => fs.fsync(fd, (err) => (err ? rej(err) : res())));
  }

  /** Saves the state soon (coalesced), then deletes segments whose batches that state retires. */
  function persistSoon(): void {
    clearTimeout(ackTimer);
    ackTimer = undefined;
    stateDirty = true;
    stateWriting ??= (async () => {
      try {
        while (stateDirty) {
          stateDirty = false;
          const snapshot = stateSnapshot();
          const deletable = [...segments.values()].filter((s) => s.live === 0 && s !== active);
          await writeState(snapshot);
          for (const seg of deletable) await deleteSegment(seg);
        }
      } catch (err) {
        log.warn({ err: describeError(err) }, "could not save the spool state; retrying with the next change");
      } finally {
        stateWriting = undefined;
      }
    })();
  }

  /**
   * Acknowledgements are saved within ACK_SAVE_DELAY_MS rather than at once: that costs one state write a minute
   * instead of one per stream window, and losing the latest acknowledgements in a crash only means those batches
   * are sent again after the restart, which the server recognises as duplicates. Anything that frees a segment
   * or changes the drop counts is saved at once.
   */
  function persistAcksLater(): void {
    if (ackTimer !== undefined || stateWriting !== undefined) {
      stateDirty = true;
      return;
    }
    ackTimer = setTimeout(() => {
      ackTimer = undefined;
      persistSoon();
    }, opts.ackSaveDelayMs ?? ACK_SAVE_DELAY_MS);
    // The timer must not keep a stopping process alive; close() saves the state anyway.
    ackTimer.unref();
  }

  async function deleteSegment(seg: Segment): Promise<void> {
    if (seg.live > 0 || seg === active || !segments.has(seg.firstSeq)) return;
    segments.delete(seg.firstSeq);
    const readFd = seg.readFd;
    seg.readFd = undefined;
    if (readFd) await readFd.then((fd) => closeFd(fd), () => undefined);
    await fs.promises.rm(seg.path, { force: true });
  }

  function noteDrop(counts: Record<string, number>, batches: number, reason: string, persist = true): void {
    let envelopes = 0;
    for (const [name, n] of Object.entries(counts)) {
      dropped[name] = (dropped[name] ?? 0) + n;
      envelopes += n;
    }
    if (envelopes === 0 && batches === 0) return;
    if (persist) persistSoon();
    opts.onDrop?.(counts);
    unloggedDrops.batches += batches;
    unloggedDrops.envelopes += envelopes;
    // Drop warnings are summarised at most once a minute so a full spool does not log every flush.
    const t = now();
    if (t - lastDropLogMs >= 60_000) {
      log.warn(
        { ...unloggedDrops, reason, maxBytes: opts.maxBytes, maxAgeMs: opts.maxAgeMs },
        "spool dropped batches",
      );
      lastDropLogMs = t;
      unloggedDrops = { batches: 0, envelopes: 0 };
    }
  }

  function retire(i: number): void {
    if (!table.isLive(i)) return;
    const seq = table.seqAt(i);
    liveBytes -= table.lengthAt(i);
    const seg = segmentOf[table.segmentAt(i)];
    if (seg) seg.live--;
    table.retire(i);
    const data = cache.get(seq);
    if (data) {
      cache.delete(seq);
      cacheBytes -= data.byteLength;
    }
  }

  /** Drops the oldest batches while over the bounds (or until `bytesBound` when given). */
  function applyBounds(bytesBound = opts.maxBytes): void {
    const cutoff = now() - opts.maxAgeMs;
    const counts: Record<string, number> = {};
    let batches = 0;
    let reason = "";
    for (let i = table.firstLive(); i >= 0; i = table.nextLive(i)) {
      const tooOld = table.createdAt(i) < cutoff;
      if (!tooOld && liveBytes <= bytesBound) break;
      reason = tooOld ? "older than the age bound" : "over the size bound";
      addInto(counts, countsList[table.countsAt(i)] ?? {});
      retire(i);
      batches++;
    }
    if (batches > 0) noteDrop(counts, batches, reason);
  }

  function appendFlags(): number {
    const c = fs.constants;
    return c.O_WRONLY | c.O_APPEND | c.O_CREAT | (c.O_DSYNC ?? 0);
  }

  /** The segment the next record of `frameLength` bytes goes to; starts a new one when the current is full. */
  async function activeSegment(firstSeq: number, frameLength: number): Promise<Segment> {
    if (active && active.appendFd !== undefined) {
      const hasRecords = active.size > MAGIC.length + 2 + sessionId.length;
      if (!hasRecords || active.size + frameLength <= segmentBytes) return active;
      const full = active;
      active = undefined;
      const fd = full.appendFd!;
      full.appendFd = undefined;
      await closeFd(fd);
      if (full.live === 0) persistSoon(); // the state write deletes it
    }
    const name = `spool-${String(firstSeq).padStart(20, "0")}.seg`;
    const path = join(dir, name);
    const fd = await new Promise<number>((res, rej) =>
      fs.open(path, appendFlags() | fs.constants.O_EXCL, 0o644, (err, f) => (err ? rej(err) : res(f))),
    );
    const session = Buffer.from(sessionId, "latin1");
    const header = Buffer.allocUnsafe(MAGIC.length + 2 + session.length);
    MAGIC.copy(header, 0);
    header.writeUInt16BE(session.length, MAGIC.length);
    session.copy(header, MAGIC.length + 2);
    try {
      await writeAll(fd, header);
      if (fs.constants.O_DSYNC === undefined) await fdatasync(fd);
      await syncDir(); // the new file's name must survive a power cut too
    } catch (err) {
      await closeFd(fd);
      await fs.promises.rm(path, { force: true });
      throw err;
    }
    const seg: Segment = { firstSeq, path, size: header.length, live: 0, appendFd: fd, readFd: undefined };
    segments.set(firstSeq, seg);
    active = seg;
    return seg;
  }

  async function writeRecord(seq: number, createdMs: number, countsJson: string, frame: Buffer, data: Uint8Array): Promise<void> {
    let seg = await activeSegment(seq, frame.length);
    try {
      await writeDurably(seg, frame);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
      // Disk full: give up the oldest tenth of the spool and try once more.
      applyBounds(Math.floor(Math.min(liveBytes, opts.maxBytes) * 0.9));
      await stateWriting;
      seg = await activeSegment(seq, frame.length);
      await writeDurably(seg, frame);
    }
    const offset = seg.size;
    seg.size += frame.length;
    seg.live++;
    table.push(seq, createdMs, segmentNumber(seg), offset, frame.length, countsIdOf(countsJson));
    liveBytes += frame.length;
    cache.set(seq, data);
    cacheBytes += data.byteLength;
    for (const [s, d] of cache) {
      if (cacheBytes <= CACHE_BYTES) break;
      cache.delete(s);
      cacheBytes -= d.byteLength;
    }
  }

  /** Appends `frame` to the segment; on failure cuts the file back so no partial record stays behind. */
  async function writeDurably(seg: Segment, frame: Buffer): Promise<void> {
    const fd = seg.appendFd!;
    try {
      await writeAll(fd, frame);
      if (fs.constants.O_DSYNC === undefined) await fdatasync(fd);
    } catch (err) {
      await new Promise<void>((res) => fs.ftruncate(fd, seg.size, () => res()));
      throw err;
    }
  }

  function readFdOf(seg: Segment): Promise<number> {
    seg.readFd ??= new Promise<number>((res, rej) => fs.open(seg.path, "r", (err, fd) => (err ? rej(err) : res(fd))));
    return seg.readFd;
  }

  /** Reads the records `rows` (one segment, ascending offsets) with one read; undefined data for a damaged one. */
  async function readRows(rows: RowRef[]): Promise<Array<{ ref: RowRef; data: Uint8Array | undefined }>> {
    const seg = rows[0]!.segment;
    const start = rows[0]!.offset;
    const last = rows[rows.length - 1]!;
    const buf = Buffer.allocUnsafe(last.offset + last.length - start);
    const fd = await readFdOf(seg);
    let got = 0;
    while (got < buf.length) {
      const n = await new Promise<number>((res, rej) =>
        fs.read(fd, buf, got, buf.length - got, start + got, (err, bytes) => (err ? rej(err) : res(bytes))),
      );
      if (n === 0) break;
      got += n;
    }
    return rows.map((ref) => {
      const rec = parseRecord(buf.subarray(0, got), ref.offset - start);
      return { ref, data: rec.kind === "ok" && rec.seq === ref.seq ? rec.data : undefined };
    });
  }

  /** A copy of a row's metadata: rows move (compaction) and are reused while a read waits for the disk. */
  function rowRef(i: number): RowRef {
    return {
      seq: table.seqAt(i),
      createdMs: table.createdAt(i),
      segment: segmentOf[table.segmentAt(i)]!,
      offset: table.offsetAt(i),
      length: table.lengthAt(i),
      counts: table.countsAt(i),
    };
  }

  return {
    get sessionId() {
      return sessionId;
    },

    append(input) {
      if (closed) return Promise.reject(new Error("spool is closed"));
      const seq = nextSequence++;
      const createdMs = now();
      // The compiled encoder: protobuf-es's reflection-based toBinary, run by the interpreter (--no-opt), took
      // ~5x the CPU for a typical 5 s batch (docs/benchmarks.md).
      const batch: MetricBatch = {
        $typeName: "spectra.v1.MetricBatch",
        hostname: input.hostname,
        sessionId,
        sequence: BigInt(seq),
        envelopes: input.envelopes as MetricEnvelope[],
        collectorStatus: input.collectorStatus as CollectorStatus[],
      };
      const data = fastToBinary(MetricBatchSchema, batch);
      const countsJson = JSON.stringify(input.countsByCollector);
      const frame = encodeRecord(seq, createdMs, countsJson, data);
      const result = writeChain.then(async () => {
        try {
          await writeRecord(seq, createdMs, countsJson, frame, data);
          applyBounds();
          return BigInt(seq);
        } catch (err) {
          log.error({ err: describeError(err) }, "could not write a batch to the spool; it is dropped");
          noteDrop({ ...input.countsByCollector }, 1, "write failed");
          return undefined;
        }
      });
      writeChain = result;
      return result;
    },

    async read(after, limit) {
      if (closed || limit <= 0) return [];
      const refs: RowRef[] = [];
      for (let i = after === undefined ? table.firstLive() : table.firstLiveAfter(Number(after)); i >= 0 && refs.length < limit; i = table.nextLive(i)) {
        refs.push(rowRef(i));
      }
      const out: SpooledBatch[] = [];
      const bad: RowRef[] = [];
      // Batches still in memory need no read; the rest are read in runs of one segment each.
      let run: RowRef[] = [];
      const readRun = async (): Promise<void> => {
        if (run.length === 0) return;
        const got = await readRows(run);
        run = [];
        for (const { ref, data } of got) {
          if (data) out.push(spooled(ref.seq, ref.createdMs, data));
          else bad.push(ref);
        }
      };
      for (const ref of refs) {
        const cached = cache.get(ref.seq);
        if (cached) {
          await readRun();
          out.push(spooled(ref.seq, ref.createdMs, cached));
          continue;
        }
        if (run.length > 0 && run[0]!.segment !== ref.segment) await readRun();
        run.push(ref);
      }
      await readRun();
      if (bad.length > 0) {
        const counts: Record<string, number> = {};
        let n = 0;
        for (const ref of bad) {
          const i = table.indexOf(ref.seq);
          if (i < 0) continue; // retired meanwhile
          addInto(counts, countsList[ref.counts] ?? {});
          log.warn({ sequence: ref.seq }, "spool record failed its checksum; skipped");
          retire(i);
          n++;
        }
        noteDrop(counts, n, "corrupt record");
      }
      return out;
    },

    remove(sequences) {
      if (closed || sequences.length === 0) return 0;
      let n = 0;
      for (const s of sequences) {
        const i = table.indexOf(Number(s));
        if (i >= 0 && table.isLive(i)) {
          retire(i);
          n++;
        }
      }
      if (n > 0) persistAcksLater();
      table.compact();
      return n;
    },

    hasPending() {
      return table.firstLive() >= 0;
    },

    stats() {
      const first = table.firstLive();
      return {
        batches: table.liveCount,
        bytes: liveBytes,
        oldestMs: first < 0 ? undefined : table.createdAt(first),
        nextSequence: BigInt(nextSequence),
      };
    },

    dropped() {
      return { ...dropped };
    },

    async settled() {
      await writeChain;
    },

    async close() {
      if (closed) return;
      closed = true;
      clearTimeout(ackTimer);
      ackTimer = undefined;
      await writeChain;
      await stateWriting;
      try {
        await writeState(stateSnapshot());
      } catch (err) {
        log.warn({ err: describeError(err) }, "saving the spool state at close failed");
      }
      for (const seg of segments.values()) {
        if (seg.appendFd !== undefined) await closeFd(seg.appendFd);
        seg.appendFd = undefined;
        if (seg.readFd) await seg.readFd.then((fd) => closeFd(fd), () => undefined);
        seg.readFd = undefined;
      }
      if (dirFd !== undefined) await closeFd(dirFd);
      dirFd = undefined;
      releaseLock();
    },
  };
}

/** A stored batch whose MetricBatch is decoded only if someone asks for it. */
function spooled(seq: number, createdMs: number, data: Uint8Array): SpooledBatch {
  let batch: MetricBatch | undefined;
  return {
    sequence: BigInt(seq),
    data,
    bytes: data.byteLength,
    createdMs,
    get batch() {
      batch ??= fromBinary(MetricBatchSchema, data);
      return batch;
    },
  };
}

function encodeRecord(seq: number, createdMs: number, countsJson: string, data: Uint8Array): Buffer {
  const countsLen = Buffer.byteLength(countsJson);
  const payloadLen = PAYLOAD_FIXED + countsLen + data.byteLength;
  const buf = Buffer.allocUnsafe(FRAME_HEADER + payloadLen);
  let p = FRAME_HEADER;
  buf.writeUInt8(RECORD_VERSION, p);
  p = buf.writeDoubleBE(seq, p + 1);
  p = buf.writeDoubleBE(createdMs, p);
  p = buf.writeUInt16BE(countsLen, p);
  p += buf.write(countsJson, p, "utf8");
  buf.set(data, p);
  buf.writeUInt32BE(payloadLen, 0);
  buf.writeUInt32BE(crc32(buf.subarray(FRAME_HEADER)), 4);
  return buf;
}

type ParsedRecord =
  | { kind: "ok"; seq: number; createdMs: number; countsJson: string; data: Uint8Array; frameLength: number }
  /** The file ends inside the record. */
  | { kind: "truncated" }
  /** The length field is impossible: the rest of the segment cannot be framed. */
  | { kind: "bad-length" }
  /** Framed, but the checksum (or the payload layout) is wrong; the counts are read if they still parse. */
  | { kind: "bad-crc"; frameLength: number; countsJson: string };

function parseRecord(buf: Buffer, pos: number): ParsedRecord {
  if (buf.length - pos < FRAME_HEADER) return { kind: "truncated" };
  const payloadLen = buf.readUInt32BE(pos);
  if (payloadLen < PAYLOAD_FIXED || payloadLen > MAX_PAYLOAD) return { kind: "bad-length" };
  const frameLength = FRAME_HEADER + payloadLen;
  if (pos + frameLength > buf.length) return { kind: "truncated" };
  const payload = buf.subarray(pos + FRAME_HEADER, pos + frameLength);
  const countsLen = payload.readUInt16BE(17);
  const countsEnd = PAYLOAD_FIXED + countsLen;
  const countsJson = countsEnd <= payload.length ? payload.toString("utf8", PAYLOAD_FIXED, countsEnd) : "";
  if (crc32(payload) !== buf.readUInt32BE(pos + 4) || payload[0] !== RECORD_VERSION || countsEnd > payload.length) {
    return { kind: "bad-crc", frameLength, countsJson };
  }
  return {
    kind: "ok",
    seq: payload.readDoubleBE(1),
    createdMs: payload.readDoubleBE(9),
    countsJson,
    data: payload.subarray(countsEnd),
    frameLength,
  };
}

function parseSegmentHeader(buf: Buffer): { sessionId: string; length: number } | undefined {
  if (buf.length < MAGIC.length + 2 || !buf.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  const n = buf.readUInt16BE(MAGIC.length);
  if (n === 0 || n > 64 || buf.length < MAGIC.length + 2 + n) return undefined;
  const sessionId = buf.toString("latin1", MAGIC.length + 2, MAGIC.length + 2 + n);
  if (!/^[\w-]+$/.test(sessionId)) return undefined;
  return { sessionId, length: MAGIC.length + 2 + n };
}

function parseState(text: string): PersistedState | undefined {
  try {
    const v = JSON.parse(text) as Partial<PersistedState>;
    const isSeq = (n: unknown): n is number => typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
    if (v.version !== 1 || typeof v.sessionId !== "string" || !/^[\w-]{1,64}$/.test(v.sessionId)) return undefined;
    if (!isSeq(v.ackedThrough) || !isSeq(v.nextSequence) || !Array.isArray(v.ackedAbove) || !v.ackedAbove.every(isSeq)) {
      return undefined;
    }
    return {
      version: 1,
      sessionId: v.sessionId,
      ackedThrough: v.ackedThrough,
      ackedAbove: v.ackedAbove,
      nextSequence: v.nextSequence,
      dropped: parseCounts(JSON.stringify(v.dropped ?? {})),
      skipped: Array.isArray(v.skipped) ? v.skipped.filter((w): w is string => typeof w === "string") : [],
    };
  } catch {
    return undefined;
  }
}

/**
 * Row metadata of every batch from the oldest live one on, in sequence order, in typed arrays: a full 100 MB
 * spool of small batches is ~150k rows, which costs ~5 MB this way and several times that as objects.
 */
class RecordTable {
  private seq = new Float64Array(64);
  private created = new Float64Array(64);
  private offset = new Float64Array(64);
  private length = new Uint32Array(64);
  private segment = new Uint32Array(64);
  private counts = new Uint32Array(64);
  private live = new Uint8Array(64);
  /** Rows [head, tail) are in use; rows before head are all retired. */
  private head = 0;
  private tail = 0;
  liveCount = 0;

  get size(): number {
    return this.tail - this.head;
  }

  push(seq: number, createdMs: number, segment: number, offset: number, length: number, counts: number, live = true): void {
    if (this.tail === this.seq.length) this.grow();
    const i = this.tail++;
    this.seq[i] = seq;
    this.created[i] = createdMs;
    this.segment[i] = segment;
    this.offset[i] = offset;
    this.length[i] = length;
    this.counts[i] = counts;
    this.live[i] = live ? 1 : 0;
    if (live) this.liveCount++;
    else if (this.head === i) this.dropRetiredHead();
  }

  lastSeq(): number {
    return this.tail > this.head ? this.seq[this.tail - 1]! : 0;
  }

  seqAt(i: number): number {
    return this.seq[i]!;
  }
  createdAt(i: number): number {
    return this.created[i]!;
  }
  offsetAt(i: number): number {
    return this.offset[i]!;
  }
  lengthAt(i: number): number {
    return this.length[i]!;
  }
  segmentAt(i: number): number {
    return this.segment[i]!;
  }
  countsAt(i: number): number {
    return this.counts[i]!;
  }
  isLive(i: number): boolean {
    return i >= this.head && i < this.tail && this.live[i] === 1;
  }

  retire(i: number): void {
    if (this.live[i] !== 1) return;
    this.live[i] = 0;
    this.liveCount--;
    this.dropRetiredHead();
  }

  private dropRetiredHead(): void {
    while (this.head < this.tail && this.live[this.head] === 0) this.head++;
    if (this.head === this.tail) this.head = this.tail = 0;
  }

  firstLive(): number {
    return this.head < this.tail ? this.head : -1;
  }

  nextLive(i: number): number {
    for (let j = i + 1; j < this.tail; j++) if (this.live[j] === 1) return j;
    return -1;
  }

  /** The first live row with a sequence above `seq`. */
  firstLiveAfter(seq: number): number {
    let lo = this.head;
    let hi = this.tail;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.seq[mid]! <= seq) lo = mid + 1;
      else hi = mid;
    }
    for (let j = lo; j < this.tail; j++) if (this.live[j] === 1) return j;
    return -1;
  }

  indexOf(seq: number): number {
    const i = this.firstLiveAfter(seq - 1);
    if (i >= 0 && this.seq[i] === seq) return i;
    // The row may exist but be retired; callers only care about live rows.
    return -1;
  }

  /** Sequences of retired rows after live row `first` (kept in the state file). */
  retiredAfter(first: number): number[] {
    const out: number[] = [];
    for (let j = first + 1; j < this.tail; j++) if (this.live[j] === 0) out.push(this.seq[j]!);
    return out;
  }

  /** Moves the rows in use to the front once the retired prefix is large. */
  compact(): void {
    if (this.head < 1024 || this.head < this.tail / 2) return;
    const n = this.tail - this.head;
    for (const a of [this.seq, this.created, this.offset, this.length, this.segment, this.counts, this.live]) {
      a.copyWithin(0, this.head, this.tail);
    }
    this.head = 0;
    this.tail = n;
  }

  private grow(): void {
    const cap = this.seq.length * 2;
    const g = <T extends Float64Array | Uint32Array | Uint8Array>(a: T, make: (n: number) => T): T => {
      const b = make(cap);
      b.set(a);
      return b;
    };
    this.seq = g(this.seq, (n) => new Float64Array(n));
    this.created = g(this.created, (n) => new Float64Array(n));
    this.offset = g(this.offset, (n) => new Float64Array(n));
    this.length = g(this.length, (n) => new Uint32Array(n));
    this.segment = g(this.segment, (n) => new Uint32Array(n));
    this.counts = g(this.counts, (n) => new Uint32Array(n));
    this.live = g(this.live, (n) => new Uint8Array(n));
  }
}

/**
 * Takes `<dir>/spool.lock` for this process, or throws when a live agent holds it. A lock left by a process that
 * is gone (or whose pid now belongs to another process, or to this one after a restart in a container) is taken
 * over. Returns the release function.
 */
function acquireLock(dir: string): () => void {
  const key = resolve(dir);
  const path = join(dir, LOCK_FILE);
  const busy = (): Error => new Error(`open spool ${dir} (is another agent using this data directory?)`);
  if (heldDirs.has(key)) throw busy();
  const mine = `${process.pid} ${processStartTime(process.pid) ?? ""}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      fs.writeFileSync(path, mine, { flag: "wx" });
      heldDirs.add(key);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        heldDirs.delete(key);
        try {
          if (fs.readFileSync(path, "utf8") === mine) fs.rmSync(path, { force: true });
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw new Error(`open spool ${dir}: lock`, { cause: err });
    }
    let holder = "";
    try {
      holder = fs.readFileSync(path, "utf8");
    } catch {
      continue; // released meanwhile
    }
    if (lockHolderAlive(holder)) throw busy();
    fs.rmSync(path, { force: true });
  }
  throw busy();
}

function lockHolderAlive(text: string): boolean {
  const [pidText, start] = text.trim().split(" ");
  const pid = Number(pidText);
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  // Not held in this process (checked before): a lock with our own pid is from an earlier run (pid 1 in a container).
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const now = processStartTime(pid);
  return !(start && now && start !== now);
}

/** Start time of a process in clock ticks since boot (Linux), to tell a reused pid apart. */
function processStartTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "latin1");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

let randomUUID: (() => string) | undefined;
function newSessionId(): string {
  // node:crypto is loaded only for this, once per spool lifetime.
  randomUUID ??= (createRequire(import.meta.url)("node:crypto") as typeof import("node:crypto")).randomUUID;
  return randomUUID();
}

function writeAll(fd: number, buf: Buffer): Promise<void> {
  return new Promise((res, rej) => {
    const step = (done: number): void => {
      fs.write(fd, buf, done, buf.length - done, null, (err, n) => {
        if (err) return rej(err);
        if (done + n < buf.length) return step(done + n);
        res();
      });
    };
    step(0);
  });
}

function fdatasync(fd: number): Promise<void> {
  return new Promise((res, rej) => fs.fdatasync(fd, (err) => (err ? rej(err) : res())));
}

function closeFd(fd: number): Promise<void> {
  return new Promise((res) => fs.close(fd, () => res()));
}

/** Renames `path` to `<path>.corrupt-<ms>`, keeping only the newest such copy of it. */
function moveAside(path: string, ms: number): string {
  const dir = join(path, "..");
  const base = path.slice(dir.length + 1);
  for (const name of safeReaddir(dir)) {
    if (name.startsWith(`${base}.corrupt-`)) fs.rmSync(join(dir, name), { force: true });
  }
  const aside = `${path}.corrupt-${ms}`;
  try {
    fs.renameSync(path, aside);
  } catch {
    fs.rmSync(path, { force: true });
  }
  return aside;
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

function parseCounts(json: string | undefined): Record<string, number> {
  if (!json) return {};
  try {
    const v: unknown = JSON.parse(json);
    if (typeof v !== "object" || v === null) return {};
    const out: Record<string, number> = {};
    for (const [k, n] of Object.entries(v)) if (typeof n === "number" && Number.isFinite(n)) out[k] = n;
    return out;
  } catch {
    return {};
  }
}

function addInto(into: Record<string, number>, counts: Readonly<Record<string, number>>): void {
  for (const [k, n] of Object.entries(counts)) into[k] = (into[k] ?? 0) + n;
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
  return `${err.message}${cause}`;
}
