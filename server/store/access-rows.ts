/**
 * Rows of the access-control tables (admin_tokens, enrollment_tokens, agent_access) and their records, shared by
 * both backends: the columns have the same names; SQLite keeps booleans as 0/1 and PostgreSQL as booleans.
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { HostInfoSchema } from "../../gen/spectra/v1/agent_service_pb.js";
import type { RoleName } from "../auth/credentials.js";
import type { AdminTokenRecord, AgentAccessRecord, EnrollmentStateName, EnrollmentTokenRecord } from "./store.js";

export interface AdminTokenRow {
  id: string;
  name: string;
  role: string;
  secret_hash: string;
  created_ms: number;
  created_by: string;
  last_used_ms: number | null;
  revoked_ms: number | null;
}

export interface EnrollmentTokenRow {
  id: string;
  name: string;
  secret_hash: string;
  single_use: number | boolean;
  auto_approve: number | boolean;
  created_ms: number;
  expires_ms: number | null;
  labels: string;
  uses: number;
  revoked_ms: number | null;
  created_by: string;
}

export interface AgentAccessRow {
  hostname: string;
  version: number;
  state: string;
  enrollment_id: string | null;
  enrollment_secret_hash: string | null;
  token_id: string | null;
  labels: string;
  requested_host: Uint8Array | null;
  key_id: string | null;
  key_hash: string | null;
  key_used: number | boolean;
  key_pickup: number | boolean;
  next_key_id: string | null;
  next_key_hash: string | null;
  next_key_issued_ms: number | null;
  rotation_requested_ms: number | null;
  report_interval_ms: number | null;
  diagnostics: string;
  created_ms: number;
  updated_ms: number;
  cert_fingerprint: string | null;
}

/** Columns of agent_access in the order {@link agentAccessValues} lists them (hostname first, version last). */
export const AGENT_ACCESS_COLUMNS = [
  "hostname",
  "state",
  "enrollment_id",
  "enrollment_secret_hash",
  "token_id",
  "labels",
  "requested_host",
  "key_id",
  "key_hash",
  "key_used",
  "key_pickup",
  "next_key_id",
  "next_key_hash",
  "next_key_issued_ms",
  "rotation_requested_ms",
  "report_interval_ms",
  "diagnostics",
  "created_ms",
  "updated_ms",
  "cert_fingerprint",
  "version",
] as const;

const opt = <T>(v: T | null): T | undefined => (v === null ? undefined : v);

export function toAdminTokenRecord(r: AdminTokenRow): AdminTokenRecord {
  const rec: AdminTokenRecord = {
    id: r.id,
    name: r.name,
    role: r.role as RoleName,
    secretHash: r.secret_hash,
    createdAtMs: r.created_ms,
    createdBy: r.created_by,
  };
  if (r.last_used_ms !== null) rec.lastUsedMs = r.last_used_ms;
  if (r.revoked_ms !== null) rec.revokedAtMs = r.revoked_ms;
  return rec;
}

export function toEnrollmentTokenRecord(r: EnrollmentTokenRow): EnrollmentTokenRecord {
  const rec: EnrollmentTokenRecord = {
    id: r.id,
    name: r.name,
    secretHash: r.secret_hash,
    singleUse: Boolean(r.single_use),
    autoApprove: Boolean(r.auto_approve),
    createdAtMs: r.created_ms,
    labels: JSON.parse(r.labels) as Record<string, string>,
    uses: r.uses,
    createdBy: r.created_by,
  };
  if (r.expires_ms !== null) rec.expiresAtMs = r.expires_ms;
  if (r.revoked_ms !== null) rec.revokedAtMs = r.revoked_ms;
  return rec;
}

export function toAgentAccessRecord(r: AgentAccessRow): AgentAccessRecord {
  const rec: AgentAccessRecord = {
    hostname: r.hostname,
    version: r.version,
    state: r.state as EnrollmentStateName,
    labels: JSON.parse(r.labels) as Record<string, string>,
    keyUsed: Boolean(r.key_used),
    keyPickup: Boolean(r.key_pickup),
    diagnostics: JSON.parse(r.diagnostics) as string[],
    createdAtMs: r.created_ms,
    updatedAtMs: r.updated_ms,
  };
  const set = <K extends keyof AgentAccessRecord>(k: K, v: AgentAccessRecord[K] | undefined) => {
    if (v !== undefined) rec[k] = v;
  };
  set("enrollmentId", opt(r.enrollment_id));
  set("enrollmentSecretHash", opt(r.enrollment_secret_hash));
  set("tokenId", opt(r.token_id));
  set("requestedHost", r.requested_host === null ? undefined : fromBinary(HostInfoSchema, r.requested_host));
  set("keyId", opt(r.key_id));
  set("keyHash", opt(r.key_hash));
  set("nextKeyId", opt(r.next_key_id));
  set("nextKeyHash", opt(r.next_key_hash));
  set("nextKeyIssuedMs", opt(r.next_key_issued_ms));
  set("rotationRequestedMs", opt(r.rotation_requested_ms));
  set("reportIntervalMs", opt(r.report_interval_ms));
  set("certFingerprint", opt(r.cert_fingerprint));
  return rec;
}

/**
 * The values of an access record in {@link AGENT_ACCESS_COLUMNS} order (version last, as given). Booleans are
 * passed through `bool` (0/1 for SQLite, true/false for PostgreSQL).
 */
export function agentAccessValues(rec: AgentAccessRecord, version: number, bool: (b: boolean) => unknown): unknown[] {
  const host = rec.requestedHost ? Buffer.from(toBinary(HostInfoSchema, rec.requestedHost)) : null;
  return [
    rec.hostname,
    rec.state,
    rec.enrollmentId ?? null,
    rec.enrollmentSecretHash ?? null,
    rec.tokenId ?? null,
    JSON.stringify(rec.labels),
    host,
    rec.keyId ?? null,
    rec.keyHash ?? null,
    bool(rec.keyUsed),
    bool(rec.keyPickup),
    rec.nextKeyId ?? null,
    rec.nextKeyHash ?? null,
    rec.nextKeyIssuedMs ?? null,
    rec.rotationRequestedMs ?? null,
    rec.reportIntervalMs ?? null,
    JSON.stringify(rec.diagnostics),
    rec.createdAtMs,
    rec.updatedAtMs,
    rec.certFingerprint ?? null,
    version,
  ];
}
