import { randomUUID } from "node:crypto";
import { mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import Database from "better-sqlite3";
import type { Logger } from "../../common/logger.js";
import {
  MetricBatchSchema,
  type CollectorStatus,
  type MetricBatch,
  type MetricEnvelope,
} from "../../gen/spectra/v1/metrics_pb.js";

/*
 * Format: one SQLite database, `spool.db` in the data directory, in WAL mode with synchronous=FULL (one fsync per
 * batch, every few seconds: cheap, and a power cut never loses a batch that may already have been sent, so a sequence
 * number is never handed out twice). SQLite's journal checksums make a torn write of the last transaction invisible
 * after a crash; each record also carries a CRC-32 of its bytes, checked on read, so a damaged record is dropped
 * (and counted) instead of being sent or crashing the agent. A database SQLite cannot open is moved aside and a
 * fresh spool, with a new session id, takes its place.
 *
 *   meta(key, value)                        session_id, next_sequence, dropped (JSON counts per collector)
 *   batches(sequence PK, created_ms, envelopes, counts JSON, crc, data = MetricBatch protobuf)
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
}

/** What goes into one batch. */
export interface SpoolAppend {
  hostname: string;
  envelopes: readonly MetricEnvelope[];
  collectorStatus: readonly CollectorStatus[];
  /** Envelopes per collector, kept so drops can be reported per collector. */
  countsByCollector: Readonly<Record<string, number>>;
}

/** One stored batch, decoded. */
export interface SpooledBatch {
  sequence: bigint;
  batch: MetricBatch;
  bytes: number;
  createdMs: number;
}

/** Durable, bounded store of batches not yet acknowledged by the server. */
export interface Spool {
  /** Random id of this spool's sequence space; kept across restarts, new when the spool is lost. */
  readonly sessionId: string;
  /**
   * Stores a batch under the next sequence number (durable when this returns) and enforces the bounds.
   * Returns the sequence, or undefined when the batch could not be stored (counted as dropped).
   */
  append(input: SpoolAppend): bigint | undefined;
  /** Up to `limit` batches with sequence > `after`, oldest first. Corrupt records are dropped, not returned. */
  read(after: bigint | undefined, limit: number): SpooledBatch[];
  /** Removes batches (acknowledged or rejected by the server); unknown sequences are ignored. Returns how many. */
  remove(sequences: readonly bigint[]): number;
  /** Whether any batch waits. */
  hasPending(): boolean;
  stats(): { batches: number; bytes: number; oldestMs: number | undefined; nextSequence: bigint };
  /** Envelopes dropped since the spool was created, per collector (persisted). */
  dropped(): Record<string, number>;
  close(): void;
}

const FILE = "spool.db";

interface Statements {
  getMeta: Database.Statement<[string], { value: string }>;
  setMeta: Database.Statement<[string, string]>;
  insert: Database.Statement<[number, number, number, string, number, Uint8Array]>;
  read: Database.Statement<
    [number, number],
    { sequence: number; created_ms: number; counts: string; crc: number; data: Buffer }
  >;
  removeOne: Database.Statement<[number], { bytes: number }>;
  dropOlderThan: Database.Statement<[number], { counts: string; bytes: number }>;
  dropUpTo: Database.Statement<[number], { counts: string; bytes: number }>;
  oldest: Database.Statement<[number], { sequence: number; bytes: number }>;
  totals: Database.Statement<[], { n: number; bytes: number | null; oldest: number | null }>;
}

/**
 * Opens (or creates) the spool in `opts.dir`. Throws only when the directory cannot be used (permissions, another
 * agent holding the lock); a corrupt database is moved aside and replaced.
 */
export function openSpool(opts: SpoolOptions): Spool {
  const now = opts.now ?? Date.now;
  const log = opts.logger;
  mkdirSync(opts.dir, { recursive: true });
  const path = join(opts.dir, FILE);

  let db!: Database.Database;
  let st!: Statements;
  let sessionId = "";
  let nextSequence = 1;
  let totalBytes = 0;
  let batchCount = 0;
  let dropped: Record<string, number> = {};
  let closed = false;
  // Drop warnings are summarised at most once a minute so a full spool does not log every flush.
  let unloggedDrops = { batches: 0, envelopes: 0, reason: "" };
  let lastDropLogMs = 0;

  function open(): void {
    try {
      db = openDatabase(path);
    } catch (err) {
      if (!isCorruption(err)) {
        throw new Error(`open spool ${path}${isBusy(err) ? " (is another agent using this data directory?)" : ""}`, {
          cause: err,
        });
      }
      const aside = moveAside(path, now());
      log.error({ err: describeError(err), movedTo: aside }, "spool database is corrupt; starting a new spool");
      db = openDatabase(path);
    }
    st = prepare(db);
    // A write takes the exclusive lock now (and holds it), so a second agent on this directory fails at start.
    st.setMeta.run("opened_ms", String(now()));
    const existing = st.getMeta.get("session_id")?.value;
    sessionId = existing ?? randomUUID();
    nextSequence = Number(st.getMeta.get("next_sequence")?.value ?? "1");
    dropped = parseCounts(st.getMeta.get("dropped")?.value);
    if (existing === undefined) {
      st.setMeta.run("session_id", sessionId);
      st.setMeta.run("next_sequence", String(nextSequence));
    }
    const t = st.totals.get();
    batchCount = t?.n ?? 0;
    totalBytes = t?.bytes ?? 0;
    // Never hand out a sequence at or below one already stored, even if meta was damaged.
    const maxStored = db.prepare<[], { m: number | null }>("SELECT MAX(sequence) AS m FROM batches").get()?.m ?? 0;
    if (!Number.isSafeInteger(nextSequence) || nextSequence <= maxStored) nextSequence = maxStored + 1;
  }

  /** Runs `fn`; on database corruption replaces the spool once and retries. */
  function guarded<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (!isCorruption(err)) throw new Error(`spool ${what}`, { cause: err });
      const counts = safeCountAll();
      try {
        db.close();
      } catch {
        // closing a corrupt handle may fail; the file is moved aside anyway
      }
      const aside = moveAside(path, now());
      log.error({ err: describeError(err), movedTo: aside, during: what }, "spool database is corrupt; starting a new spool");
      open();
      noteDrop(counts, 0, "corrupt database");
      return fn();
    }
  }

  function safeCountAll(): Record<string, number> {
    try {
      const out: Record<string, number> = {};
      for (const row of db.prepare<[], { counts: string }>("SELECT counts FROM batches").iterate()) addCounts(out, row.counts);
      return out;
    } catch {
      return {};
    }
  }

  function noteDrop(counts: Record<string, number>, batches: number, reason: string): void {
    let envelopes = 0;
    for (const [name, n] of Object.entries(counts)) {
      dropped[name] = (dropped[name] ?? 0) + n;
      envelopes += n;
    }
    if (envelopes === 0 && batches === 0) return;
    try {
      st.setMeta.run("dropped", JSON.stringify(dropped));
    } catch {
      // the counts stay in memory; persisting them is best effort
    }
    opts.onDrop?.(counts);
    unloggedDrops.batches += batches;
    unloggedDrops.envelopes += envelopes;
    unloggedDrops.reason = reason;
    const t = now();
    if (t - lastDropLogMs >= 60_000) {
      log.warn(
        { batches: unloggedDrops.batches, envelopes: unloggedDrops.envelopes, reason, maxBytes: opts.maxBytes, maxAgeMs: opts.maxAgeMs },
        "spool dropped the oldest batches",
      );
      lastDropLogMs = t;
      unloggedDrops = { batches: 0, envelopes: 0, reason: "" };
    }
  }

  function applyBounds(maxBytes = opts.maxBytes): void {
    const counts: Record<string, number> = {};
    let batches = 0;
    let reason = "";
    const drop = (rows: { counts: string; bytes: number }[], why: string): void => {
      for (const r of rows) {
        addCounts(counts, r.counts);
        totalBytes -= r.bytes;
        batchCount--;
        batches++;
      }
      if (rows.length > 0) reason = why;
    };
    db.transaction(() => {
      drop(st.dropOlderThan.all(now() - opts.maxAgeMs), "older than the age bound");
      while (totalBytes > maxBytes && batchCount > 0) {
        // Find how many of the oldest batches must go, then delete them in one statement.
        let excess = totalBytes - maxBytes;
        let upTo = -1;
        for (const row of st.oldest.iterate(256)) {
          upTo = row.sequence;
          excess -= row.bytes;
          if (excess <= 0) break;
        }
        if (upTo < 0) break;
        drop(st.dropUpTo.all(upTo), "over the size bound");
      }
    })();
    if (batches > 0) noteDrop(counts, batches, reason);
  }

  function insert(input: SpoolAppend): number {
    return db.transaction(() => {
      const sequence = nextSequence;
      const batch = create(MetricBatchSchema, {
        hostname: input.hostname,
        sessionId,
        sequence: BigInt(sequence),
        envelopes: [...input.envelopes],
        collectorStatus: [...input.collectorStatus],
      });
      const data = toBinary(MetricBatchSchema, batch);
      st.insert.run(sequence, now(), input.envelopes.length, JSON.stringify(input.countsByCollector), crc32(data), data);
      st.setMeta.run("next_sequence", String(sequence + 1));
      nextSequence = sequence + 1;
      totalBytes += data.byteLength;
      batchCount++;
      return sequence;
    })();
  }

  open();

  return {
    get sessionId() {
      return sessionId;
    },

    append(input) {
      if (closed) throw new Error("spool is closed");
      try {
        const seq = guarded("append", () => {
          try {
            return insert(input);
          } catch (err) {
            if ((err as { code?: string }).code !== "SQLITE_FULL") throw err;
            // Disk full: make room by dropping the oldest tenth, then try once more.
            applyBounds(Math.floor(Math.min(totalBytes, opts.maxBytes) * 0.9));
            return insert(input);
          }
        });
        guarded("bounds", () => applyBounds());
        return BigInt(seq);
      } catch (err) {
        log.error({ err: describeError(err) }, "could not write a batch to the spool; it is dropped");
        noteDrop({ ...input.countsByCollector }, 1, "write failed");
        return undefined;
      }
    },

    read(after, limit) {
      if (closed) return [];
      return guarded("read", () => {
        const out: SpooledBatch[] = [];
        const bad: { sequence: number; counts: string }[] = [];
        for (const row of st.read.all(after === undefined ? 0 : Number(after), limit)) {
          const decoded = decode(row);
          if (decoded) out.push(decoded);
          else bad.push(row);
        }
        if (bad.length > 0) {
          const counts: Record<string, number> = {};
          for (const row of bad) {
            addCounts(counts, row.counts);
            const removed = st.removeOne.get(row.sequence);
            if (removed) {
              totalBytes -= removed.bytes;
              batchCount--;
            }
            log.warn({ sequence: row.sequence }, "spool record failed its checksum; skipped");
          }
          noteDrop(counts, bad.length, "corrupt record");
        }
        return out;
      });
    },

    remove(sequences) {
      if (closed || sequences.length === 0) return 0;
      return guarded("remove", () => {
        let n = 0;
        db.transaction(() => {
          for (const seq of sequences) {
            const removed = st.removeOne.get(Number(seq));
            if (removed) {
              totalBytes -= removed.bytes;
              batchCount--;
              n++;
            }
          }
        })();
        if (batchCount === 0 && n > 0) {
          // Give the pages of a drained backlog back to the file system.
          db.pragma("incremental_vacuum");
        }
        return n;
      });
    },

    hasPending() {
      return batchCount > 0;
    },

    stats() {
      const oldest = closed ? undefined : (st.totals.get()?.oldest ?? undefined);
      return { batches: batchCount, bytes: totalBytes, oldestMs: oldest, nextSequence: BigInt(nextSequence) };
    },

    dropped() {
      return { ...dropped };
    },

    close() {
      if (closed) return;
      closed = true;
      try {
        db.close();
      } catch (err) {
        log.warn({ err: describeError(err) }, "closing the spool failed");
      }
    },
  };

  function decode(row: { sequence: number; created_ms: number; crc: number; data: Buffer }): SpooledBatch | undefined {
    if (crc32(row.data) !== row.crc) return undefined;
    try {
      const batch = fromBinary(MetricBatchSchema, row.data);
      if (batch.sequence !== BigInt(row.sequence)) return undefined;
      return { sequence: batch.sequence, batch, bytes: row.data.byteLength, createdMs: row.created_ms };
    } catch {
      return undefined;
    }
  }
}

