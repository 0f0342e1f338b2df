import { create, toBinary } from "@bufbuild/protobuf";
import { randomUUID } from "node:crypto";
import pg from "pg";
import type { Logger } from "../../../common/logger.js";
import { HostInfoSchema, type HostInfo } from "../../../gen/spectra/v1/agent_service_pb.js";
import {
  CommandOutcomeSchema,
  CommandSchema,
  CommandState,
  type Command,
  type CommandOutcome,
} from "../../../gen/spectra/v1/diagnostics_pb.js";
import type { CollectorStatus } from "../../../gen/spectra/v1/metrics_pb.js";
import { QueueFullError } from "../../errors.js";
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
import type {
  AdminTokenRecord,
  AgentAccessRecord,
  AgentContact,
  AgentRemoval,
  AgentStatusChange,
  EnrollmentTokenRecord,
  PutAgentAccessResult,
  AgentRecord,
  BatchWrite,
  BatchWriteResult,
  ChunkRow,
  CommandRecord,
  FlushWrite,
  RetentionCutoffs,
  LatestRow,
  RollupRow,
  RollupTier,
  SeriesIdentity,
  SeriesRow,
  Store,
  StoreChannel,
  StoredEnvelope,
  WalRow,
} from "../store.js";
import { prepareWrite, type PreparedWrite } from "../prepared-write.js";
import { runPostgresMigrations } from "./migrations.js";

/** Options of {@link openPostgresStore}. */
export interface PostgresStoreOptions {
  /** This server process's name in the shared database: its WAL rows are its own (replay after a restart). */
  instanceId: string;
  /** Where connection trouble of the background connections is reported; silent when absent. */
  logger?: Logger;
}

const DAY_MS = 86_400_000;
/** Day and month partitions exist for 1970-01-01 .. 9999-12-31; anything else lands in the DEFAULT partition. */
const MAX_MS = Date.UTC(10_000, 0, 1);
const TIERS: readonly RollupTier[] = ["1m", "1h"];
/** Groups of batches are capped so one transaction stays short. */
const MAX_GROUP = 512;
/** Advisory locks: partition creation (bigint key) and one host's command queue (two-key form, this class id). */
const PARTITION_LOCK = 0x5350_4543_0002;
const COMMAND_LOCK_CLASS = 0x5350_4543;
/** Advisory lock class (two-key form) serializing one host's status timeline writes. */
const STATUS_LOCK_CLASS = 0x5350_4544;
/** Listener reconnect backoff and liveness check. */
const LISTEN_BACKOFF_MIN_MS = 100;
const LISTEN_BACKOFF_MAX_MS = 5_000;
const LISTEN_PING_MS = 10_000;
const CHANNELS: readonly StoreChannel[] = [
  "command_queued",
  "command_updated",
  "agent_access_changed",
  "host_data_deleted",
  "admin_token_revoked",
];
const STORE_TABLES = [
  "schema_migrations",
  "metric_batches",
  "wal",
  "envelopes",
  "latest",
  "host_counters",
  "agents",
  "commands",
  "series",
  "meta",
  "admin_tokens",
  "enrollment_tokens",
  "agent_access",
  "agent_status",
];

/** int8 (counts, ids, millisecond timestamps) as JS numbers: every value the store keeps is below 2^53. */
const typeParsers: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: "text" | "binary") => {
    if (oid === pg.types.builtins.INT8 && format !== "binary") return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format as "text");
  }) as pg.CustomTypesConfig["getTypeParser"],
};

/** What every connection of the store is opened with. */
function clientConfig(url: string, role = "spectra-server"): pg.ClientConfig {
  return {
    connectionString: url,
    types: typeParsers,
    connectionTimeoutMillis: 10_000,
    keepAlive: true,
    application_name: role,
  };
}

