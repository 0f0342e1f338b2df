/**
 * Rows of the agent, command, status-timeline and envelope tables and their records, shared by both backends (the
 * columns have the same names and types as read through each driver). Access-control rows: access-rows.ts.
 */
import { create, fromBinary, fromJson, toBinary, toJson, type JsonValue } from "@bufbuild/protobuf";
import { HostInfoSchema } from "../../gen/spectra/v1/agent_service_pb.js";
import { CommandOutcomeSchema, CommandSchema, type CommandState } from "../../gen/spectra/v1/diagnostics_pb.js";
import { CollectorStatusSchema, MetricEnvelopeSchema, type CollectorStatus } from "../../gen/spectra/v1/metrics_pb.js";
import type { AgentRecord, AgentStatusChange, AgentStatusName, CommandRecord, StoredEnvelope } from "./store.js";

export interface EnvelopeRow {
  hostname: string;
  type: string;
  key: string;
  ts_ms: number;
  payload: Buffer;
}

export interface AgentRow {
  hostname: string;
  host_info: Buffer;
  collectors: string;
  registered_ms: number;
  last_seen_ms: number;
  collector_status: string | null;
}

export interface CommandRow {
  id: string;
  hostname: string;
  state: number;
  command: Buffer;
  created_ms: number;
  delivered_ms: number | null;
  finished_ms: number | null;
  outcome: Buffer | null;
  requested_by: string;
}

export interface StatusRow {
  hostname: string;
  status: string;
  at_ms: number;
}

export function statusToJson(list: CollectorStatus[]): string {
  return JSON.stringify(list.map((s) => toJson(CollectorStatusSchema, s)));
}

export function statusFromJson(text: string | null): CollectorStatus[] {
  if (!text) return [];
  return (JSON.parse(text) as JsonValue[]).map((j) => fromJson(CollectorStatusSchema, j));
}

export function toStoredEnvelope(r: EnvelopeRow): StoredEnvelope {
  return {
    hostname: r.hostname,
    type: r.type,
    key: r.key,
    timestampMs: r.ts_ms,
    envelope: fromBinary(MetricEnvelopeSchema, r.payload),
  };
}

export function toAgentRecord(r: AgentRow): AgentRecord {
  return {
    host: fromBinary(HostInfoSchema, r.host_info),
    collectors: JSON.parse(r.collectors) as string[],
    registeredAtMs: r.registered_ms,
    lastSeenMs: r.last_seen_ms,
    collectorStatus: statusFromJson(r.collector_status),
  };
}

export function toStatusChange(r: StatusRow): AgentStatusChange {
  return { hostname: r.hostname, status: r.status as AgentStatusName, atMs: r.at_ms };
}

/** The outcome stored with a command expired because its agent was removed. */
export function removedOutcome(id: string, command: Uint8Array, reason: string): Buffer {
  const type = fromBinary(CommandSchema, command).type;
  return Buffer.from(toBinary(CommandOutcomeSchema, create(CommandOutcomeSchema, { commandId: id, type, error: reason })));
}

export function toCommandRecord(r: CommandRow): CommandRecord {
  const rec: CommandRecord = {
    command: fromBinary(CommandSchema, r.command),
    hostname: r.hostname,
    state: r.state as CommandState,
    createdAtMs: r.created_ms,
    requestedBy: r.requested_by,
  };
  if (r.delivered_ms !== null) rec.deliveredAtMs = r.delivered_ms;
  if (r.finished_ms !== null) rec.finishedAtMs = r.finished_ms;
  if (r.outcome !== null) rec.outcome = fromBinary(CommandOutcomeSchema, r.outcome);
  return rec;
}
