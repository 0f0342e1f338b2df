import type { HostInfo } from "../../gen/spectra/v1/agent_service_pb.js";
import type { Command, CommandOutcome, CommandState } from "../../gen/spectra/v1/diagnostics_pb.js";
export { QueueFullError } from "../errors.js";
import type { CollectorStatus, MetricEnvelope } from "../../gen/spectra/v1/metrics_pb.js";

/** A batch ready to store: validated envelopes, hostname filled in. */
export interface BatchWrite {
  hostname: string;
  /** Replay key; when `sessionId` is empty (legacy REST) the batch is stored without de-duplication. */
  sessionId: string;
  sequence: bigint;
  envelopes: MetricEnvelope[];
  collectorStatus: CollectorStatus[];
  receivedAtMs: number;
}

/** Outcome of {@link Store.writeBatch}. */
export interface BatchWriteResult {
  /** True when (hostname, sessionId, sequence) was already stored: nothing was written. */
  duplicate: boolean;
  stored: number;
  /** Id of the write-ahead-log row that holds the batch until its samples are in chunks (0 when duplicate). */
  walId: number;
}

/** One row of the ingest write-ahead log: a committed batch whose samples may not be in chunks yet. */
export interface WalRow {
  id: number;
  hostname: string;
  /** A MetricBatch (binary protobuf) holding the batch's envelopes, hostname and types filled in. */
  payload: Uint8Array;
}

/** Identity of one series: host, metric name and canonical labels (see server/tsdb/series.ts). */
export interface SeriesIdentity {
  hostname: string;
  metric: string;
  /** Canonical label text, e.g. `mountpoint="/home"`; "" for none. */
  labels: string;
}

/** A stored series. */
export interface SeriesRow extends SeriesIdentity {
  id: number;
  /** Highest WAL id whose samples of this series are in chunks (replay skips rows at or below it). */
  flushedWalId: number;
  /** Newest sample flushed (NaN / NaN when none yet): latest values without reading chunks. */
  lastT: number;
  lastV: number;
}

/** A compressed chunk of raw samples of one series (server/tsdb/codec/chunk.ts format). */
export interface ChunkRow {
  /** Row id; absent on a chunk not stored yet (commitFlush inserts it and returns its id). */
  id?: number;
  seriesId: number;
  minT: number;
  maxT: number;
  count: number;
  data: Uint8Array;
}

/** Rollup tiers; a window row holds the buckets of one series inside [windowStart, windowStart + window). */
export type RollupTier = "1m" | "1h";

/** A compressed window of rollup buckets of one series (server/tsdb/codec/rollup-chunk.ts format). */
export interface RollupRow {
  tier: RollupTier;
  seriesId: number;
  windowStart: number;
  data: Uint8Array;
}

/** Everything one flush of the in-memory head writes, committed in one transaction. */
export interface FlushWrite {
  /** Chunks without id are inserted; with id they replace that row (an open chunk grows between flushes). */
  chunks: ChunkRow[];
  /** Inserted, or replacing the row with the same (tier, seriesId, windowStart). */
  rollups: RollupRow[];
  /** New flushed WAL watermark per series. */
  flushed: Array<{ seriesId: number; walId: number; lastT: number; lastV: number }>;
  /** Deletes this instance's WAL rows with id < this value. */
  deleteWalBelow?: number;
  /** Latest envelopes to store; a row never replaces a newer one of the same (host, type, key). */
  latest?: LatestRow[];
  /** Small engine state (e.g. the rollup horizon) stored with the flush; see getMeta. */
  meta?: Record<string, string>;
}

/** The newest envelope of one (host, type, key), as written by a flush. */
export interface LatestRow {
  hostname: string;
  type: string;
  key: string;
  timestampMs: number;
  /** The MetricEnvelope, binary. */
  payload: Uint8Array;
}

/** Oldest timestamp kept per tier; older data is removed. */
export interface RetentionCutoffs {
  raw: number;
  "1m": number;
  "1h": number;
}

/** One stored envelope as read back. */
export interface StoredEnvelope {
  hostname: string;
  type: string;
  /** Series key inside a type: mountpoint, device, interface, sensor; "" for host-wide types. */
  key: string;
  timestampMs: number;
  envelope: MetricEnvelope;
}

/** A known agent. */
export interface AgentRecord {
  host: HostInfo;
  collectors: string[];
  registeredAtMs: number;
  lastSeenMs: number;
  collectorStatus: CollectorStatus[];
}

/** A command as stored. */
export interface CommandRecord {
  command: Command;
  hostname: string;
  state: CommandState;
  createdAtMs: number;
  /** Who triggered it ("connect", "legacy-rest", later the admin token's name). */
  requestedBy: string;
  deliveredAtMs?: number;
  finishedAtMs?: number;
  outcome?: CommandOutcome;
}

/**
 * Channels of cross-process change notifications (see {@link Store.subscribe}): "command_queued" carries the
 * hostname whose queue got a command (new, or returned by requeue); "command_updated" the id of a command whose state
 * changed (delivered, returned, finished, expired).
 */
export type StoreChannel = "command_queued" | "command_updated";

/**
 * The one storage interface. Every backend passes the same contract suite (store-contract.ts).
 * A promise that resolves means the write is committed (durable).
 */