interface Queued {
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

/** A partition the store creates on demand. */
interface PartitionSpec {
  name: string;
  parent: string;
  from: number;
  to: number;
}

/**
 * Opens (creating and migrating) the PostgreSQL store at `url`. Reads go through a pool; batch writes go through one
 * dedicated connection, in call order, grouping the batches queued during one round trip into one transaction
 * (group commit), so resolved writes carry increasing WAL ids in resolution order. Several server processes may
 * share one database: commands are claimed with row locks, and changes are announced with NOTIFY (see subscribe).
 */
export async function openPostgresStore(url: string, opts: PostgresStoreOptions): Promise<Store> {
  const pool = new pg.Pool({ ...clientConfig(url), max: 10, idleTimeoutMillis: 30_000 });
  // An idle pooled connection that dies is dropped by the pool and replaced on demand; without a listener the
  // 'error' event would crash the process.
  pool.on("error", (err) => opts.logger?.warn({ err: err.message }, "postgres: idle connection lost"));
  try {
    const client = await pool.connect();
    try {
      await runPostgresMigrations(client);
    } finally {
      client.release();
    }
    const store = new PostgresStore(pool, url, opts);
    await store.start();
    return store;
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err;
  }
}

function buf(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** Quotes an identifier the store made itself (partition names: letters, digits, underscores). */
function ident(name: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad identifier ${JSON.stringify(name)}`);
  return `"${name}"`;
}

/** Chunks are indexed and partitioned on t_end: the end of the aligned window of this length holding their min_t. */
const CHUNK_WINDOW_MS = 2 * 3_600_000;

/**
 * A chunk's t_end (schema step 5): the last millisecond of the aligned 2-hour window holding its first sample, or
 * its max_t when it reaches past that window (out-of-order chunks). Always max_t <= t_end < max_t + 2 h, and it
 * stays the same while an open chunk grows (the engine closes chunks at 2-hour boundaries).
 */
export function chunkEnd(minT: number, maxT: number): number {
  const end = Math.floor(minT / CHUNK_WINDOW_MS) * CHUNK_WINDOW_MS + CHUNK_WINDOW_MS - 1;
  return maxT <= end ? end : maxT;
}

/** The day partition of chunks holding rows with this t_end, or undefined (DEFAULT partition). */
function chunkPartition(tEnd: number): PartitionSpec | undefined {
  if (!(tEnd >= 0 && tEnd < MAX_MS)) return undefined;
  const day = Math.floor(tEnd / DAY_MS);
  return { name: `chunks_d${day}`, parent: "chunks", from: day * DAY_MS, to: (day + 1) * DAY_MS };
}

/** The month partition of one tier's rollups holding this window start, or undefined (DEFAULT partition). */
function rollupPartition(tier: string, windowStart: number): PartitionSpec | undefined {
  if (!TIERS.includes(tier as RollupTier) || !(windowStart >= 0 && windowStart < MAX_MS)) return undefined;
  const d = new Date(windowStart);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  return {
    name: `rollups_${tier}_m${y}${String(m + 1).padStart(2, "0")}`,
    parent: `rollups_${tier}`,
    from: Date.UTC(y, m, 1),
    to: Date.UTC(y, m + 1, 1),
  };
}

/** A uint64 replay sequence as the int64 with the same bits (bigint columns are signed): exact, never out of range. */
function seqText(seq: bigint): string {
  return BigInt.asIntN(64, seq).toString();
}

/** PostgreSQL text cannot hold NUL: an agent-supplied series key or type with one is stored with U+FFFD instead. */
function pgText(s: string): string {
  return s.includes("\u0000") ? s.replaceAll("\u0000", "\uFFFD") : s;
}

function isRetryable(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === "40P01" || code === "40001"; // deadlock detected, serialization failure
}

class PostgresStore implements Store {
  private readonly instance: string;
  private readonly logger: Logger | undefined;
  /** Tags this store's NOTIFY payloads, so its own notifications are not reported back to it. */
  private readonly nonce = randomUUID();
  private closed = false;

  // Group commit on the dedicated write connection.
  private writer: pg.Client | undefined;
  private queue: Queued[] = [];
  private draining = false;
  /** Batches queued and batches settled (committed or failed) so far; settled() waits on these. */
  private queuedCount = 0;
  private settledCount = 0;
  private settledWaiters: { target: number; resolve: () => void }[] = [];

  private readonly partitions = new Set<string>();
  private readonly claimChains = new Map<string, Promise<unknown>>();

  // LISTEN/NOTIFY.
  private listener: pg.Client | undefined;
  private listenTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private listenAttempt = 0;
  private readonly subscribers = new Map<StoreChannel, Set<(key: string | null) => void>>();

  constructor(
    private readonly pool: pg.Pool,
    private readonly url: string,
    opts: PostgresStoreOptions,
  ) {
    this.instance = opts.instanceId;
    this.logger = opts.logger;
  }

  /** Opens the write and listen connections; fails when either cannot be opened. */
  async start(): Promise<void> {
    this.writer = await this.connectWriter();
    try {
      await this.listen();
    } catch (err) {
      await this.writer.end().catch(() => undefined);
      throw err;
    }
    this.pingTimer = setInterval(() => this.pingListener(), LISTEN_PING_MS);
    this.pingTimer.unref();
  }

  // ---------------------------------------------------------------------------------------------- batch writes

  writeBatch(batch: BatchWrite): Promise<BatchWriteResult> {
    if (this.closed) return Promise.reject(new Error("store is closed"));
    return new Promise((resolve, reject) => {
      this.queue.push({ batch: prepareWrite(batch), resolve, reject });
      this.queuedCount++;
      if (!this.draining) {
        this.draining = true;
        // Let the calls of this event-loop turn join the first group.
        setImmediate(() => void this.drain());
      }
    });
  }

  /** Resolves once every batch queued before the call is committed (or failed); later batches do not delay it. */
  private settled(): Promise<void> {
    if (this.settledCount >= this.queuedCount) return Promise.resolve();
    return new Promise((resolve) => this.settledWaiters.push({ target: this.queuedCount, resolve }));
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const group = this.queue.splice(0, MAX_GROUP);
      try {
        const results = await this.writeGroupRetrying(group.map((q) => q.batch));
        group.forEach((q, i) => q.resolve(results[i]!));
      } catch (err) {
        if (group.length === 1) {
          group[0]!.reject(err);
        } else {
          // One bad batch must not fail the others of its group: write them one by one, in order.
          for (const q of group) {
            try {
              q.resolve((await this.writeGroupRetrying([q.batch]))[0]!);
            } catch (e) {
              q.reject(e);
            }
          }
        }
      }
      this.settledCount += group.length;
      const ready = this.settledWaiters.filter((w) => w.target <= this.settledCount);
      this.settledWaiters = this.settledWaiters.filter((w) => w.target > this.settledCount);
      for (const w of ready) w.resolve();
    }
    this.draining = false;
  }

  private async connectWriter(): Promise<pg.Client> {
    const c = new pg.Client(clientConfig(this.url, "spectra-server write"));
    c.on("error", (err) => {
      this.logger?.warn({ err: err.message }, "postgres: write connection lost");
      if (this.writer === c) this.writer = undefined;
    });
    await c.connect();
    return c;
  }

  private async writeGroupRetrying(group: PreparedWrite[]): Promise<BatchWriteResult[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.writeGroup(group);
      } catch (err) {
        if (attempt >= 3 || !isRetryable(err)) throw err;
      }
    }
  }

  private async writeGroup(group: PreparedWrite[]): Promise<BatchWriteResult[]> {
    let c = (this.writer ??= await this.connectWriter());
    try {
      await c.query("BEGIN");
    } catch {
      // The connection died while idle (nothing was sent yet): once more on a new one.
      if (this.writer === c) this.writer = undefined;
      void c.end().catch(() => undefined);
      c = this.writer = await this.connectWriter();
      await c.query("BEGIN");
    }
    try {
      const results = await this.writeGroupIn(c, group);
      await c.query("COMMIT");
      return results;
    } catch (err) {
      await c.query("ROLLBACK").catch(() => {
        // The connection is gone or unusable: open a new one for the next group.
        if (this.writer === c) this.writer = undefined;
        void c.end().catch(() => undefined);
      });
      throw err;
    }
  }

  private async writeGroupIn(c: pg.Client, group: PreparedWrite[]): Promise<BatchWriteResult[]> {
    // 1. Replay keys: a key seen earlier in this group, or already stored, makes the batch a duplicate.
    const keyOf = (b: PreparedWrite) => `${b.hostname}\u0000${b.sessionId}\u0000${seqText(b.sequence)}`;
    const isNew = group.map((b) => b.sessionId === "");
    const firstIndex = new Map<string, number>();
    group.forEach((b, i) => {
      if (b.sessionId !== "" && !firstIndex.has(keyOf(b))) firstIndex.set(keyOf(b), i);
    });
    if (firstIndex.size > 0) {
      // Sorted, so two servers inserting overlapping keys lock them in the same order.
      const keyed = [...firstIndex.values()].map((i) => group[i]!).sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : 1));
      const { rows } = await c.query<{ hostname: string; session_id: string; sequence: string }>(
        `INSERT INTO metric_batches (hostname, session_id, sequence, received_ms)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
         ON CONFLICT DO NOTHING RETURNING hostname, session_id, sequence::text AS sequence`,
        [
          keyed.map((b) => b.hostname),
          keyed.map((b) => b.sessionId),
          keyed.map((b) => seqText(b.sequence)),
          keyed.map((b) => b.receivedAtMs),
        ],
      );
      for (const r of rows) {
        const i = firstIndex.get(`${r.hostname}\u0000${r.session_id}\u0000${r.sequence}`);
        if (i !== undefined) isNew[i] = true;
      }
    }
    const fresh = group.filter((_, i) => isNew[i]);
    if (fresh.length === 0) return group.map(() => ({ duplicate: true, stored: 0, walId: 0 }));

    // 2. WAL ids, allocated up front and handed out in call order: increasing in resolution order.
    const ids = (
      await c.query<{ id: number }>("SELECT nextval('wal_id_seq') AS id FROM generate_series(1, $1)", [fresh.length])
    ).rows
      .map((r) => r.id)
      .sort((a, b) => a - b);

    const wal = { id: [] as number[], host: [] as string[], received: [] as number[], payload: [] as Buffer[] };
    const snap = {
      host: [] as string[],
      type: [] as string[],
      key: [] as string[],
      ts: [] as number[],
      received: [] as number[],
      payload: [] as Buffer[],
    };
    const counts = new Map<string, number>();
    const walIdOf = new Map<PreparedWrite, number>();
    fresh.forEach((b, n) => {
      const id = ids[n]!;
      walIdOf.set(b, id);
      wal.id.push(id);
      wal.host.push(b.hostname);
      wal.received.push(b.receivedAtMs);
      wal.payload.push(buf(b.wal));
      const s = b.snapshots;
      for (let i = 0; i < s.type.length; i++) {
        snap.host.push(b.hostname);
        snap.type.push(pgText(s.type[i]!));
        snap.key.push(pgText(s.key[i]!));
        snap.ts.push(s.tsMs[i]!);
        snap.received.push(b.receivedAtMs);
        snap.payload.push(buf(s.bytes[i]!));
      }
      const count = b.envelopeCount;
      if (count > 0) counts.set(b.hostname, (counts.get(b.hostname) ?? 0) + count);
    });

    await c.query(
      `INSERT INTO wal (id, instance, hostname, received_ms, payload)
       SELECT t.id, $2, t.h, t.r, t.p FROM unnest($1::bigint[], $3::text[], $4::bigint[], $5::bytea[]) AS t(id, h, r, p)`,
      [wal.id, this.instance, wal.host, wal.received, wal.payload],
    );
    if (snap.host.length > 0) {
      await c.query(
        `INSERT INTO envelopes (hostname, type, key, ts_ms, received_ms, payload)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bytea[])`,
        [snap.host, snap.type, snap.key, snap.ts, snap.received, snap.payload],
      );
    }
    if (counts.size > 0) {
      const hosts = [...counts.keys()].sort();
      await c.query(
        `INSERT INTO host_counters AS h (hostname, envelopes) SELECT * FROM unnest($1::text[], $2::bigint[])
         ON CONFLICT (hostname) DO UPDATE SET envelopes = h.envelopes + excluded.envelopes`,
        [hosts, hosts.map((h) => counts.get(h)!)],
      );
    }
    // The agent's last contact and collector status are the presence tracker's (touchAgents), not a write per batch.

    return group.map((b, i) =>
      isNew[i]
        ? { duplicate: false, stored: b.envelopeCount, walId: walIdOf.get(b)! }
        : { duplicate: true, stored: 0, walId: 0 },
    );
  }

  // ----------------------------------------------------------------------------------------- envelopes, latest

  async listEnvelopes(q: {
    hostname: string;
    type?: string;
    sinceMs?: number;
    untilMs?: number;
    limit: number;
  }): Promise<StoredEnvelope[]> {
    const { rows } = await this.pool.query<EnvelopeRow>(
      `SELECT hostname, type, key, ts_ms, payload FROM envelopes
       WHERE hostname = $1 AND ($2::text IS NULL OR type = $2) AND ts_ms >= $3 AND ts_ms <= $4
       ORDER BY ts_ms, id LIMIT $5`,
      [q.hostname, q.type ?? null, q.sinceMs ?? Number.MIN_SAFE_INTEGER, q.untilMs ?? Number.MAX_SAFE_INTEGER, q.limit],
    );
    return rows.map(toStoredEnvelope);
  }

  async latest(hostname: string): Promise<StoredEnvelope[]> {
    const { rows } = await this.pool.query<EnvelopeRow>(
      "SELECT hostname, type, key, ts_ms, payload FROM latest WHERE hostname = $1 ORDER BY type, key",
      [hostname],
    );
    return rows.map(toStoredEnvelope);
  }

  async countEnvelopes(hostname?: string): Promise<number> {
    const { rows } = await this.pool.query<{ n: number }>(
      "SELECT coalesce(sum(envelopes), 0)::bigint AS n FROM host_counters WHERE $1::text IS NULL OR hostname = $1",
      [hostname ?? null],
    );
    return rows[0]!.n;
  }

  // ----------------------------------------------------------------------------------------------- time series

  async readWal(afterId: number, limit: number): Promise<WalRow[]> {
    await this.settled();
    const { rows } = await this.pool.query<{ id: number; hostname: string; payload: Buffer }>(
      "SELECT id, hostname, payload FROM wal WHERE instance = $1 AND id > $2 ORDER BY id LIMIT $3",
      [this.instance, afterId, limit],
    );
    return rows;
  }

  async ensureSeries(series: SeriesIdentity[]): Promise<number[]> {
    if (series.length === 0) return [];
    const keyOf = (s: SeriesIdentity) => `${s.hostname}\u0000${s.metric}\u0000${s.labels}`;
    const unique = [...new Map(series.map((s) => [keyOf(s), s])).values()].sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : 1));
    const ids = new Map<string, number>();
    const lookup = async (list: SeriesIdentity[]) => {
      const { rows } = await this.pool.query<{ id: number; hostname: string; metric: string; labels: string }>(
        `SELECT s.id, s.hostname, s.metric, s.labels FROM series s
         JOIN unnest($1::text[], $2::text[], $3::text[]) AS t(h, m, l) ON s.hostname = t.h AND s.metric = t.m AND s.labels = t.l`,
        [list.map((s) => s.hostname), list.map((s) => s.metric), list.map((s) => s.labels)],
      );
      for (const r of rows) ids.set(keyOf(r), r.id);
    };
    await lookup(unique);
    const missing = unique.filter((s) => !ids.has(keyOf(s)));
    if (missing.length > 0) {
      // Another server may create the same series at the same time: the loser of the race skips the row, then
      // reads the winner's id (the insert waited for the winner's commit).
      await this.pool.query(
        `INSERT INTO series (hostname, metric, labels) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
         ON CONFLICT (hostname, metric, labels) DO NOTHING`,
        [missing.map((s) => s.hostname), missing.map((s) => s.metric), missing.map((s) => s.labels)],
      );
      await lookup(missing);
    }
    return series.map((s) => {
      const id = ids.get(keyOf(s));
      if (id === undefined) throw new Error(`series ${s.metric}{${s.labels}} of ${s.hostname} was not created`);
      return id;
    });
  }

  async listSeries(q: { hostname?: string; metric?: string }): Promise<SeriesRow[]> {
    const { rows } = await this.pool.query<SeriesDbRow>(
      `SELECT id, hostname, metric, labels, flushed_wal_id, last_t, last_v FROM series
       WHERE ($1::text IS NULL OR hostname = $1) AND ($2::text IS NULL OR metric = $2) ORDER BY id`,
      [q.hostname ?? null, q.metric ?? null],
    );
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
    const { rows } = await this.pool.query<{ value: string }>(
      "SELECT value FROM meta WHERE instance = $1 AND key = $2",
      [this.instance, key],
    );
    return rows[0]?.value;
  }

  async commitFlush(f: FlushWrite): Promise<{ chunkIds: number[] }> {
    await this.settled(); // batches queued before this flush are committed first, as on SQLite
    const wanted = new Map<string, PartitionSpec>();
    const tEnd = f.chunks.map((ch) => chunkEnd(ch.minT, ch.maxT));
    for (const te of tEnd) {
      const p = chunkPartition(te);
      if (p) wanted.set(p.name, p);
    }
    for (const r of f.rollups) {
      const p = rollupPartition(r.tier, r.windowStart);
      if (p) wanted.set(p.name, p);
    }
    await this.ensurePartitions([...wanted.values()]);

    const c = await this.pool.connect();
    try {
      await c.query("BEGIN");
      const chunkIds: (number | undefined)[] = f.chunks.map(() => undefined);
      // Open chunks that grew: replace their rows. A grown chunk keeps its min_t, and its stored t_end is at least
      // that (t_end >= max_t >= min_t): the search stays within the series' newest index entries; a row not found
      // so (its min_t changed) is looked for among all of the series' rows before it counts as gone. The new t_end
      // is normally the old one (HOT update); when it is not, the row moves to its new partition. The same bound with
      // the batch's smallest min_t as a constant lets the planner skip the older day partitions.
      for (const bounded of [true, false]) {
        const updates = f.chunks.map((ch, i) => ({ ch, i })).filter((u) => u.ch.id !== undefined && chunkIds[u.i] === undefined);
        if (updates.length === 0) break;
        updates.sort((a, b) => a.ch.id! - b.ch.id!);
        const { rows } = await c.query<{ id: number }>(
          `UPDATE chunks c SET t_end = t.te, min_t = t.mn, max_t = t.mx, count = t.n, data = t.d
           FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::integer[], $7::bytea[])
             AS t(id, s, te, mn, mx, n, d)
           WHERE c.series_id = t.s AND c.id = t.id ${bounded ? "AND c.t_end >= t.mn AND c.t_end >= $8" : ""} RETURNING c.id`,
          [
            updates.map((u) => u.ch.id!),
            updates.map((u) => u.ch.seriesId),
            updates.map((u) => tEnd[u.i]!),
            updates.map((u) => u.ch.minT),
            updates.map((u) => u.ch.maxT),
            updates.map((u) => u.ch.count),
            updates.map((u) => buf(u.ch.data)),
            ...(bounded ? [updates.reduce((m, u) => Math.min(m, u.ch.minT), Number.POSITIVE_INFINITY)] : []),
          ],
        );
        const found = new Set(rows.map((r) => Number(r.id)));
        for (const u of updates) if (found.has(u.ch.id!)) chunkIds[u.i] = u.ch.id!;
      }
      // New chunks (and grown ones whose row retention removed meanwhile) get ids allocated up front, in order.
      const inserts = f.chunks.map((ch, i) => ({ ch, i })).filter((u) => chunkIds[u.i] === undefined);
      if (inserts.length > 0) {
        const ids = (
          await c.query<{ id: number }>("SELECT nextval('chunks_id_seq') AS id FROM generate_series(1, $1)", [inserts.length])
        ).rows
          .map((r) => r.id)
          .sort((a, b) => a - b);
        inserts.forEach((u, n) => (chunkIds[u.i] = ids[n]!));
        await c.query(
          `INSERT INTO chunks (id, series_id, t_end, min_t, max_t, count, data)
           SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::integer[], $7::bytea[])`,
          [
            inserts.map((u) => chunkIds[u.i]!),
            inserts.map((u) => u.ch.seriesId),
            inserts.map((u) => tEnd[u.i]!),
            inserts.map((u) => u.ch.minT),
            inserts.map((u) => u.ch.maxT),
            inserts.map((u) => u.ch.count),
            inserts.map((u) => buf(u.ch.data)),
          ],
        );
      }
      if (f.latest && f.latest.length > 0) {
        // One row per (host, type, key) per statement: the newest, the later one on a tie.
        const newest = new Map<string, LatestRow>();
        for (const l of f.latest) {
          const lk = `${l.hostname}\u0000${l.type}\u0000${l.key}`;
          const prev = newest.get(lk);
          if (!prev || l.timestampMs >= prev.timestampMs) newest.set(lk, l);
        }
        const rows = [...newest.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, v]) => v);
        await c.query(
          `INSERT INTO latest AS l (hostname, type, key, ts_ms, payload)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bytea[])
           ON CONFLICT (hostname, type, key) DO UPDATE SET ts_ms = excluded.ts_ms, payload = excluded.payload
           WHERE excluded.ts_ms >= l.ts_ms`,
          [
            rows.map((r) => r.hostname),
            rows.map((r) => pgText(r.type)),
            rows.map((r) => pgText(r.key)),
            rows.map((r) => r.timestampMs),
            rows.map((r) => buf(r.payload)),
          ],
        );
      }
      if (f.rollups.length > 0) {
        const byKey = new Map<string, RollupRow>();
        for (const r of f.rollups) byKey.set(`${r.tier}\u0000${r.seriesId}\u0000${r.windowStart}`, r); // last wins
        const rows = [...byKey.values()].sort(
          (a, b) => (a.tier < b.tier ? -1 : a.tier > b.tier ? 1 : a.seriesId - b.seriesId || a.windowStart - b.windowStart),
        );
        await c.query(
          `INSERT INTO rollups (tier, series_id, window_start, data)
           SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bytea[])
           ON CONFLICT (tier, series_id, window_start) DO UPDATE SET data = excluded.data`,
          [rows.map((r) => r.tier), rows.map((r) => r.seriesId), rows.map((r) => r.windowStart), rows.map((r) => buf(r.data))],
        );
      }
      if (f.flushed.length > 0) {
        // One row per series: the highest watermark, the newest last sample.
        const per = new Map<number, { walId: number; lastT: number | null; lastV: number | null }>();
        for (const m of f.flushed) {
          const hasLast = Number.isFinite(m.lastT);
          const prev = per.get(m.seriesId);
          const next = { walId: Math.max(prev?.walId ?? 0, m.walId), lastT: prev?.lastT ?? null, lastV: prev?.lastV ?? null };
          if (hasLast && (next.lastT === null || m.lastT >= next.lastT)) {
            next.lastT = m.lastT;
            next.lastV = m.lastV;
          }
          per.set(m.seriesId, next);
        }
        const sids = [...per.keys()].sort((a, b) => a - b);
        await c.query(
          `UPDATE series s SET flushed_wal_id = GREATEST(s.flushed_wal_id, t.w),
             last_t = CASE WHEN t.lt IS NOT NULL AND (s.last_t IS NULL OR s.last_t <= t.lt) THEN t.lt ELSE s.last_t END,
             last_v = CASE WHEN t.lt IS NOT NULL AND (s.last_t IS NULL OR s.last_t <= t.lt) THEN t.lv ELSE s.last_v END
           FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::float8[]) AS t(id, w, lt, lv) WHERE s.id = t.id`,
          [sids, sids.map((id) => per.get(id)!.walId), sids.map((id) => per.get(id)!.lastT), sids.map((id) => per.get(id)!.lastV)],
        );
      }
      if (f.deleteWalBelow !== undefined) {
        await c.query("DELETE FROM wal WHERE instance = $1 AND id < $2", [this.instance, f.deleteWalBelow]);
      }
      const meta = Object.entries(f.meta ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
      if (meta.length > 0) {
        await c.query(
          `INSERT INTO meta (instance, key, value) SELECT $1, k, v FROM unnest($2::text[], $3::text[]) AS t(k, v)
           ON CONFLICT (instance, key) DO UPDATE SET value = excluded.value`,
          [this.instance, meta.map(([k]) => k), meta.map(([, v]) => v)],
        );
      }
      await c.query("COMMIT");
      return { chunkIds: chunkIds.map((id) => id!) };
    } catch (err) {
      await c.query("ROLLBACK").catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
  }

  /**
   * Creates the missing day/month partitions. Partitions are DDL, so they are made in their own short transaction
   * under an advisory lock (two servers creating the same partition at once would otherwise collide). A partition
   * whose range already has rows in the DEFAULT partition (late data for a day retention dropped, written while this
   * server still believed it existed) is not created: those rows and later ones stay in DEFAULT, which retention
   * also cleans.
   */
  private async ensurePartitions(specs: PartitionSpec[]): Promise<void> {
    let missing = specs.filter((p) => !this.partitions.has(p.name));
    if (missing.length === 0) return;
    const { rows } = await this.pool.query<{ relname: string }>(
      `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = current_schema() AND c.relname = ANY($1::text[])`,
      [missing.map((p) => p.name)],
    );
    for (const r of rows) this.partitions.add(r.relname);
    missing = missing.filter((p) => !this.partitions.has(p.name));
    if (missing.length === 0) return;
    const c = await this.pool.connect();
    try {
      await c.query("BEGIN");
      await c.query("SELECT pg_advisory_xact_lock($1)", [PARTITION_LOCK]);
      for (const p of missing) {
        await c.query("SAVEPOINT p");
        try {
          await c.query(
            `CREATE TABLE IF NOT EXISTS ${ident(p.name)} PARTITION OF ${ident(p.parent)}
             FOR VALUES FROM (${Math.trunc(p.from)}) TO (${Math.trunc(p.to)})`,
          );
          await c.query("RELEASE SAVEPOINT p");
        } catch (err) {
          if ((err as { code?: unknown }).code !== "23514") throw err; // check_violation: rows in DEFAULT
          await c.query("ROLLBACK TO SAVEPOINT p");
        }
      }
      await c.query("COMMIT");
      for (const p of missing) this.partitions.add(p.name);
    } catch (err) {
      await c.query("ROLLBACK").catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
  }

  async readChunks(seriesIds: number[], fromMs: number, toMs: number): Promise<ChunkRow[]> {
    if (seriesIds.length === 0) return [];
    const { rows } = await this.pool.query<{ id: number; series_id: number; min_t: number; max_t: number; count: number; data: Buffer }>(
      `SELECT id, series_id, min_t, max_t, count, data FROM chunks
       WHERE series_id = ANY($1::bigint[]) AND t_end >= $2 AND max_t >= $2 AND min_t <= $3 ORDER BY series_id, min_t, id`,
      [seriesIds, fromMs, toMs],
    );
    return this.inInputOrder(
      seriesIds,
      rows.map((r) => ({ id: r.id, seriesId: r.series_id, minT: r.min_t, maxT: r.max_t, count: r.count, data: r.data })),
    );
  }

  async readRollups(tier: RollupTier, seriesIds: number[], fromMs: number, toMs: number): Promise<RollupRow[]> {
    if (seriesIds.length === 0) return [];
    const { rows } = await this.pool.query<{ series_id: number; window_start: number; data: Buffer }>(
      `SELECT series_id, window_start, data FROM rollups
       WHERE tier = $1 AND series_id = ANY($2::bigint[]) AND window_start >= $3 AND window_start <= $4
       ORDER BY series_id, window_start`,
      [tier, seriesIds, fromMs, toMs],
    );
    return this.inInputOrder(
      seriesIds,
      rows.map((r) => ({ tier, seriesId: r.series_id, windowStart: r.window_start, data: r.data })),
    );
  }

  /** Rows grouped by series in the order the caller listed the series (as the SQLite store returns them). */
  private inInputOrder<T extends { seriesId: number }>(seriesIds: number[], rows: T[]): T[] {
    const bySeries = new Map<number, T[]>();
    for (const r of rows) {
      let list = bySeries.get(r.seriesId);
      if (!list) bySeries.set(r.seriesId, (list = []));
      list.push(r);
    }
    const out: T[] = [];
    for (const id of new Set(seriesIds)) out.push(...(bySeries.get(id) ?? []));
    return out;
  }

  async applyRetention(
    cutoffs: RetentionCutoffs,
    windowMs: Record<RollupTier, number>,
  ): Promise<{ chunks: number; rollups: number; snapshots: number }> {
    // Whole partitions below the cutoff are dropped; the one straddling it (and DEFAULT) lose their old rows.
    let chunks = await this.dropPartitions("chunks", /^chunks_d(\d+)$/, (m) => (Number(m[1]) + 1) * DAY_MS <= cutoffs.raw);
    // (t_end < max_t + 2 h: the second condition selects the same rows and lets the planner skip newer partitions)
    chunks += (
      await this.pool.query("DELETE FROM chunks WHERE max_t < $1 AND t_end < $2", [cutoffs.raw, cutoffs.raw + CHUNK_WINDOW_MS])
    ).rowCount ?? 0;
    let rollups = 0;
    for (const tier of TIERS) {
      const w = windowMs[tier];
      // A month partition is below the cutoff when even a window starting in its last millisecond ends by then.
      rollups += await this.dropPartitions(
        `rollups_${tier}`,
        new RegExp(`^rollups_${tier}_m(\\d{4})(\\d{2})$`),
        (m) => Date.UTC(Number(m[1]), Number(m[2]), 1) - 1 + w <= cutoffs[tier],
      );
      rollups += (
        await this.pool.query("DELETE FROM rollups WHERE tier = $1 AND window_start <= $2", [tier, cutoffs[tier] - w])
      ).rowCount ?? 0;
    }
    const snapshots = (await this.pool.query("DELETE FROM envelopes WHERE ts_ms < $1", [cutoffs.raw])).rowCount ?? 0;
    return { chunks, rollups, snapshots };
  }

  /** Drops the partitions of `parent` whose name matches and `below` approves; returns the rows they held. */
  private async dropPartitions(parent: string, re: RegExp, below: (m: RegExpExecArray) => boolean): Promise<number> {
    const { rows } = await this.pool.query<{ relname: string }>(
      `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = $1::regclass ORDER BY c.relname`,
      [parent],
    );
    let removed = 0;
    for (const { relname } of rows) {
      const m = re.exec(relname);
      if (!m || !below(m)) continue;
      const c = await this.pool.connect();
      try {
        await c.query("BEGIN");
        const n = (await c.query<{ n: number }>(`SELECT count(*) AS n FROM ${ident(relname)}`)).rows[0]!.n;
        await c.query(`DROP TABLE IF EXISTS ${ident(relname)}`);
        await c.query("COMMIT");
        removed += n;
        this.partitions.delete(relname);
      } catch (err) {
        await c.query("ROLLBACK").catch(() => undefined);
        if ((err as { code?: unknown }).code !== "42P01") throw err; // another server dropped it first
      } finally {
        c.release();
      }
    }
    return removed;
  }

  async sizeBytes(): Promise<number> {
    const { rows } = await this.pool.query<{ n: number }>(
      `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint AS n
       FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
       WHERE ns.nspname = current_schema() AND c.relkind = 'r'
         AND (c.relname = ANY($1::text[]) OR c.relname LIKE 'chunks\\_%' OR c.relname LIKE 'rollups\\_%')`,
      [STORE_TABLES],
    );
    return rows[0]!.n;
  }

  // ----------------------------------------------------------------------------------------------------- agents

  async upsertAgent(host: HostInfo, collectors: string[], atMs: number): Promise<void> {
    await this.pool.query(
      `INSERT INTO agents AS a (hostname, host_info, collectors, registered_ms, last_seen_ms) VALUES ($1, $2, $3, $4, $4)
       ON CONFLICT (hostname) DO UPDATE SET host_info = excluded.host_info, collectors = excluded.collectors,
         last_seen_ms = GREATEST(a.last_seen_ms, excluded.last_seen_ms)`,
      [host.hostname, buf(toBinary(HostInfoSchema, host)), JSON.stringify(collectors), atMs],
    );
  }

  async touchAgent(hostname: string, atMs: number, collectorStatus?: CollectorStatus[]): Promise<void> {
    const status = collectorStatus && collectorStatus.length > 0 ? statusToJson(collectorStatus) : null;
    await this.pool.query(
      `UPDATE agents SET last_seen_ms = GREATEST(last_seen_ms, $2), collector_status = COALESCE($3, collector_status)
       WHERE hostname = $1`,
      [hostname, atMs, status],
    );
  }

  async touchAgents(contacts: AgentContact[]): Promise<void> {
    if (contacts.length === 0) return;
    // One row per host (the newest contact, the last status given), sorted: two servers lock rows in one order.
    const per = new Map<string, { at: number; status: string | null }>();
    for (const c of contacts) {
      const prev = per.get(c.hostname);
      const status = c.collectorStatus && c.collectorStatus.length > 0 ? statusToJson(c.collectorStatus) : null;
      per.set(c.hostname, { at: Math.max(prev?.at ?? -Infinity, c.atMs), status: status ?? prev?.status ?? null });
    }
    const hosts = [...per.keys()].sort();
    await this.pool.query(
      `UPDATE agents a SET last_seen_ms = GREATEST(a.last_seen_ms, t.r), collector_status = COALESCE(t.s, a.collector_status)
       FROM unnest($1::text[], $2::bigint[], $3::text[]) AS t(h, r, s) WHERE a.hostname = t.h`,
      [hosts, hosts.map((h) => per.get(h)!.at), hosts.map((h) => per.get(h)!.status)],
    );
  }

  async recordAgentStatuses(changes: readonly AgentStatusChange[]): Promise<boolean[]> {
    if (changes.length === 0) return [];
    const c = await this.pool.connect();
    try {
      await c.query("BEGIN");
      // Changes of one host are serialized across servers: each sees the other's committed change. The locks are
      // taken in one order (by key) so that two servers locking several hosts cannot deadlock.
      await c.query(
        `SELECT pg_advisory_xact_lock($1, k) FROM (SELECT DISTINCT hashtext(h) AS k FROM unnest($2::text[]) h) t ORDER BY k`,
        [STATUS_LOCK_CLASS, [...new Set(changes.map((ch) => ch.hostname))]],
      );
      const stored: boolean[] = [];
      for (const change of changes) {
        const { rowCount } = await c.query(
          `INSERT INTO agent_status (hostname, at_ms, status)
           SELECT $1::text, $2::bigint, $3::text WHERE NOT EXISTS (
             SELECT 1 FROM (SELECT status, at_ms FROM agent_status WHERE hostname = $1::text ORDER BY at_ms DESC, id DESC LIMIT 1) l
             WHERE l.status = $3::text OR l.at_ms > $2::bigint
           )`,
          [change.hostname, change.atMs, change.status],
        );
        stored.push(rowCount === 1);
      }
      await c.query("COMMIT");
      return stored;
    } catch (err) {
      await c.query("ROLLBACK").catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
  }

  async agentTimeline(q: { hostname: string; fromMs: number; toMs: number; limit: number }): Promise<{
    initial?: AgentStatusChange;
    changes: AgentStatusChange[];
  }> {
    const [initial, changes] = await Promise.all([
      this.pool.query<StatusRow>(
        "SELECT hostname, status, at_ms FROM agent_status WHERE hostname = $1 AND at_ms < $2 ORDER BY at_ms DESC, id DESC LIMIT 1",
        [q.hostname, q.fromMs],
      ),
      this.pool.query<StatusRow>(
        `SELECT hostname, status, at_ms FROM agent_status WHERE hostname = $1 AND at_ms >= $2 AND at_ms <= $3
         ORDER BY at_ms, id LIMIT $4`,
        [q.hostname, q.fromMs, q.toMs, q.limit],
      ),
    ]);
    const first = initial.rows[0];
    return { ...(first ? { initial: toStatusChange(first) } : {}), changes: changes.rows.map(toStatusChange) };
  }

  async latestAgentStatuses(): Promise<AgentStatusChange[]> {
    const { rows } = await this.pool.query<StatusRow>(
      "SELECT DISTINCT ON (hostname) hostname, status, at_ms FROM agent_status ORDER BY hostname, at_ms DESC, id DESC",
    );
    return rows.map(toStatusChange);
  }

  async removeAgent(hostname: string, opts: { atMs: number; reason: string; deleteData: boolean }): Promise<AgentRemoval> {
    const c = await this.pool.connect();
    try {
      await c.query("BEGIN");
      // Not interleaved with an enqueue for this host on any server (enqueueCommand takes the same lock).
      await c.query("SELECT pg_advisory_xact_lock($1, hashtext($2))", [COMMAND_LOCK_CLASS, hostname]);
      const open = (
        await c.query<{ id: string; command: Buffer }>(
          "SELECT id, command FROM commands WHERE hostname = $1 AND state IN ($2, $3) ORDER BY created_ms, seq FOR UPDATE",
          [hostname, CommandState.QUEUED, CommandState.DELIVERED],
        )
      ).rows;
      if (open.length > 0) {
        await c.query(
          `UPDATE commands c SET state = $1, finished_ms = $2, outcome = t.o
           FROM unnest($3::text[], $4::bytea[]) AS t(id, o) WHERE c.id = t.id`,
          [CommandState.EXPIRED, opts.atMs, open.map((r) => r.id), open.map((r) => removedOutcome(r.id, r.command, opts.reason))],
        );
      }
      const agent = ((await c.query("DELETE FROM agents WHERE hostname = $1", [hostname])).rowCount ?? 0) === 1;
      const access = ((await c.query("DELETE FROM agent_access WHERE hostname = $1", [hostname])).rowCount ?? 0) === 1;
      const out: AgentRemoval = { agent, access, expiredCommands: open.map((r) => r.id), series: 0, snapshots: 0, timeline: 0 };
      if (opts.deleteData) {
        const ids = (await c.query<{ id: number }>("SELECT id FROM series WHERE hostname = $1", [hostname])).rows.map((r) => r.id);
        if (ids.length > 0) {
          await c.query("DELETE FROM chunks WHERE series_id = ANY($1::bigint[])", [ids]);
          await c.query("DELETE FROM rollups WHERE tier IN ('1m', '1h') AND series_id = ANY($1::bigint[])", [ids]);
        }
        out.series = (await c.query("DELETE FROM series WHERE hostname = $1", [hostname])).rowCount ?? 0;
        out.snapshots = (await c.query("DELETE FROM envelopes WHERE hostname = $1", [hostname])).rowCount ?? 0;
        for (const table of ["latest", "host_counters", "metric_batches", "wal"]) {
          await c.query(`DELETE FROM ${ident(table)} WHERE hostname = $1`, [hostname]);
        }
        out.timeline = (await c.query("DELETE FROM agent_status WHERE hostname = $1", [hostname])).rowCount ?? 0;
      }
      // Delivered with the commit: other servers end the host's streams and wake the commands' watchers.
      if (access) await c.query("SELECT pg_notify('agent_access_changed', $1)", [this.tag(hostname)]);
      if (opts.deleteData) await c.query("SELECT pg_notify('host_data_deleted', $1)", [this.tag(hostname)]);
      for (const id of out.expiredCommands) await c.query("SELECT pg_notify('command_updated', $1)", [this.tag(id)]);
      await c.query("COMMIT");
      return out;
    } catch (err) {
      await c.query("ROLLBACK").catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
  }

  async getAgent(hostname: string): Promise<AgentRecord | undefined> {
    const { rows } = await this.pool.query<AgentRow>("SELECT * FROM agents WHERE hostname = $1", [hostname]);
    return rows[0] && toAgentRecord(rows[0]);
  }

  async listAgentContacts(): Promise<Array<{ hostname: string; lastSeenMs: number }>> {
    const { rows } = await this.pool.query<{ hostname: string; last_seen_ms: number }>(
      "SELECT hostname, last_seen_ms FROM agents ORDER BY hostname",
    );
    return rows.map((r) => ({ hostname: r.hostname, lastSeenMs: Number(r.last_seen_ms) }));
  }

  async listAgents(): Promise<AgentRecord[]> {
    return (await this.pool.query<AgentRow>("SELECT * FROM agents ORDER BY hostname")).rows.map(toAgentRecord);
  }

  // --------------------------------------------------------------------------------------------------- commands

  /** NOTIFY payload: this store's nonce, then the key. */
  private tag(key: string): string {
    return `${this.nonce}|${key}`;
  }

  async enqueueCommand(
    rec: { command: Command; hostname: string; createdAtMs: number; requestedBy: string },
    maxQueued: number,
  ): Promise<void> {
    // One call (migration 6): the per-host advisory lock (one enqueue per host at a time across every server: the
    // count and the insert must not interleave), the queue-size check, the insert and the notification, delivered
    // to listeners when (and only if) the statement's transaction commits.
    const { rows } = await this.pool.query<{ ok: boolean }>(
      "SELECT spectra_enqueue_command($1, $2, $3, $4, $5, $6, $7, $8, $9) AS ok",
      [
        COMMAND_LOCK_CLASS,
        rec.command.id,
        rec.hostname,
        CommandState.QUEUED,
        buf(toBinary(CommandSchema, rec.command)),
        rec.createdAtMs,
        rec.requestedBy,
        maxQueued,
        this.tag(rec.hostname),
      ],
    );
    if (rows[0]?.ok !== true) throw new QueueFullError(rec.hostname, maxQueued);
  }

  claimNextCommand(hostname: string, atMs: number): Promise<CommandRecord | undefined> {
    // Claims of one host are serialized inside this process (so they follow queue order); across processes
    // SKIP LOCKED makes each claim take a different row, and the state check makes a row claimable once.
    return this.serial(hostname, async () => {
      const { rows } = await this.pool.query<CommandRow>(
        `WITH next AS (
           SELECT id FROM commands WHERE hostname = $1 AND state = $2
           ORDER BY created_ms, seq LIMIT 1 FOR UPDATE SKIP LOCKED
         ), claimed AS (
           UPDATE commands c SET state = $3, delivered_ms = $4 FROM next
           WHERE c.id = next.id AND c.state = $2 RETURNING c.*
         )
         SELECT claimed.*, pg_notify('command_updated', $5 || claimed.id) FROM claimed`,
        [hostname, CommandState.QUEUED, CommandState.DELIVERED, atMs, `${this.nonce}|`],
      );
      return rows[0] && toCommandRecord(rows[0]);
    });
  }

  private serial<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.claimChains.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.claimChains.set(key, tail);
    void tail.then(() => {
      if (this.claimChains.get(key) === tail) this.claimChains.delete(key);
    });
    return run;
  }

  async requeueCommand(id: string, hostname: string): Promise<boolean> {
    const { rows } = await this.pool.query(
      `WITH r AS (
         UPDATE commands SET state = $1, delivered_ms = NULL WHERE id = $2 AND hostname = $3 AND state = $4 RETURNING id, hostname
       )
       SELECT pg_notify('command_queued', $5 || r.hostname), pg_notify('command_updated', $5 || r.id) FROM r`,
      [CommandState.QUEUED, id, hostname, CommandState.DELIVERED, `${this.nonce}|`],
    );
    return rows.length === 1;
  }

  async finishCommand(
    id: string,
    hostname: string,
    state: CommandState,
    outcome: CommandOutcome | undefined,
    atMs: number,
  ): Promise<CommandRecord | undefined> {
    const c = await this.pool.connect();
    try {
      await c.query("BEGIN");
      const row = (await c.query<CommandRow>("SELECT * FROM commands WHERE id = $1 FOR UPDATE", [id])).rows[0];
      let result: CommandRecord | undefined;
      if (!row || row.hostname !== hostname) {
        result = undefined;
      } else if (row.state === CommandState.COMPLETED || row.state === CommandState.FAILED) {
        // A finished command keeps its first result: an agent retrying a result must not overwrite it.
        result = toCommandRecord(row);
      } else {
        const bytes = outcome ? buf(toBinary(CommandOutcomeSchema, outcome)) : null;
        await c.query("UPDATE commands SET state = $1, outcome = $2, finished_ms = $3 WHERE id = $4", [state, bytes, atMs, id]);
        await c.query("SELECT pg_notify('command_updated', $1)", [this.tag(id)]);
        result = toCommandRecord({ ...row, state, outcome: bytes, finished_ms: atMs });
      }
      await c.query("COMMIT");
      return result;
    } catch (err) {
      await c.query("ROLLBACK").catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
  }

  async getCommand(id: string): Promise<CommandRecord | undefined> {
    const { rows } = await this.pool.query<CommandRow>("SELECT * FROM commands WHERE id = $1", [id]);
    return rows[0] && toCommandRecord(rows[0]);
  }

  async listCommands(q: { hostname?: string; limit: number }): Promise<CommandRecord[]> {
    const { rows } = await this.pool.query<CommandRow>(
      "SELECT * FROM commands WHERE $1::text IS NULL OR hostname = $1 ORDER BY created_ms DESC, seq DESC LIMIT $2",
      [q.hostname ?? null, q.limit],
    );
    return rows.map(toCommandRecord);
  }

  async countPendingCommands(hostname: string): Promise<number> {
    const { rows } = await this.pool.query<{ n: number }>(
      "SELECT count(*) AS n FROM commands WHERE hostname = $1 AND state IN ($2, $3)",
      [hostname, CommandState.QUEUED, CommandState.DELIVERED],
    );
    return rows[0]!.n;
  }

  async expireCommands(beforeMs: number, atMs: number): Promise<string[]> {
    const { rows } = await this.pool.query<{ id: string }>(
      `WITH e AS (
         UPDATE commands SET state = $1, finished_ms = $2 WHERE state IN ($3, $4) AND created_ms < $5
         RETURNING id, created_ms, seq
       )
       SELECT id, pg_notify('command_updated', $6 || id) FROM e ORDER BY created_ms, seq`,
      [CommandState.EXPIRED, atMs, CommandState.QUEUED, CommandState.DELIVERED, beforeMs, `${this.nonce}|`],
    );
    return rows.map((r) => r.id);
  }

  // --------------------------------------------------------------------------------------------- access control

  async createAdminToken(rec: AdminTokenRecord): Promise<boolean> {
    const r = await this.pool.query(
      `INSERT INTO admin_tokens (id, name, role, secret_hash, created_ms, created_by, last_used_ms, revoked_ms)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
      [rec.id, rec.name, rec.role, rec.secretHash, rec.createdAtMs, rec.createdBy, rec.lastUsedMs ?? null, rec.revokedAtMs ?? null],
    );
    return r.rowCount === 1;
  }

  async getAdminToken(id: string): Promise<AdminTokenRecord | undefined> {
    const { rows } = await this.pool.query<AdminTokenRow>("SELECT * FROM admin_tokens WHERE id = $1", [id]);
    return rows[0] && toAdminTokenRecord(rows[0]);
  }

  async listAdminTokens(): Promise<AdminTokenRecord[]> {
    return (await this.pool.query<AdminTokenRow>("SELECT * FROM admin_tokens ORDER BY name")).rows.map(toAdminTokenRecord);
  }

  async countAdminTokens(): Promise<number> {
    return (await this.pool.query<{ n: number }>("SELECT count(*) AS n FROM admin_tokens")).rows[0]!.n;
  }

  async revokeAdminToken(nameOrId: string, atMs: number): Promise<AdminTokenRecord | undefined> {
    // The id wins over a name that happens to equal another token's id.
    const { rows } = await this.pool.query<AdminTokenRow>(
      `WITH target AS (
         SELECT id FROM admin_tokens WHERE id = $1 OR (name = $1 AND NOT EXISTS (SELECT 1 FROM admin_tokens WHERE id = $1))
       ), revoked AS (
         UPDATE admin_tokens a SET revoked_ms = COALESCE(a.revoked_ms, $2) FROM target WHERE a.id = target.id RETURNING a.*
       )
       SELECT revoked.*, pg_notify('admin_token_revoked', $3 || revoked.id) AS notified FROM revoked`,
      [nameOrId, atMs, this.tag("")],
    );
    return rows[0] && toAdminTokenRecord(rows[0]);
  }

  async touchAdminToken(id: string, atMs: number): Promise<void> {
    await this.pool.query(
      "UPDATE admin_tokens SET last_used_ms = $2 WHERE id = $1 AND (last_used_ms IS NULL OR last_used_ms < $2)",
      [id, atMs],
    );
  }

  async createEnrollmentToken(rec: EnrollmentTokenRecord): Promise<void> {
    await this.pool.query(
      `INSERT INTO enrollment_tokens (id, name, secret_hash, single_use, auto_approve, created_ms, expires_ms, labels, uses,
         revoked_ms, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
      [
        rec.id,
        rec.name,
        rec.secretHash,
        rec.singleUse,
        rec.autoApprove,
        rec.createdAtMs,
        rec.expiresAtMs ?? null,
        JSON.stringify(rec.labels),
        rec.uses,
        rec.revokedAtMs ?? null,
        rec.createdBy,
      ],
    );
  }

  async getEnrollmentToken(id: string): Promise<EnrollmentTokenRecord | undefined> {
    const { rows } = await this.pool.query<EnrollmentTokenRow>("SELECT * FROM enrollment_tokens WHERE id = $1", [id]);
    return rows[0] && toEnrollmentTokenRecord(rows[0]);
  }

  async listEnrollmentTokens(): Promise<EnrollmentTokenRecord[]> {
    const { rows } = await this.pool.query<EnrollmentTokenRow>("SELECT * FROM enrollment_tokens ORDER BY created_ms DESC, id");
    return rows.map(toEnrollmentTokenRecord);
  }

  async revokeEnrollmentToken(id: string, atMs: number): Promise<boolean> {
    const r = await this.pool.query("UPDATE enrollment_tokens SET revoked_ms = COALESCE(revoked_ms, $2) WHERE id = $1", [id, atMs]);
    return r.rowCount === 1;
  }

  async getAgentAccess(hostname: string): Promise<AgentAccessRecord | undefined> {
    const { rows } = await this.pool.query<AgentAccessRow>("SELECT * FROM agent_access WHERE hostname = $1", [hostname]);
    return rows[0] && toAgentAccessRecord(rows[0]);
  }

  async findAgentAccessByKeyId(keyId: string): Promise<AgentAccessRecord | undefined> {
    const { rows } = await this.pool.query<AgentAccessRow>(
      "SELECT * FROM agent_access WHERE key_id = $1 UNION ALL SELECT * FROM agent_access WHERE next_key_id = $1 LIMIT 1",
      [keyId],
    );
    return rows[0] && toAgentAccessRecord(rows[0]);
  }

  async findAgentAccessByEnrollmentId(enrollmentId: string): Promise<AgentAccessRecord | undefined> {
    const { rows } = await this.pool.query<AgentAccessRow>("SELECT * FROM agent_access WHERE enrollment_id = $1", [enrollmentId]);
    return rows[0] && toAgentAccessRecord(rows[0]);
  }

  async listAgentAccess(): Promise<AgentAccessRecord[]> {
    return (await this.pool.query<AgentAccessRow>("SELECT * FROM agent_access ORDER BY hostname")).rows.map(toAgentAccessRecord);
  }

  async putAgentAccess(
    rec: AgentAccessRecord,
    expectedVersion: number | undefined,
    consumeToken?: { id: string; atMs: number },
  ): Promise<PutAgentAccessResult> {
    const version = (expectedVersion ?? 0) + 1;
    const values = agentAccessValues(rec, version, (b) => b);
    const c = await this.pool.connect();
    try {
      await c.query("BEGIN");
      let failed: "conflict" | "token-unusable" | undefined;
      if (consumeToken) {
        // Under READ COMMITTED a concurrent UPDATE of the same row waits for the first one's commit and then
        // re-checks the WHERE clause against the committed row: the second consumer of a single-use token finds
        // uses = 1 and updates nothing.
        const used = await c.query(
          `UPDATE enrollment_tokens SET uses = uses + 1
           WHERE id = $1 AND revoked_ms IS NULL AND (expires_ms IS NULL OR expires_ms > $2) AND (NOT single_use OR uses = 0)`,
          [consumeToken.id, consumeToken.atMs],
        );
        if (used.rowCount !== 1) failed = "token-unusable";
      }
      if (!failed) {
        const r =
          expectedVersion === undefined
            ? await c.query(
                `INSERT INTO agent_access (${AGENT_ACCESS_COLUMNS.join(", ")})
                 VALUES (${AGENT_ACCESS_COLUMNS.map((_, i) => `$${i + 1}`).join(", ")}) ON CONFLICT (hostname) DO NOTHING`,
                values,
              )
            : await c.query(
                `UPDATE agent_access SET ${AGENT_ACCESS_COLUMNS.slice(1)
                  .map((col, i) => `${col} = $${i + 2}`)
                  .join(", ")} WHERE hostname = $1 AND version = $${values.length + 1}`,
                [...values, expectedVersion],
              );
        if (r.rowCount !== 1) failed = "conflict";
      }
      if (failed) {
        await c.query("ROLLBACK");
        return { ok: false, reason: failed };
      }
      await c.query("SELECT pg_notify('agent_access_changed', $1)", [this.tag(rec.hostname)]);
      await c.query("COMMIT");
      return { ok: true, version };
    } catch (err) {
      await c.query("ROLLBACK").catch(() => undefined);
      // Two first enrollments of one new host: the loser of the primary key race is a conflict, not an error.
      if ((err as { code?: unknown }).code === "23505") return { ok: false, reason: "conflict" };
      throw err;
    } finally {
      c.release();
    }
  }

  async deleteAgentAccess(hostname: string): Promise<boolean> {
    const { rows } = await this.pool.query(
      `WITH d AS (DELETE FROM agent_access WHERE hostname = $1 RETURNING hostname)
       SELECT pg_notify('agent_access_changed', $2 || d.hostname) FROM d`,
      [hostname, `${this.nonce}|`],
    );
    return rows.length === 1;
  }

  // ------------------------------------------------------------------------------------------- LISTEN / NOTIFY

  subscribe(channel: StoreChannel, cb: (key: string | null) => void): () => void {
    let set = this.subscribers.get(channel);
    if (!set) this.subscribers.set(channel, (set = new Set()));
    set.add(cb);
    return () => {
      set.delete(cb);
    };
  }

  private dispatch(channel: StoreChannel, key: string | null): void {
    for (const cb of [...(this.subscribers.get(channel) ?? [])]) {
      try {
        cb(key);
      } catch (err) {
        this.logger?.error({ err, channel }, "notification handler failed");
      }
    }
  }

  /** Opens the listening connection and LISTENs on every channel. */
  private async listen(): Promise<void> {
    // LISTEN and the liveness query are instant: a reply that takes 5 s means the connection is dead.
    const c = new pg.Client({ ...clientConfig(this.url, "spectra-server listen"), query_timeout: 5_000 });
    const lost = (why: string) => {
      if (this.listener !== c) return;
      this.listener = undefined;
      void c.end().catch(() => undefined);
      if (!this.closed) {
        this.logger?.warn({ reason: why }, "postgres: notification connection lost, reconnecting");
        this.scheduleListen();
      }
    };
    c.on("error", (err) => lost(err.message));
    c.on("end", () => lost("connection ended"));
    c.on("notification", (n) => {
      const channel = n.channel as StoreChannel;
      if (!CHANNELS.includes(channel) || n.payload === undefined) return;
      const bar = n.payload.indexOf("|");
      if (bar < 0 || n.payload.slice(0, bar) === this.nonce) return;
      this.dispatch(channel, n.payload.slice(bar + 1));
    });
    try {
      await c.connect();
      for (const ch of CHANNELS) await c.query(`LISTEN ${ident(ch)}`);
    } catch (err) {
      c.removeAllListeners("end");
      c.on("error", () => undefined);
      await c.end().catch(() => undefined);
      throw err;
    }
    if (this.closed) {
      await c.end().catch(() => undefined);
      return;
    }
    this.listener = c;
  }

  private scheduleListen(): void {
    if (this.closed || this.listenTimer) return;
    const base = Math.min(LISTEN_BACKOFF_MAX_MS, LISTEN_BACKOFF_MIN_MS * 2 ** this.listenAttempt);
    const delay = base / 2 + Math.random() * (base / 2);
    this.listenAttempt++;
    this.listenTimer = setTimeout(() => {
      this.listenTimer = undefined;
      this.listen().then(
        () => {
          this.listenAttempt = 0;
          this.logger?.info("postgres: notification connection restored");
          // Whatever was announced while nobody listened is lost: every waiter looks again.
          for (const ch of CHANNELS) this.dispatch(ch, null);
        },
        () => this.scheduleListen(),
      );
    }, delay);
    this.listenTimer.unref();
  }

  /** A dead TCP connection may stay silent: a periodic query notices it. */
  private pingListener(): void {
    const c = this.listener;
    if (!c) return;
    c.query("SELECT 1").catch(() => {
      if (this.listener !== c) return;
      this.listener = undefined;
      void c.end().catch(() => undefined);
      this.scheduleListen();
    });
  }

  // ------------------------------------------------------------------------------------------------------ close

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.settled();
    if (this.pingTimer) clearInterval(this.pingTimer);
    if (this.listenTimer) clearTimeout(this.listenTimer);
    this.subscribers.clear();
    const listener = this.listener;
    this.listener = undefined;
    const writer = this.writer;
    this.writer = undefined;
    await Promise.all([listener?.end().catch(() => undefined), writer?.end().catch(() => undefined)]);
    await this.pool.end();
  }
}

