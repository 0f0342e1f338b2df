import type { HostInfo } from "../../gen/spectra/v1/agent_service_pb.js";
import type { Command, CommandOutcome, CommandState } from "../../gen/spectra/v1/diagnostics_pb.js";
export { QueueFullError } from "../errors.js";
import type { CollectorStatus, MetricEnvelope } from "../../gen/spectra/v1/metrics_pb.js";
import type { RoleName } from "../auth/credentials.js";

/** A batch ready to store: validated envelopes, hostname filled in. */
export interface BatchWrite {
  hostname: string;
  /** Replay key; when `sessionId` is empty (legacy REST) the batch is stored without de-duplication. */
  sessionId: string;
  sequence: bigint;
  envelopes: MetricEnvelope[];
  /** Not written by writeBatch: the presence tracker keeps it with the agent's last contact (see touchAgents). */
  collectorStatus: CollectorStatus[];
  receivedAtMs: number;
  /**
   * Envelope i's binary encoding as it arrived, when it is exactly what `envelopes[i]` encodes to (an agent's
   * binary upload that ingest did not change): stored as is instead of being encoded again.
   */
  encoded?: readonly (Uint8Array | undefined)[];
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

/** An agent's derived status (server/agents/presence.ts): from its last contact and its report interval. */
export type AgentStatusName = "online" | "stale" | "offline";

/** One entry of an agent's status timeline: from `atMs` on, the agent had `status`. */
export interface AgentStatusChange {
  hostname: string;
  status: AgentStatusName;
  atMs: number;
}

/** An agent's last contact as the presence tracker persists it (and its collector status, when it reported one). */
export interface AgentContact {
  hostname: string;
  atMs: number;
  /** Replaces the stored collector status when given (non-empty). */
  collectorStatus?: CollectorStatus[];
}

/** What {@link Store.removeAgent} removed. */
export interface AgentRemoval {
  /** There was an `agents` row (the agent had registered). */
  agent: boolean;
  /** There was an access record (enrollment state, keys): it is gone, so its keys no longer authenticate. */
  access: boolean;
  /** Ids of the queued or delivered commands that were expired. */
  expiredCommands: string[];
  /** With deleteData: how many series (with their chunks and rollups), snapshots and timeline entries were deleted. */
  series: number;
  snapshots: number;
  timeline: number;
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

/** An admin token as stored: never its secret, only the secret's hash. */
export interface AdminTokenRecord {
  /** The public part of the token (`spt_<id>_…`). */
  id: string;
  /** Unique; recorded in the audit trail. */
  name: string;
  role: RoleName;
  secretHash: string;
  createdAtMs: number;
  /** Who created it: an admin token's name, "cli" or "bootstrap". */
  createdBy: string;
  lastUsedMs?: number;
  revokedAtMs?: number;
}

/** An enrollment token as stored. */
export interface EnrollmentTokenRecord {
  id: string;
  name: string;
  secretHash: string;
  singleUse: boolean;
  /** Agents enrolling with it (for the first time) are approved at once. */
  autoApprove: boolean;
  createdAtMs: number;
  /** Absent: never expires. */
  expiresAtMs?: number;
  /** Given to the agents that enroll with it. */
  labels: Record<string, string>;
  /** Enrollments started with it. */
  uses: number;
  revokedAtMs?: number;
  createdBy: string;
}

/** Where an agent stands: the state of its latest enrollment, or revoked. */
export type EnrollmentStateName = "pending" | "approved" | "denied" | "revoked";

/**
 * What the server knows about an agent's right to connect (linked to the `agents` metadata by hostname). Keys are
 * stored as id + SHA-256 of the secret. A key is valid while `keyId` is set (revocation clears it), independent of
 * the state of a later re-enrollment.
 */
export interface AgentAccessRecord {
  hostname: string;
  /** Bumped by every write; putAgentAccess compares it (optimistic concurrency). */
  version: number;
  state: EnrollmentStateName;
  /** The latest enrollment (absent for an agent provisioned with a key directly). */
  enrollmentId?: string;
  enrollmentSecretHash?: string;
  /** The enrollment token it used. */
  tokenId?: string;
  labels: Record<string, string>;
  /** Host info sent with the enrollment (what an admin sees before approving). */
  requestedHost?: HostInfo;
  keyId?: string;
  keyHash?: string;
  /** The current key has authenticated at least once. */
  keyUsed: boolean;
  /** The enrollment was approved and its poller may collect a (fresh) key until one is used. */
  keyPickup: boolean;
  /** Rotation: the next key, issued (sent) at nextKeyIssuedMs; the current key stays valid until it is used. */
  nextKeyId?: string;
  nextKeyHash?: string;
  nextKeyIssuedMs?: number;
  /** An admin asked for a new key; it is issued at the agent's next command stream. */
  rotationRequestedMs?: number;
  /** How often the agent sends batches, as it reported. */
  reportIntervalMs?: number;
  /** Diagnostics its configuration allows, as it reported. */
  diagnostics: string[];
  createdAtMs: number;
  updatedAtMs: number;
  /**
   * Mutual TLS: the client certificate this agent is pinned to (`sha256:<hex>` of its DER bytes), recorded the
   * first time its key was used with a verified certificate; its key is refused with any other certificate or none.
   */
  certFingerprint?: string;
}

/** Outcome of {@link Store.putAgentAccess}. */
export type PutAgentAccessResult =
  | { ok: true; version: number }
  /** conflict: the record changed (or appeared) since it was read; token-unusable: the token could not be consumed. */
  | { ok: false; reason: "conflict" | "token-unusable" };

/**
 * Channels of cross-process change notifications (see {@link Store.subscribe}): "command_queued" carries the
 * hostname whose queue got a command (new, or returned by requeue); "command_updated" the id of a command whose state
 * changed (delivered, returned, finished, expired); "agent_access_changed" the hostname whose access record was
 * written or deleted (keys rotated or revoked: open streams of that agent look again); "host_data_deleted" the
 * hostname whose data removeAgent deleted (other servers' time-series heads forget it); "admin_token_revoked" the id
 * of a revoked admin token (server streams opened with it end).
 */
export type StoreChannel = "command_queued" | "command_updated" | "agent_access_changed" | "host_data_deleted" | "admin_token_revoked";

/**
 * The one storage interface. Every backend passes the same contract suite (store-contract.ts).
 * A promise that resolves means the write is committed (durable), except for the advisory timestamps of
 * touchAgent, touchAgents and touchAdminToken (last contact, last use): committed, and on disk with the next durable
 * write, but not waited for (an fsync wait on every admin call and presence run was the command latency's tail).
 */
export interface Store {
  /**
   * Stores a batch atomically, de-duplicated by (hostname, sessionId, sequence) when sessionId is set: the dedup key,
   * one WAL row (the envelopes as a MetricBatch; its samples go to chunks when the head flushes), the snapshot
   * envelopes (see listEnvelopes) and the host's received-envelope count. (The latest envelope per (type, key) is
   * written by commitFlush: TsdbEngine.latest serves newer ones from memory.)
   * Resolved writes are durable, and resolve in call order with increasing WAL ids. The batch is read during the call
   * (prepareWrite) and not kept: the caller's messages need not live until the commit.
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
  /**
   * Records the contact of many agents at once, in one transaction (the presence tracker persists last contact every
   * few seconds per agent, not per batch). Last contact never moves backwards; a collector status, when given,
   * replaces the stored one; unknown agents are skipped.
   */
  touchAgents(contacts: AgentContact[]): Promise<void>;

