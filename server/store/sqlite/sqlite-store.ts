import Database from "better-sqlite3";
import { toBinary } from "@bufbuild/protobuf";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { HostInfoSchema, type HostInfo } from "../../../gen/spectra/v1/agent_service_pb.js";
import {
  CommandOutcomeSchema,
  CommandSchema,
  CommandState,
  type Command,
  type CommandOutcome,
} from "../../../gen/spectra/v1/diagnostics_pb.js";
import type { CollectorStatus } from "../../../gen/spectra/v1/metrics_pb.js";
import {
  statusFromJson,
  statusToJson,
  toAgentRecord,
  toCommandRecord,
  toStatusChange,
  toStoredEnvelope,
  removedOutcome,
  type AgentRow,
  type CommandRow,
  type EnvelopeRow,
  type StatusRow,
} from "../rows.js";
import { prepareWrite, type PreparedWrite } from "../prepared-write.js";
import { isSnapshotCase } from "../../tsdb/flatten/flatten.js";
import { QueueFullError } from "../../errors.js";
import {
  AGENT_ACCESS_COLUMNS,
  agentAccessValues,
  toAdminTokenRecord,
  toAgentAccessRecord,
  toEnrollmentTokenRecord,
  type AdminTokenRow,
  type AgentAccessRow,
  type EnrollmentTokenRow,
} from "../access-rows.js";
import {
  type AdminTokenRecord,
  type AgentAccessRecord,
  type AgentContact,
  type AgentRemoval,
  type AgentStatusChange,
  type EnrollmentTokenRecord,
  type PutAgentAccessResult,
  type AgentRecord,
  type BatchWrite,
  type BatchWriteResult,
  type ChunkRow,
  type CommandRecord,
  type FlushWrite,
  type RetentionCutoffs,
  type RollupRow,
  type RollupTier,
  type SeriesIdentity,
  type SeriesRow,
  type Store,
  type StoredEnvelope,
  type WalRow,
} from "../store.js";
import { sqliteMigrations } from "./migrations.js";
import { WalSync, type FsyncFn } from "./wal-sync.js";
import { Checkpointer } from "./checkpointer.js";

interface Pending {
  batch: PreparedWrite;
  resolve: (r: BatchWriteResult) => void;
  reject: (e: unknown) => void;
}

interface SeriesDbRow {
  id: number;
  hostname: string;
  metric: string;
  labels: string;
  flushed_wal_id: number;
  last_t: number | null;
  last_v: number | null;
}
interface ChunkDbRow {
  id: number;
  series_id: number;
  min_t: number;
  max_t: number;
  count: number;
  data: Buffer;
}

const OPEN_STATES = [CommandState.QUEUED, CommandState.DELIVERED];

/** Thrown inside a transaction to roll it back with a result. */
class Rollback {
  constructor(readonly reason: "conflict" | "token-unusable") {}
}

export interface SqliteStoreOptions {
  /** A batch commit waits until this long after the previous one (group commit across agents); default 0. */
  groupCommitMs?: number;
  /**
   * How often the checkpointer thread copies the WAL into the database; default 10 s. Every 500 ms, the checkpoints'
   * writes and syncs of the database file held this thread's own reads and WAL writes in the kernel: command
   * delivery p99 729 ms at 1,000 agents, against 59 ms with 10 s (docs/benchmarks.md, "Fleet scale", third session).
   */
  checkpointIntervalMs?: number;
  /** How the WAL is flushed to disk (tests inject a slow or failing one); default `fs.fsync`. */
  fsync?: FsyncFn;
}

/** The WAL file is cut back to this size when SQLite starts it over (it otherwise keeps its largest size). */
const WAL_SIZE_LIMIT = 64 * 1024 * 1024;

/**
 * Opens (creating and migrating) the SQLite store at `path` (":memory:" for tests).
 *
 * Durability: a resolved write survives a crash or power loss, without the event loop waiting for the disk. The
 * connection runs in WAL mode with `synchronous = NORMAL` (a commit does not fsync) and every write method resolves
 * only after `WalSync` has fsynced the WAL from libuv's thread pool; checkpoints (copying the WAL into the database,
 * with their own fsyncs) run on a worker thread with its own connection (`Checkpointer`) instead of inside a commit.
 * If the WAL file cannot be opened, the store falls back to `synchronous = FULL` with SQLite's own checkpoints.
 *
 * Concurrent batch writes are grouped into one transaction per event-loop turn (group commit), and concurrent
 * barriers share one fsync, so many agents cost one each. With `groupCommitMs`, a commit also waits until that long
 * after the previous one: live agents send their batches one at a time.
 */
export function openSqliteStore(path: string, opts: SqliteStoreOptions = {}): SqliteStore {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma("page_size = 8192");
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.pragma("busy_timeout = 5000");
  migrate(db);
  let sync: WalSync | undefined;
  if (path !== ":memory:" && db.pragma("journal_mode", { simple: true }) === "wal") {
    try {
      sync = WalSync.open(`${path}-wal`, opts.fsync);
    } catch {
      sync = undefined; // no WAL file to sync: SQLite's own synchronous = FULL stays
    }
  }
  const store = new SqliteStore(db, opts.groupCommitMs ?? 0, sync);
  if (sync) store.checkpointOffThread(path, opts.checkpointIntervalMs ?? 10_000);
  return store;
}