function openDatabase(path: string): Database.Database {
  const db = new Database(path, { timeout: 1_000 });
  try {
    // auto_vacuum must be chosen before the first table exists; it is a no-op on an existing database.
    db.pragma("auto_vacuum = INCREMENTAL");
    // One agent per data directory: an exclusive lock makes a second one fail at start instead of interleaving.
    db.pragma("locking_mode = EXCLUSIVE");
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    // The agent's memory budget is small; the spool is written once and read once per batch.
    db.pragma("cache_size = -1024");
    db.pragma("journal_size_limit = 4194304");
    const check = db.pragma("quick_check", { simple: true });
    if (check !== "ok") {
      throw Object.assign(new Error(`quick_check: ${String(check)}`), { code: "SQLITE_CORRUPT" });
    }
    db.exec(`
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS batches (
        sequence INTEGER PRIMARY KEY,
        created_ms INTEGER NOT NULL,
        envelopes INTEGER NOT NULL,
        counts TEXT NOT NULL,
        crc INTEGER NOT NULL,
        data BLOB NOT NULL
      );
    `);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

function prepare(db: Database.Database): Statements {
  return {
    getMeta: db.prepare("SELECT value FROM meta WHERE key = ?"),
    setMeta: db.prepare("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"),
    insert: db.prepare("INSERT INTO batches (sequence, created_ms, envelopes, counts, crc, data) VALUES (?, ?, ?, ?, ?, ?)"),
    read: db.prepare(
      "SELECT sequence, created_ms, counts, crc, data FROM batches WHERE sequence > ? ORDER BY sequence LIMIT ?",
    ),
    removeOne: db.prepare("DELETE FROM batches WHERE sequence = ? RETURNING length(data) AS bytes"),
    dropOlderThan: db.prepare("DELETE FROM batches WHERE created_ms < ? RETURNING counts, length(data) AS bytes"),
    dropUpTo: db.prepare("DELETE FROM batches WHERE sequence <= ? RETURNING counts, length(data) AS bytes"),
    oldest: db.prepare("SELECT sequence, length(data) AS bytes FROM batches ORDER BY sequence LIMIT ?"),
    totals: db.prepare("SELECT COUNT(*) AS n, SUM(length(data)) AS bytes, MIN(created_ms) AS oldest FROM batches"),
  };
}

function isCorruption(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === "SQLITE_CORRUPT" || code === "SQLITE_NOTADB" || (typeof code === "string" && code.startsWith("SQLITE_CORRUPT"));
}

function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"));
}

/** Renames the database (and its WAL/SHM) to `spool.db.corrupt-<ms>`, keeping only the newest such copy. */
function moveAside(path: string, ms: number): string {
  const dir = join(path, "..");
  const base = FILE;
  for (const name of safeReaddir(dir)) {
    if (name.startsWith(`${base}.corrupt-`)) rmSync(join(dir, name), { force: true });
  }
  const aside = `${path}.corrupt-${ms}`;
  for (const suffix of ["", "-wal", "-shm"]) {
    try {
      renameSync(path + suffix, aside + suffix);
    } catch {
      rmSync(path + suffix, { force: true });
    }
  }
  return aside;
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
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

function addCounts(into: Record<string, number>, json: string): void {
  for (const [k, n] of Object.entries(parseCounts(json))) into[k] = (into[k] ?? 0) + n;
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
  return `${err.message}${cause}`;
}