  /**
   * Appends changes to their hosts' status timelines, in order and in one transaction: each unless it repeats the
   * latest stored status of its host or is older than the latest stored change (earlier changes of the same call
   * included; several servers evaluating one agent store each change once; changes of one host are serialized across
   * servers). Returns, per change, whether it was stored.
   */
  recordAgentStatuses(changes: readonly AgentStatusChange[]): Promise<boolean[]>;
  /**
   * The host's timeline around [fromMs, toMs]: `initial` is the latest change before fromMs (the status in force at
   * fromMs, absent when none), `changes` those with fromMs <= atMs <= toMs, oldest first, at most `limit`.
   */
  agentTimeline(q: { hostname: string; fromMs: number; toMs: number; limit: number }): Promise<{
    initial?: AgentStatusChange;
    changes: AgentStatusChange[];
  }>;
  /** The latest stored change of every host with a timeline, by hostname. */
  latestAgentStatuses(): Promise<AgentStatusChange[]>;
  /**
   * Deregisters a host in one transaction: its queued and delivered commands become expired with `reason` as their
   * outcome's error (the audit trail keeps them), its `agents` row and access record are deleted (its keys stop
   * authenticating; other servers sharing the database are notified). With `deleteData`, also its series with their
   * chunks and rollups, snapshots, latest envelopes, envelope count, replay keys, WAL rows and status timeline.
   */
  removeAgent(hostname: string, opts: { atMs: number; reason: string; deleteData: boolean }): Promise<AgentRemoval>;
  getAgent(hostname: string): Promise<AgentRecord | undefined>;
  listAgents(): Promise<AgentRecord[]>;
  /**
   * Every registered agent's hostname and last contact, by hostname: what the presence tracker reloads every
   * 30 s. Not `listAgents`: decoding every agent's host info and collector status held the event loop for
   * 300-380 ms at 1,000 agents (docs/benchmarks.md, "Fleet scale").
   */
  listAgentContacts(): Promise<Array<{ hostname: string; lastSeenMs: number }>>;

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