function migrate(db: Database.Database): void {
  const current = db.pragma("user_version", { simple: true }) as number;
  if (current > sqliteMigrations.length) {
    throw new Error(`database schema version ${current} is newer than this server (${sqliteMigrations.length})`);
  }
  for (let v = current; v < sqliteMigrations.length; v++) {
    db.transaction(() => {
      db.exec(sqliteMigrations[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

export class SqliteStore implements Store {
  private pending: Pending[] = [];
  private flushScheduled = false;
  private lastCommitMs = Number.NEGATIVE_INFINITY;
  private closed = false;
  private readonly stmt;
  private readonly writeGroup;
  /** Statements prepared on first use, by SQL text (every text is a constant of this file: the map stays small). */
  private readonly statements = new Map<string, Database.Statement>();
  private checkpointer: Checkpointer | undefined;

  constructor(
    private readonly db: Database.Database,
    private readonly groupCommitMs: number,
    /** Present when commits do not fsync themselves (`synchronous = NORMAL`): writes resolve after its barrier. */
    private readonly sync: WalSync | undefined,
  ) {
    this.stmt = {
      insertBatchKey: db.prepare(
        "INSERT OR IGNORE INTO metric_batches (hostname, session_id, sequence, received_ms) VALUES (?, ?, ?, ?)",
      ),
      insertWal: db.prepare("INSERT INTO wal (hostname, received_ms, payload) VALUES (?, ?, ?)"),
      countHost: db.prepare(
        `INSERT INTO host_counters (hostname, envelopes) VALUES (?, ?)
         ON CONFLICT (hostname) DO UPDATE SET envelopes = envelopes + excluded.envelopes`,
      ),
      readWal: db.prepare("SELECT id, hostname, payload FROM wal WHERE id > ? ORDER BY id LIMIT ?"),
      findSeries: db.prepare("SELECT id FROM series WHERE hostname = ? AND metric = ? AND labels = ?"),
      insertSeries: db.prepare("INSERT INTO series (hostname, metric, labels) VALUES (?, ?, ?)"),
      // chunks: WITHOUT ROWID, clustered by (series_id, max_t, id); ids from chunk_ids (schema step 7)
      insertChunk: db.prepare("INSERT INTO chunks (series_id, max_t, id, min_t, count, data) VALUES (?, ?, ?, ?, ?, ?)"),
      // A grown chunk keeps its min_t and its stored max_t is at least that: the search stays within the series'
      // newest rows instead of walking all of them.
      updateChunk: db.prepare(
        "UPDATE chunks SET min_t = ?, max_t = ?, count = ?, data = ? WHERE series_id = ? AND max_t >= ? AND id = ?",
      ),
      updateChunkAnywhere: db.prepare("UPDATE chunks SET min_t = ?, max_t = ?, count = ?, data = ? WHERE series_id = ? AND id = ?"),
      nextChunkId: db.prepare("SELECT next_id FROM chunk_ids"),
      setNextChunkId: db.prepare("UPDATE chunk_ids SET next_id = ?"),
      upsertRollup: db.prepare("INSERT OR REPLACE INTO rollups (tier, series_id, window_start, data) VALUES (?, ?, ?, ?)"),
      markFlushed: db.prepare(
        `UPDATE series SET flushed_wal_id = max(flushed_wal_id, ?),
           last_v = CASE WHEN last_t IS NULL OR last_t <= ? THEN ? ELSE last_v END,
           last_t = CASE WHEN last_t IS NULL OR last_t <= ? THEN ? ELSE last_t END
         WHERE id = ?`,
      ),
      deleteWal: db.prepare("DELETE FROM wal WHERE id < ?"),
      setMeta: db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"),
      getMeta: db.prepare("SELECT value FROM meta WHERE key = ?"),
      readChunks: db.prepare(
        "SELECT id, series_id, min_t, max_t, count, data FROM chunks WHERE series_id = ? AND max_t >= ? AND min_t <= ? ORDER BY min_t, id",
      ),
      readRollups: db.prepare(
        `SELECT series_id, window_start, data FROM rollups
         WHERE tier = ? AND series_id = ? AND window_start >= ? AND window_start <= ? ORDER BY window_start`,
      ),
      insertEnvelope: db.prepare(
        "INSERT INTO envelopes (hostname, type, key, ts_ms, received_ms, payload) VALUES (?, ?, ?, ?, ?, ?)",
      ),
      upsertLatest: db.prepare(
        `INSERT INTO latest (hostname, type, key, ts_ms, payload) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (hostname, type, key) DO UPDATE SET ts_ms = excluded.ts_ms, payload = excluded.payload
         WHERE excluded.ts_ms >= latest.ts_ms`,
      ),
      touchAgent: db.prepare("UPDATE agents SET last_seen_ms = max(last_seen_ms, ?) WHERE hostname = ?"),
      touchAgentStatus: db.prepare(
        "UPDATE agents SET last_seen_ms = max(last_seen_ms, ?), collector_status = ? WHERE hostname = ?",
      ),
      getAgent: db.prepare("SELECT * FROM agents WHERE hostname = ?"),
      listAgents: db.prepare("SELECT * FROM agents ORDER BY hostname"),
      upsertAgent: db.prepare(
        `INSERT INTO agents (hostname, host_info, collectors, registered_ms, last_seen_ms) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (hostname) DO UPDATE SET host_info = excluded.host_info, collectors = excluded.collectors,
           last_seen_ms = max(agents.last_seen_ms, excluded.last_seen_ms)`,
      ),
      countQueued: db.prepare("SELECT count(*) AS n FROM commands WHERE hostname = ? AND state = ?"),
      countOpen: db.prepare("SELECT count(*) AS n FROM commands WHERE hostname = ? AND state IN (?, ?)"),
      insertCommand: db.prepare(
        "INSERT INTO commands (id, hostname, state, command, created_ms, requested_by) VALUES (?, ?, ?, ?, ?, ?)",
      ),
      oldestQueued: db.prepare(
        "SELECT * FROM commands WHERE hostname = ? AND state = ? ORDER BY created_ms, rowid LIMIT 1",
      ),
      markDelivered: db.prepare("UPDATE commands SET state = ?, delivered_ms = ? WHERE id = ?"),
      getCommand: db.prepare("SELECT * FROM commands WHERE id = ?"),
      requeue: db.prepare(
        "UPDATE commands SET state = ?, delivered_ms = NULL WHERE id = ? AND hostname = ? AND state = ?",
      ),
      finishCommand: db.prepare("UPDATE commands SET state = ?, outcome = ?, finished_ms = ? WHERE id = ?"),
      expirable: db.prepare("SELECT id FROM commands WHERE state IN (?, ?) AND created_ms < ?"),
      expire: db.prepare("UPDATE commands SET state = ?, finished_ms = ? WHERE id = ?"),
    };
    this.writeGroup = db.transaction((group: Pending[]) => group.map((p) => this.writeOne(p.batch)));
  }

  /**
   * Moves durability and checkpoints off this thread (see openSqliteStore). If the checkpointer fails, this
   * connection checkpoints again as SQLite does by default, so the WAL stays bounded.
   */
  checkpointOffThread(path: string, intervalMs: number): void {
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("wal_autocheckpoint = 0");
    this.db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT}`);
    const cp = new Checkpointer(path, intervalMs, () => {
      if (!this.closed) this.db.pragma("wal_autocheckpoint = 1000");
      void cp.stop();
      if (this.checkpointer === cp) this.checkpointer = undefined;
    });
    this.checkpointer = cp;
  }

  /** `value` once every commit made so far is on disk (at once when commits sync themselves). */
  private durable<T>(value: T): Promise<T> {
    return this.sync ? this.sync.barrier().then(() => value) : Promise.resolve(value);
  }

  /** Runs `fn` in a transaction; resolves with its result once the commit is on disk. */
  private durableTx<T>(fn: () => T): Promise<T> {
    return this.durable(this.db.transaction(fn)());
  }

  /** The statement for `sql`, prepared once (preparing costs more than running most of these). */
  private prepared(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (!st) this.statements.set(sql, (st = this.db.prepare(sql)));
    return st;
  }

  writeBatch(batch: BatchWrite): Promise<BatchWriteResult> {
    if (this.closed) return Promise.reject(new Error("store is closed"));
    return this.writePrepared(prepareWrite(batch));
  }

  /** writeBatch for a batch already encoded (by the store thread's caller: see sqlite-thread.ts). */
  writePrepared(batch: PreparedWrite): Promise<BatchWriteResult> {
    if (this.closed) return Promise.reject(new Error("store is closed"));
    return new Promise((resolve, reject) => {
      this.pending.push({ batch, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        const wait = this.lastCommitMs + this.groupCommitMs - performance.now();
        if (wait >= 1) setTimeout(() => this.flush(), wait);
        else setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const group = this.pending;
    this.pending = [];
    if (group.length === 0) return;
    this.lastCommitMs = performance.now();
    let results: BatchWriteResult[];
    try {
      results = this.writeGroup(group);
    } catch (err) {
      for (const p of group) p.reject(err);
      return;
    }
    this.durable(results).then(
      (r) => group.forEach((p, i) => p.resolve(r[i]!)),
      (err: unknown) => group.forEach((p) => p.reject(err)),
    );
  }

  private writeOne(b: PreparedWrite): BatchWriteResult {
    if (b.sessionId !== "") {
      const r = this.stmt.insertBatchKey.run(b.hostname, b.sessionId, b.sequence, b.receivedAtMs);
      if (r.changes === 0) return { duplicate: true, stored: 0, walId: 0 };
    }
    const walId = Number(this.stmt.insertWal.run(b.hostname, b.receivedAtMs, b.wal).lastInsertRowid);
    const snap = b.snapshots;
    for (let i = 0; i < snap.type.length; i++) {
      this.stmt.insertEnvelope.run(b.hostname, snap.type[i], snap.key[i], snap.tsMs[i], b.receivedAtMs, snap.bytes[i]);
    }
    const n = b.envelopeCount;
    if (n > 0) this.stmt.countHost.run(b.hostname, n);
    // The agent's last contact and collector status are the presence tracker's (touchAgents), not a write per batch.
    return { duplicate: false, stored: n, walId };
  }

  async listEnvelopes(q: {
    hostname: string;
    type?: string;
    sinceMs?: number;
    untilMs?: number;
    limit: number;
  }): Promise<StoredEnvelope[]> {
    const rows = this
      .prepared(
        `SELECT hostname, type, key, ts_ms, payload FROM envelopes
         WHERE hostname = ? AND (? IS NULL OR type = ?) AND ts_ms >= ? AND ts_ms <= ? ORDER BY ts_ms, id LIMIT ?`,
      )
      .all(q.hostname, q.type ?? null, q.type ?? null, q.sinceMs ?? 0, q.untilMs ?? Number.MAX_SAFE_INTEGER, q.limit) as EnvelopeRow[];
    return rows.map(toStoredEnvelope).filter((e) => isSnapshotCase(e.envelope.payload.case ?? ""));
  }

  async latest(hostname: string): Promise<StoredEnvelope[]> {
    const rows = this
      .prepared("SELECT hostname, type, key, ts_ms, payload FROM latest WHERE hostname = ? ORDER BY type, key")
      .all(hostname) as EnvelopeRow[];
    return rows.map(toStoredEnvelope);
  }

  async countEnvelopes(hostname?: string): Promise<number> {
    const row = (hostname === undefined
      ? this.prepared("SELECT coalesce(sum(envelopes), 0) AS n FROM host_counters").get()
      : this.prepared("SELECT coalesce(sum(envelopes), 0) AS n FROM host_counters WHERE hostname = ?").get(hostname)) as {
      n: number;
    };
    return row.n;
  }

  async readWal(afterId: number, limit: number): Promise<WalRow[]> {
    this.flush();
    return (this.stmt.readWal.all(afterId, limit) as { id: number; hostname: string; payload: Buffer }[]).map((r) => ({
      id: r.id,
      hostname: r.hostname,
      payload: r.payload,
    }));
  }

  async ensureSeries(series: SeriesIdentity[]): Promise<number[]> {
    return this.durableTx(() =>
      series.map((s) => {
        const row = this.stmt.findSeries.get(s.hostname, s.metric, s.labels) as { id: number } | undefined;
        return row ? row.id : Number(this.stmt.insertSeries.run(s.hostname, s.metric, s.labels).lastInsertRowid);
      }),
    );
  }

  async listSeries(q: { hostname?: string; metric?: string }): Promise<SeriesRow[]> {
    const rows = this
      .prepared(
        `SELECT * FROM series WHERE (? IS NULL OR hostname = ?) AND (? IS NULL OR metric = ?) ORDER BY id`,
      )
      .all(q.hostname ?? null, q.hostname ?? null, q.metric ?? null, q.metric ?? null) as SeriesDbRow[];
    return rows.map((r) => ({
      id: r.id,
      hostname: r.hostname,
      metric: r.metric,
      labels: r.labels,
      flushedWalId: r.flushed_wal_id,
      lastT: r.last_t ?? NaN,
      lastV: r.last_v ?? NaN,
    }));
  }

  async getMeta(key: string): Promise<string | undefined> {
    return (this.stmt.getMeta.get(key) as { value: string } | undefined)?.value;
  }

  async commitFlush(f: FlushWrite): Promise<{ chunkIds: number[] }> {
    this.flush(); // batches queued before this flush are committed first (WAL ids stay ordered)
    return this.durableTx(() => {
      let nextId = -1;
      const chunkIds = f.chunks.map((c) => {
        if (c.id !== undefined) {
          const r = this.stmt.updateChunk.run(c.minT, c.maxT, c.count, c.data, c.seriesId, c.minT, c.id);
          if (r.changes === 1) return c.id;
          const again = this.stmt.updateChunkAnywhere.run(c.minT, c.maxT, c.count, c.data, c.seriesId, c.id);
          if (again.changes === 1) return c.id;
        }
        if (nextId < 0) nextId = (this.stmt.nextChunkId.get() as { next_id: number }).next_id;
        const id = nextId++;
        this.stmt.insertChunk.run(c.seriesId, c.maxT, id, c.minT, c.count, c.data);
        return id;
      });
      if (nextId >= 0) this.stmt.setNextChunkId.run(nextId);
      for (const r of f.rollups) this.stmt.upsertRollup.run(r.tier, r.seriesId, r.windowStart, r.data);
      for (const m of f.flushed) {
        const hasLast = Number.isFinite(m.lastT);
        this.stmt.markFlushed.run(
          m.walId,
          hasLast ? m.lastT : -1,
          hasLast ? m.lastV : null,
          hasLast ? m.lastT : -1,
          hasLast ? m.lastT : null,
          m.seriesId,
        );
      }
      if (f.deleteWalBelow !== undefined) this.stmt.deleteWal.run(f.deleteWalBelow);
      for (const [k, v] of Object.entries(f.meta ?? {})) this.stmt.setMeta.run(k, v);
      for (const l of f.latest ?? []) this.stmt.upsertLatest.run(l.hostname, l.type, l.key, l.timestampMs, l.payload);
      return { chunkIds };
    });
  }

  async readChunks(seriesIds: number[], fromMs: number, toMs: number): Promise<ChunkRow[]> {
    const out: ChunkRow[] = [];
    for (const id of seriesIds) {
      for (const r of this.stmt.readChunks.all(id, fromMs, toMs) as ChunkDbRow[]) {
        out.push({ id: r.id, seriesId: r.series_id, minT: r.min_t, maxT: r.max_t, count: r.count, data: r.data });
      }
    }
    return out;
  }

  async readRollups(tier: RollupTier, seriesIds: number[], fromMs: number, toMs: number): Promise<RollupRow[]> {
    const out: RollupRow[] = [];
    for (const id of seriesIds) {
      const rows = this.stmt.readRollups.all(tier, id, fromMs, toMs) as { series_id: number; window_start: number; data: Buffer }[];
      for (const r of rows) out.push({ tier, seriesId: r.series_id, windowStart: r.window_start, data: r.data });
    }
    return out;
  }

  async applyRetention(
    cutoffs: RetentionCutoffs,
    windowMs: Record<RollupTier, number>,
  ): Promise<{ chunks: number; rollups: number; snapshots: number }> {
    return this.durableTx(() => {
      // chunks are clustered by series: one range per series (chunks belong to stored series; removeAgent deletes both)
      const chunks = this
        .prepared("DELETE FROM chunks WHERE series_id IN (SELECT id FROM series) AND max_t < ?")
        .run(cutoffs.raw).changes;
      let rollups = 0;
      for (const tier of ["1m", "1h"] as const) {
        rollups += this
          .prepared("DELETE FROM rollups WHERE tier = ? AND window_start + ? <= ?")
          .run(tier, windowMs[tier], cutoffs[tier]).changes;
      }
      const snapshots = this.prepared("DELETE FROM envelopes WHERE ts_ms < ?").run(cutoffs.raw).changes;
      return { chunks, rollups, snapshots };
    });
  }

  async sizeBytes(): Promise<number> {
    this.db.pragma("wal_checkpoint(PASSIVE)");
    const pages = this.db.pragma("page_count", { simple: true }) as number;
    const free = this.db.pragma("freelist_count", { simple: true }) as number;
    const size = this.db.pragma("page_size", { simple: true }) as number;
    return (pages - free) * size;
  }

  async upsertAgent(host: HostInfo, collectors: string[], atMs: number): Promise<void> {
    this.stmt.upsertAgent.run(host.hostname, toBinary(HostInfoSchema, host), JSON.stringify(collectors), atMs, atMs);
    return this.durable(undefined);
  }

  async touchAgent(hostname: string, atMs: number, collectorStatus?: CollectorStatus[]): Promise<void> {
    if (collectorStatus && collectorStatus.length > 0) {
      this.stmt.touchAgentStatus.run(atMs, statusToJson(collectorStatus), hostname);
    } else {
      this.stmt.touchAgent.run(atMs, hostname);
    }
    // Last-contact times are advisory (the next write's fsync covers them): not worth an fsync wait of their own.
  }

  async touchAgents(contacts: AgentContact[]): Promise<void> {
    if (contacts.length === 0) return;
    // Advisory, like touchAgent: committed, not waited for on disk.
    this.db.transaction(() => {
      for (const c of contacts) {
        if (c.collectorStatus && c.collectorStatus.length > 0) {
          this.stmt.touchAgentStatus.run(c.atMs, statusToJson(c.collectorStatus), c.hostname);
        } else {
          this.stmt.touchAgent.run(c.atMs, c.hostname);
        }
      }
    })();
  }

  async recordAgentStatuses(changes: readonly AgentStatusChange[]): Promise<boolean[]> {
    if (changes.length === 0) return [];
    const latest = this.prepared("SELECT status, at_ms FROM agent_status WHERE hostname = ? ORDER BY at_ms DESC, id DESC LIMIT 1");
    const insert = this.prepared("INSERT INTO agent_status (hostname, at_ms, status) VALUES (?, ?, ?)");
    return this.durableTx(() =>
      changes.map((change) => {
        const last = latest.get(change.hostname) as { status: string; at_ms: number } | undefined;
        if (last && (last.status === change.status || change.atMs < last.at_ms)) return false;
        insert.run(change.hostname, change.atMs, change.status);
        return true;
      }),
    );
  }

  async agentTimeline(q: { hostname: string; fromMs: number; toMs: number; limit: number }): Promise<{
    initial?: AgentStatusChange;
    changes: AgentStatusChange[];
  }> {
    const initial = this
      .prepared("SELECT hostname, status, at_ms FROM agent_status WHERE hostname = ? AND at_ms < ? ORDER BY at_ms DESC, id DESC LIMIT 1")
      .get(q.hostname, q.fromMs) as StatusRow | undefined;
    const rows = this
      .prepared(
        `SELECT hostname, status, at_ms FROM agent_status WHERE hostname = ? AND at_ms >= ? AND at_ms <= ?
         ORDER BY at_ms, id LIMIT ?`,
      )
      .all(q.hostname, q.fromMs, q.toMs, q.limit) as StatusRow[];
    return { ...(initial ? { initial: toStatusChange(initial) } : {}), changes: rows.map(toStatusChange) };
  }

  async latestAgentStatuses(): Promise<AgentStatusChange[]> {
    const rows = this
      .prepared(
        `SELECT hostname, status, at_ms FROM (
           SELECT hostname, status, at_ms, row_number() OVER (PARTITION BY hostname ORDER BY at_ms DESC, id DESC) AS n
           FROM agent_status
         ) WHERE n = 1 ORDER BY hostname`,
      )
      .all() as StatusRow[];
    return rows.map(toStatusChange);
  }

  async removeAgent(hostname: string, opts: { atMs: number; reason: string; deleteData: boolean }): Promise<AgentRemoval> {
    return this.durableTx(() => {
      const open = this
        .prepared("SELECT id, command FROM commands WHERE hostname = ? AND state IN (?, ?) ORDER BY created_ms, rowid")
        .all(hostname, OPEN_STATES[0], OPEN_STATES[1]) as { id: string; command: Buffer }[];
      const expire = this.prepared("UPDATE commands SET state = ?, finished_ms = ?, outcome = ? WHERE id = ?");
      for (const c of open) expire.run(CommandState.EXPIRED, opts.atMs, removedOutcome(c.id, c.command, opts.reason), c.id);
      const agent = this.prepared("DELETE FROM agents WHERE hostname = ?").run(hostname).changes === 1;
      const access = this.prepared("DELETE FROM agent_access WHERE hostname = ?").run(hostname).changes === 1;
      const out: AgentRemoval = { agent, access, expiredCommands: open.map((c) => c.id), series: 0, snapshots: 0, timeline: 0 };
      if (opts.deleteData) {
        const ids = (this.prepared("SELECT id FROM series WHERE hostname = ?").all(hostname) as { id: number }[]).map((r) => r.id);
        const delChunks = this.prepared("DELETE FROM chunks WHERE series_id = ?");
        const delRollups = this.prepared("DELETE FROM rollups WHERE tier IN ('1m', '1h') AND series_id = ?");
        for (const id of ids) {
          delChunks.run(id);
          delRollups.run(id);
        }
        out.series = this.prepared("DELETE FROM series WHERE hostname = ?").run(hostname).changes;
        out.snapshots = this.prepared("DELETE FROM envelopes WHERE hostname = ?").run(hostname).changes;
        this.prepared("DELETE FROM latest WHERE hostname = ?").run(hostname);
        this.prepared("DELETE FROM host_counters WHERE hostname = ?").run(hostname);
        this.prepared("DELETE FROM metric_batches WHERE hostname = ?").run(hostname);
        this.prepared("DELETE FROM wal WHERE hostname = ?").run(hostname);
        out.timeline = this.prepared("DELETE FROM agent_status WHERE hostname = ?").run(hostname).changes;
      }
      return out;
    });
  }

  async getAgent(hostname: string): Promise<AgentRecord | undefined> {
    const row = this.stmt.getAgent.get(hostname) as AgentRow | undefined;
    return row && toAgentRecord(row);
  }

  async listAgentContacts(): Promise<Array<{ hostname: string; lastSeenMs: number }>> {
    const rows = this.prepared("SELECT hostname, last_seen_ms FROM agents ORDER BY hostname").all() as Array<{
      hostname: string;
      last_seen_ms: number;
    }>;
    return rows.map((r) => ({ hostname: r.hostname, lastSeenMs: r.last_seen_ms }));
  }

  async listAgents(): Promise<AgentRecord[]> {
    return (this.stmt.listAgents.all() as AgentRow[]).map(toAgentRecord);
  }

  async enqueueCommand(
    rec: { command: Command; hostname: string; createdAtMs: number; requestedBy: string },
    maxQueued: number,
  ): Promise<void> {
    await this.durableTx(() => {
      const { n } = this.stmt.countQueued.get(rec.hostname, CommandState.QUEUED) as { n: number };
      if (n >= maxQueued) throw new QueueFullError(rec.hostname, maxQueued);
      this.stmt.insertCommand.run(
        rec.command.id,
        rec.hostname,
        CommandState.QUEUED,
        toBinary(CommandSchema, rec.command),
        rec.createdAtMs,
        rec.requestedBy,
      );
    });
  }

  async claimNextCommand(hostname: string, atMs: number): Promise<CommandRecord | undefined> {
    return this.durableTx(() => {
      const row = this.stmt.oldestQueued.get(hostname, CommandState.QUEUED) as CommandRow | undefined;
      if (!row) return undefined;
      this.stmt.markDelivered.run(CommandState.DELIVERED, atMs, row.id);
      return toCommandRecord({ ...row, state: CommandState.DELIVERED, delivered_ms: atMs });
    });
  }

  async requeueCommand(id: string, hostname: string): Promise<boolean> {
    return this.durable(this.stmt.requeue.run(CommandState.QUEUED, id, hostname, CommandState.DELIVERED).changes === 1);
  }

  async finishCommand(
    id: string,
    hostname: string,
    state: CommandState,
    outcome: CommandOutcome | undefined,
    atMs: number,
  ): Promise<CommandRecord | undefined> {
    return this.durableTx(() => {
      const row = this.stmt.getCommand.get(id) as CommandRow | undefined;
      if (!row || row.hostname !== hostname) return undefined;
      // A finished command keeps its first result: an agent retrying a result must not overwrite it.
      if (row.state === CommandState.COMPLETED || row.state === CommandState.FAILED) return toCommandRecord(row);
      const bytes = outcome ? Buffer.from(toBinary(CommandOutcomeSchema, outcome)) : null;
      this.stmt.finishCommand.run(state, bytes, atMs, id);
      return toCommandRecord({ ...row, state, outcome: bytes, finished_ms: atMs });
    });
  }

  async getCommand(id: string): Promise<CommandRecord | undefined> {
    const row = this.stmt.getCommand.get(id) as CommandRow | undefined;
    return row && toCommandRecord(row);
  }

  async listCommands(q: { hostname?: string; limit: number }): Promise<CommandRecord[]> {
    const rows = this
      .prepared("SELECT * FROM commands WHERE (? IS NULL OR hostname = ?) ORDER BY created_ms DESC, rowid DESC LIMIT ?")
      .all(q.hostname ?? null, q.hostname ?? null, q.limit) as CommandRow[];
    return rows.map(toCommandRecord);
  }

  async countPendingCommands(hostname: string): Promise<number> {
    return (this.stmt.countOpen.get(hostname, OPEN_STATES[0], OPEN_STATES[1]) as { n: number }).n;
  }

  async expireCommands(beforeMs: number, atMs: number): Promise<string[]> {
    return this.durableTx(() => {
      const ids = (this.stmt.expirable.all(OPEN_STATES[0], OPEN_STATES[1], beforeMs) as { id: string }[]).map((r) => r.id);
      for (const id of ids) this.stmt.expire.run(CommandState.EXPIRED, atMs, id);
      return ids;
    });
  }

  // ----------------------------------------------------------------------------------------------- access control

  async createAdminToken(rec: AdminTokenRecord): Promise<boolean> {
    const r = this
      .prepared(
        `INSERT OR IGNORE INTO admin_tokens (id, name, role, secret_hash, created_ms, created_by, last_used_ms, revoked_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(rec.id, rec.name, rec.role, rec.secretHash, rec.createdAtMs, rec.createdBy, rec.lastUsedMs ?? null, rec.revokedAtMs ?? null);
    return this.durable(r.changes === 1);
  }

  async getAdminToken(id: string): Promise<AdminTokenRecord | undefined> {
    const row = this.prepared("SELECT * FROM admin_tokens WHERE id = ?").get(id) as AdminTokenRow | undefined;
    return row && toAdminTokenRecord(row);
  }

  async listAdminTokens(): Promise<AdminTokenRecord[]> {
    return (this.prepared("SELECT * FROM admin_tokens ORDER BY name").all() as AdminTokenRow[]).map(toAdminTokenRecord);
  }

  async countAdminTokens(): Promise<number> {
    return (this.prepared("SELECT count(*) AS n FROM admin_tokens").get() as { n: number }).n;
  }

  async revokeAdminToken(nameOrId: string, atMs: number): Promise<AdminTokenRecord | undefined> {
    return this.durableTx(() => {
      const row = (this.prepared("SELECT * FROM admin_tokens WHERE id = ?").get(nameOrId) ??
        this.prepared("SELECT * FROM admin_tokens WHERE name = ?").get(nameOrId)) as AdminTokenRow | undefined;
      if (!row) return undefined;
      if (row.revoked_ms === null) {
        this.prepared("UPDATE admin_tokens SET revoked_ms = ? WHERE id = ?").run(atMs, row.id);
        row.revoked_ms = atMs;
      }
      return toAdminTokenRecord(row);
    });
  }

  async touchAdminToken(id: string, atMs: number): Promise<void> {
    this
      .prepared("UPDATE admin_tokens SET last_used_ms = ? WHERE id = ? AND (last_used_ms IS NULL OR last_used_ms < ?)")
      .run(atMs, id, atMs);
    // Advisory (a token's last use): not worth an fsync wait on every admin call.
  }

  async createEnrollmentToken(rec: EnrollmentTokenRecord): Promise<void> {
    this
      .prepared(
        `INSERT INTO enrollment_tokens (id, name, secret_hash, single_use, auto_approve, created_ms, expires_ms, labels, uses,
           revoked_ms, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        rec.id,
        rec.name,
        rec.secretHash,
        rec.singleUse ? 1 : 0,
        rec.autoApprove ? 1 : 0,
        rec.createdAtMs,
        rec.expiresAtMs ?? null,
        JSON.stringify(rec.labels),
        rec.uses,
        rec.revokedAtMs ?? null,
        rec.createdBy,
      );
    return this.durable(undefined);
  }

  async getEnrollmentToken(id: string): Promise<EnrollmentTokenRecord | undefined> {
    const row = this.prepared("SELECT * FROM enrollment_tokens WHERE id = ?").get(id) as EnrollmentTokenRow | undefined;
    return row && toEnrollmentTokenRecord(row);
  }

  async listEnrollmentTokens(): Promise<EnrollmentTokenRecord[]> {
    const rows = this.prepared("SELECT * FROM enrollment_tokens ORDER BY created_ms DESC, id").all() as EnrollmentTokenRow[];
    return rows.map(toEnrollmentTokenRecord);
  }

  async revokeEnrollmentToken(id: string, atMs: number): Promise<boolean> {
    return this.durableTx(() => {
      if (!this.prepared("SELECT 1 FROM enrollment_tokens WHERE id = ?").get(id)) return false;
      this.prepared("UPDATE enrollment_tokens SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL").run(atMs, id);
      return true;
    });
  }

  async getAgentAccess(hostname: string): Promise<AgentAccessRecord | undefined> {
    const row = this.prepared("SELECT * FROM agent_access WHERE hostname = ?").get(hostname) as AgentAccessRow | undefined;
    return row && toAgentAccessRecord(row);
  }

  async findAgentAccessByKeyId(keyId: string): Promise<AgentAccessRecord | undefined> {
    const row = (this.prepared("SELECT * FROM agent_access WHERE key_id = ?").get(keyId) ??
      this.prepared("SELECT * FROM agent_access WHERE next_key_id = ?").get(keyId)) as AgentAccessRow | undefined;
    return row && toAgentAccessRecord(row);
  }

  async findAgentAccessByEnrollmentId(enrollmentId: string): Promise<AgentAccessRecord | undefined> {
    const row = this.prepared("SELECT * FROM agent_access WHERE enrollment_id = ?").get(enrollmentId) as
      | AgentAccessRow
      | undefined;
    return row && toAgentAccessRecord(row);
  }

  async listAgentAccess(): Promise<AgentAccessRecord[]> {
    return (this.prepared("SELECT * FROM agent_access ORDER BY hostname").all() as AgentAccessRow[]).map(toAgentAccessRecord);
  }

  async putAgentAccess(
    rec: AgentAccessRecord,
    expectedVersion: number | undefined,
    consumeToken?: { id: string; atMs: number },
  ): Promise<PutAgentAccessResult> {
    const version = (expectedVersion ?? 0) + 1;
    const values = agentAccessValues(rec, version, (b) => (b ? 1 : 0));
    try {
      await this.durableTx(() => {
        if (consumeToken) {
          const used = this
            .prepared(
              `UPDATE enrollment_tokens SET uses = uses + 1
               WHERE id = ? AND revoked_ms IS NULL AND (expires_ms IS NULL OR expires_ms > ?) AND (single_use = 0 OR uses = 0)`,
            )
            .run(consumeToken.id, consumeToken.atMs);
          if (used.changes !== 1) throw new Rollback("token-unusable");
        }
        if (expectedVersion === undefined) {
          const cols = AGENT_ACCESS_COLUMNS.join(", ");
          const marks = AGENT_ACCESS_COLUMNS.map(() => "?").join(", ");
          const r = this.prepared(`INSERT OR IGNORE INTO agent_access (${cols}) VALUES (${marks})`).run(...values);
          if (r.changes !== 1) throw new Rollback("conflict");
        } else {
          const sets = AGENT_ACCESS_COLUMNS.slice(1).map((c) => `${c} = ?`).join(", ");
          const r = this
            .prepared(`UPDATE agent_access SET ${sets} WHERE hostname = ? AND version = ?`)
            .run(...values.slice(1), rec.hostname, expectedVersion);
          if (r.changes !== 1) throw new Rollback("conflict");
        }
      });
    } catch (err) {
      if (err instanceof Rollback) return { ok: false, reason: err.reason };
      throw err;
    }
    return { ok: true, version };
  }

  async deleteAgentAccess(hostname: string): Promise<boolean> {
    return this.durable(this.prepared("DELETE FROM agent_access WHERE hostname = ?").run(hostname).changes === 1);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    // The checkpointer's connection first, so that closing this one (the last) checkpoints and removes the WAL.
    await this.checkpointer?.stop();
    await this.sync?.close(); // after the barriers already asked (the last group commit's)
    this.db.close();
  }
}