export interface Store {
  /**
   * Stores a batch atomically, de-duplicated by (hostname, sessionId, sequence) when sessionId is set: the dedup key,
   * one WAL row (the envelopes as a MetricBatch; its samples go to chunks when the head flushes), the snapshot
   * envelopes (see listEnvelopes) and the host's received-envelope count. (The latest envelope per (type, key) is
   * written by commitFlush: TsdbEngine.latest serves newer ones from memory.)
   * Resolved writes are durable, and resolve in call order with increasing WAL ids.
   */
  writeBatch(batch: BatchWrite): Promise<BatchWriteResult>;
  /**
   * Snapshot envelopes (payloads with the `snapshot` option: process and service lists, containers, …) of a host,
   * oldest first, optionally of one type and time range, at most `limit`. Numeric payloads live in series only.
   */
  listEnvelopes(q: { hostname: string; type?: string; sinceMs?: number; untilMs?: number; limit: number }): Promise<StoredEnvelope[]>;
  /** The latest envelope per (type, key) of a host, as of the last flush (see TsdbEngine.latest). */
  latest(hostname: string): Promise<StoredEnvelope[]>;
  /** Envelopes received (and stored) from a host, or from all hosts. */
  countEnvelopes(hostname?: string): Promise<number>;

  /** WAL rows of this instance with id > afterId, oldest first, at most `limit` (replay after a restart). */
  readWal(afterId: number, limit: number): Promise<WalRow[]>;
  /** Returns the ids of the given series, creating the missing ones (same order as the input). */
  ensureSeries(series: SeriesIdentity[]): Promise<number[]>;
  /** Series of a host and/or metric (all when both are absent), ordered by id. */
  listSeries(q: { hostname?: string; metric?: string }): Promise<SeriesRow[]>;
  /** A value stored by commitFlush's `meta`, or undefined. */
  getMeta(key: string): Promise<string | undefined>;
  /** Commits one flush atomically; returns the row ids of `f.chunks`, in order. */
  commitFlush(f: FlushWrite): Promise<{ chunkIds: number[] }>;
  /** Chunks of the given series overlapping [fromMs, toMs], ordered by series then minT. */
  readChunks(seriesIds: number[], fromMs: number, toMs: number): Promise<ChunkRow[]>;
  /** Rollup windows of the given series whose window start lies in [fromMs, toMs], ordered by series then start. */
  readRollups(tier: RollupTier, seriesIds: number[], fromMs: number, toMs: number): Promise<RollupRow[]>;
  /** Removes chunks with maxT < cutoffs.raw and rollup windows ending before their tier's cutoff; snapshots like raw. */
  applyRetention(cutoffs: RetentionCutoffs, windowMs: Record<RollupTier, number>): Promise<{ chunks: number; rollups: number; snapshots: number }>;
  /** Bytes the store occupies (database files / relation sizes). */
  sizeBytes(): Promise<number>;

  /** Inserts or updates an agent's host info and collectors; keeps registeredAt of a known agent. */
  upsertAgent(host: HostInfo, collectors: string[], atMs: number): Promise<void>;
  /** Records contact (and the collector status when given); no-op for unknown agents. */
  touchAgent(hostname: string, atMs: number, collectorStatus?: CollectorStatus[]): Promise<void>;
  getAgent(hostname: string): Promise<AgentRecord | undefined>;
  listAgents(): Promise<AgentRecord[]>;

  /** Queues a command unless the host already has `maxQueued` queued commands (then QueueFullError). */
  enqueueCommand(
    rec: { command: Command; hostname: string; createdAtMs: number; requestedBy: string },
    maxQueued: number,
  ): Promise<void>;
  /** Commands newest first, of one host or all. */
  listCommands(q: { hostname?: string; limit: number }): Promise<CommandRecord[]>;
  /** Atomically moves the host's oldest queued command to delivered and returns it. */
  claimNextCommand(hostname: string, atMs: number): Promise<CommandRecord | undefined>;
  /** Puts a delivered command back at its place in the queue (its poller went away before it was sent). */
  requeueCommand(id: string, hostname: string): Promise<boolean>;
  /** Stores the outcome and the final state; returns undefined when the command is unknown for this host. */
  finishCommand(id: string, hostname: string, state: CommandState, outcome: CommandOutcome | undefined, atMs: number): Promise<CommandRecord | undefined>;
  getCommand(id: string): Promise<CommandRecord | undefined>;
  /** Commands queued or delivered (not finished) of a host. */
  countPendingCommands(hostname: string): Promise<number>;
  /** Marks queued/delivered commands created before `beforeMs` expired; returns their ids. */
  expireCommands(beforeMs: number, atMs: number): Promise<string[]>;

  /**
   * Optional, for backends several server processes can share (PostgreSQL LISTEN/NOTIFY): calls `cb` for changes
   * made through another Store instance on the same database; this instance's own changes are not repeated. `key`
   * null means notifications may have been missed (the listening connection was re-established): treat every key
   * as changed. Returns the function that unsubscribes.
   */
  subscribe?(channel: StoreChannel, cb: (key: string | null) => void): () => void;

  close(): Promise<void>;
}