  /** Stores a new admin token; false (nothing stored) when the name is taken. */
  createAdminToken(rec: AdminTokenRecord): Promise<boolean>;
  getAdminToken(id: string): Promise<AdminTokenRecord | undefined>;
  /** Every admin token (revoked ones too), by name. */
  listAdminTokens(): Promise<AdminTokenRecord[]>;
  /** How many admin tokens exist, revoked ones included. */
  countAdminTokens(): Promise<number>;
  /** Revokes the token with this id, else the one with this name; returns it (undefined: none). Idempotent. */
  revokeAdminToken(nameOrId: string, atMs: number): Promise<AdminTokenRecord | undefined>;
  /** Records the token's use (last_used never moves backwards). */
  touchAdminToken(id: string, atMs: number): Promise<void>;

  createEnrollmentToken(rec: EnrollmentTokenRecord): Promise<void>;
  getEnrollmentToken(id: string): Promise<EnrollmentTokenRecord | undefined>;
  /** Every enrollment token, newest first. */
  listEnrollmentTokens(): Promise<EnrollmentTokenRecord[]>;
  /** Revokes it; false when there is no such token. Idempotent. */
  revokeEnrollmentToken(id: string, atMs: number): Promise<boolean>;

  getAgentAccess(hostname: string): Promise<AgentAccessRecord | undefined>;
  /** The record whose current or next key has this id. */
  findAgentAccessByKeyId(keyId: string): Promise<AgentAccessRecord | undefined>;
  findAgentAccessByEnrollmentId(enrollmentId: string): Promise<AgentAccessRecord | undefined>;
  /** Every access record, by hostname. */
  listAgentAccess(): Promise<AgentAccessRecord[]>;
  /**
   * Writes `rec` (all fields but version) if the stored record's version is still `expectedVersion` (undefined:
   * there must be no record for the host yet), setting version to expectedVersion + 1 (or 1). With `consumeToken`,
   * in the same transaction, counts one use of that enrollment token, which must be unrevoked, unexpired at `atMs`
   * and, when single-use, unused: of two enrollments racing for one single-use token exactly one succeeds, on every
   * backend. Nothing is written unless both succeed.
   */
  putAgentAccess(
    rec: AgentAccessRecord,
    expectedVersion: number | undefined,
    consumeToken?: { id: string; atMs: number },
  ): Promise<PutAgentAccessResult>;
  /** Removes a host's access record; false when there was none. */
  deleteAgentAccess(hostname: string): Promise<boolean>;

  /**
   * Optional, for backends several server processes can share (PostgreSQL LISTEN/NOTIFY): calls `cb` for changes
   * made through another Store instance on the same database; this instance's own changes are not repeated. `key`
   * null means notifications may have been missed (the listening connection was re-established): treat every key
   * as changed. Returns the function that unsubscribes.
   */
  subscribe?(channel: StoreChannel, cb: (key: string | null) => void): () => void;

  close(): Promise<void>;
}
