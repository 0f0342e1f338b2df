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
 * The one storage interface. Every backend passes the same contract suite (store-contract.ts).
 * A promise that resolves means the write is committed (durable).
 */
export interface Store {
  /** Stores a batch atomically, de-duplicated by (hostname, sessionId, sequence) when sessionId is set. */
  writeBatch(batch: BatchWrite): Promise<BatchWriteResult>;
  /** Envelopes of a host, oldest first, optionally of one type, at most `limit`. */
  listEnvelopes(q: { hostname: string; type?: string; sinceMs?: number; limit: number }): Promise<StoredEnvelope[]>;
  /** The latest envelope per (type, key) of a host. */
  latest(hostname: string): Promise<StoredEnvelope[]>;
  countEnvelopes(hostname?: string): Promise<number>;

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

  close(): Promise<void>;
}
