/**
 * Pure conversions between the original Go server's JSON (docs: legacy-api.md) and the typed spectra.v1 messages.
 *
 * Why not `fromJson`/`toJson` alone: the legacy JSON is Go's `encoding/json` output, which differs from proto3 JSON
 * where it matters here: 64-bit integers are plain numbers (protobuf-es writes strings), timestamps carry a zone
 * offset, numbers are never quoted (proto3 JSON accepts "12.5"), `null` means "leave the zero value", keys match
 * case-insensitively, and `omitempty` drops some zero fields. Both directions walk the message descriptors generically
 * (`desc.fields`), so a field added to the contract flows through without a per-type mapper; the few places where the
 * Go shape differs from the proto shape are listed in small tables below.
 */
import {
  ScalarType,
  create,
  fromJson,
  type DescEnum,
  type DescField,
  type DescMessage,
  type JsonObject,
  type JsonValue,
  type Message,
  type MessageShape,
} from "@bufbuild/protobuf";
import { timestampFromMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { AgentSummary } from "../../gen/spectra/v1/admin_service_pb.js";
import { HostInfoSchema, type HostInfo } from "../../gen/spectra/v1/agent_service_pb.js";
import {
  CommandOutcomeSchema,
  CommandSchema,
  CommandState,
  CommandStateSchema,
  CommandType,
  CommandTypeSchema,
  DiskUsageResultSchema,
  FetchLogsResultSchema,
  ListMountsResultSchema,
  NetworkAction,
  NetworkActionSchema,
  NetworkDiagResultSchema,
  type Command,
  type CommandOutcome,
} from "../../gen/spectra/v1/diagnostics_pb.js";
import { MetricEnvelopeSchema, type MetricEnvelope } from "../../gen/spectra/v1/metrics_pb.js";
import { caseForType, typeForCase } from "../ingest/payload-types.js";
import type { CommandRecord } from "../store/store.js";

/** Legacy JSON that does not fit the contract; the message is the detail after `invalid json: `. */
export class LegacyJsonError extends Error {
  override name = "LegacyJsonError";
}

// ---------------------------------------------------------------------------------------------------------------
// RFC 3339 timestamps

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/** Days since 1970-01-01 of a proleptic Gregorian date (exact integer arithmetic, any year). */
function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function daysInMonth(y: number, m: number): number {
  if (m === 2) return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(m) ? 30 : 31;
}

/**
 * Parses an RFC 3339 timestamp as Go's `time.Time` JSON decoding accepts it (`2026-02-02T07:48:40.123456789-05:00`,
 * `...Z`, no fraction, any fraction length: digits past the ninth are truncated as Go does) into a Timestamp that is
 * exact to the nanosecond. Throws LegacyJsonError.
 */
export function parseRfc3339(text: string): Timestamp {
  const m = RFC3339.exec(text);
  if (!m) throw new LegacyJsonError(`cannot parse ${JSON.stringify(text.slice(0, 64))} as RFC 3339 time`);
  const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number, number];
  const bad = (what: string) => new LegacyJsonError(`${JSON.stringify(text)}: ${what} out of range`);
  // Year 0 cannot be a valid google.protobuf.Timestamp (range 0001-01-01 .. 9999-12-31).
  if (y < 1) throw bad("year");
  if (mo < 1 || mo > 12) throw bad("month");
  if (d < 1 || d > daysInMonth(y, mo)) throw bad("day");
  if (h > 23) throw bad("hour");
  if (mi > 59) throw bad("minute");
  // Go rejects leap seconds ("60") too.
  if (s > 59) throw bad("second");
  let offset = 0;
  if (m[8] === undefined) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) throw bad("time zone offset");
    offset = (oh * 60 + om) * 60 * (m[9] === "-" ? -1 : 1);
  }
  const nanos = m[7] === undefined ? 0 : Number(m[7].slice(0, 9).padEnd(9, "0"));
  const seconds = daysFromCivil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset;
  return { $typeName: "google.protobuf.Timestamp", seconds: BigInt(seconds), nanos };
}

/** Formats a Timestamp like Go's `time.Time` JSON in UTC (RFC 3339, fraction without trailing zeros, "Z"). */
export function formatRfc3339(ts: Timestamp): string {
  const iso = new Date(Number(ts.seconds) * 1000).toISOString(); // "YYYY-MM-DDTHH:MM:SS.000Z"
  const fraction = ts.nanos === 0 ? "" : "." + String(ts.nanos).padStart(9, "0").replace(/0+$/, "");
  return iso.slice(0, 19) + fraction + "Z";
}

function formatMs(ms: number): string {
  return formatRfc3339(timestampFromMs(ms));
}

// ---------------------------------------------------------------------------------------------------------------
// Go-compatible JSON text

/** JSON text as Go's encoding/json writes it: `<`, `>`, `&`, U+2028 and U+2029 escaped (they only occur in strings). */
export function goJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"),
  );
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "string") return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + "..." : v)}`;
  return typeof v;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

// ---------------------------------------------------------------------------------------------------------------
// Where the Go shape differs from the proto shape

/** Proto fields that Go marked `omitempty` without the proto field being `optional`: left out when zero. */
const OMIT_EMPTY = new Set([
  // Fields the new contract added to the legacy command payloads: only sent when set.
  "spectra.v1.FetchLogsParams.since",
  "spectra.v1.FetchLogsParams.until",
  "spectra.v1.FetchLogsParams.unit",
  "spectra.v1.FetchLogsParams.limit",
  "spectra.v1.DiskUsageParams.cross_filesystems",
  "spectra.v1.DiskUsageParams.max_files",
  "spectra.v1.DiskUsageParams.timeout_seconds",
  "spectra.v1.NetworkDiagParams.timeout_ms",
  "spectra.v1.NetworkDiagParams.max_hops",
  "spectra.v1.FetchLogsResult.source",
  "spectra.v1.NetstatEntry.process",
  "spectra.v1.NetworkDiagResult.ping_summary",
  "spectra.v1.NetworkDiagResult.hops",
  "spectra.v1.NetworkDiagResult.tool",
  "spectra.v1.MountInfo.options",
  "spectra.v1.NetworkDiagResult.target",
  "spectra.v1.NetworkDiagResult.raw_output",
  "spectra.v1.NetworkDiagResult.netstat",
  "spectra.v1.NetworkDiagResult.ping_results",
]);

/** Go `NetstatEntry.User` is a string holding the uid; the contract has a uint32. */
const STRING_NUMBER = new Set(["spectra.v1.NetstatEntry.user"]);

/** Legacy enum spelling: FETCH_LOGS, ERROR, but network actions in lower case ("ping"). */
function enumName(e: DescEnum, n: number): string | undefined {
  const v = e.values.find((x) => x.number === n);
  if (!v) return undefined;
  return e.typeName === NetworkActionSchema.typeName || e.typeName === CommandStateSchema.typeName
    ? v.localName.toLowerCase()
    : v.localName;
}

function enumNumber(e: DescEnum, name: string): number | undefined {
  const upper = name.toUpperCase();
  return e.values.find((v) => v.number !== 0 && v.localName === upper)?.number;
}

const fieldKey = (f: DescField) => `${f.parent.typeName}.${f.name}`;

// ---------------------------------------------------------------------------------------------------------------
// Legacy JSON → message

const NUMERIC = new Set([
  ScalarType.DOUBLE, ScalarType.FLOAT, ScalarType.INT32, ScalarType.UINT32, ScalarType.SINT32, ScalarType.FIXED32,
  ScalarType.SFIXED32, ScalarType.INT64, ScalarType.UINT64, ScalarType.SINT64, ScalarType.FIXED64, ScalarType.SFIXED64,
]);

function scalarZero(t: ScalarType): JsonValue {
  if (t === ScalarType.STRING || t === ScalarType.BYTES) return "";
  if (t === ScalarType.BOOL) return false;
  return 0;
}

/** Checks one scalar against Go's typing (no quoted numbers) and returns it as proto JSON. */
function scalarIn(f: DescField, t: ScalarType, v: unknown, path: string): JsonValue | undefined {
  if (v === null) return scalarZero(t); // Go: null leaves the zero value
  if (STRING_NUMBER.has(fieldKey(f)) && typeof v === "string") {
    // A uid that is not a number (never sent by the original agent) cannot be represented: drop it.
    return /^\d{1,10}$/.test(v) ? Number(v) : undefined;
  }
  const want = NUMERIC.has(t) ? "number" : t === ScalarType.BOOL ? "boolean" : "string";
  if (typeof v !== want) throw new LegacyJsonError(`${path}: expected ${want}, got ${describe(v)}`);
  return v as JsonValue;
}

function elementIn(f: DescField, v: unknown, path: string): JsonValue | undefined {
  switch (f.fieldKind) {
    case "scalar":
      return scalarIn(f, f.scalar, v, path);
    case "enum":
      if (v === null) return 0;
      if (typeof v !== "string" && typeof v !== "number") throw new LegacyJsonError(`${path}: expected string, got ${describe(v)}`);
      return v;
    case "message":
      return messageIn(f.message, v, path);
    case "list": {
      if (!Array.isArray(v)) throw new LegacyJsonError(`${path}: expected array, got ${describe(v)}`);
      return v.map((item, i) => {
        const p = `${path}[${i}]`;
        if (f.listKind === "message") return messageIn(f.message, item, p);
        if (f.listKind === "enum") return item === null ? 0 : (item as JsonValue);
        return scalarIn(f, f.scalar, item, p) ?? scalarZero(f.scalar);
      });
    }
    case "map":
      if (!isObject(v)) throw new LegacyJsonError(`${path}: expected object, got ${describe(v)}`);
      return v as JsonObject;
  }
}

/** Legacy JSON object → proto JSON object (keys = proto names) that `fromJson` accepts; validates types the Go way. */
function messageIn(desc: DescMessage, v: unknown, path: string): JsonValue {
  if (desc.typeName === "google.protobuf.Timestamp") {
    if (v === null) return null;
    if (typeof v !== "string") throw new LegacyJsonError(`${path}: expected RFC 3339 string, got ${describe(v)}`);
    try {
      // Re-emitted in the canonical UTC form protobuf-es parses exactly.
      const ts = parseRfc3339(v);
      return new Date(Number(ts.seconds) * 1000).toISOString().slice(0, 19) + "." + String(ts.nanos).padStart(9, "0") + "Z";
    } catch (err) {
      throw new LegacyJsonError(`${path}: ${(err as Error).message}`);
    }
  }
  if (v === null) return {};
  if (!isObject(v)) throw new LegacyJsonError(`${path}: expected object, got ${describe(v)}`);
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(v)) {
    // Go matches keys exactly first, then case-insensitively; unknown keys are ignored.
    const f =
      desc.fields.find((x) => x.name === key || x.jsonName === key) ??
      desc.fields.find((x) => x.name.toLowerCase() === key.toLowerCase());
    // Go leaves the zero value for null; for an `optional` field that means "not set".
    if (!f || value === undefined || value === null) continue;
    const converted = elementIn(f, value, path === "" ? f.name : `${path}.${f.name}`);
    if (converted !== undefined) out[f.name] = converted;
  }
  return out;
}

/**
 * Decodes legacy JSON (keys = proto field names) into a message of `schema`, with Go's typing rules: numbers must be
 * JSON numbers, `null` leaves the zero value, unknown keys are ignored, timestamps are RFC 3339 with any offset.
 * Throws LegacyJsonError naming the offending field.
 */
export function fromLegacyJson<Desc extends DescMessage>(schema: Desc, json: unknown, path = ""): MessageShape<Desc> {
  const protoJson = messageIn(schema, json, path);
  try {
    return fromJson(schema, protoJson, { ignoreUnknownFields: true });
  } catch (err) {
    // protobuf-es names the field itself ("cannot decode field spectra.v1.X.y from JSON: ... out of range").
    throw new LegacyJsonError((path === "" ? "" : `${path}: `) + (err as Error).message);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Message → legacy JSON

function scalarOut(f: DescField, v: unknown): JsonValue {
  if (typeof v === "bigint") return Number(v); // the legacy API has plain JSON numbers
  if (typeof v === "number" && !Number.isFinite(v)) return null; // Go cannot encode NaN/Inf either
  if (v instanceof Uint8Array) return Buffer.from(v).toString("base64");
  if (STRING_NUMBER.has(fieldKey(f))) return String(v);
  return v as JsonValue;
}

function isZero(v: unknown): boolean {
  if (Array.isArray(v)) return v.length === 0;
  if (v instanceof Uint8Array) return v.length === 0;
  return v === undefined || v === 0 || v === 0n || v === "" || v === false;
}

/**
 * Encodes a message as the original's JSON: declaration order, proto field names, 64-bit integers as plain numbers,
 * timestamps as RFC 3339, enums by legacy name, unset `optional` fields and Go `omitempty` zero fields left out.
 */
export function toLegacyJson(desc: DescMessage, msg: Message): JsonObject {
  if (desc.typeName === "google.protobuf.Timestamp") throw new Error("a Timestamp is not a JSON object");
  const m = msg as unknown as Record<string, unknown>;
  const out: JsonObject = {};
  for (const f of desc.fields) {
    let v: unknown;
    if (f.oneof) {
      const o = m[f.oneof.localName] as { case?: string; value?: unknown };
      if (o.case !== f.localName) continue;
      v = o.value;
    } else {
      v = m[f.localName];
    }
    if (v === undefined) continue; // unset optional field or message
    if (OMIT_EMPTY.has(fieldKey(f)) && isZero(v)) continue;
    out[f.name] = valueOut(f, v);
  }
  return out;
}

function messageOut(desc: DescMessage, v: Message): JsonValue {
  return desc.typeName === "google.protobuf.Timestamp" ? formatRfc3339(v as Timestamp) : toLegacyJson(desc, v);
}

function valueOut(f: DescField, v: unknown): JsonValue {
  switch (f.fieldKind) {
    case "scalar":
      return scalarOut(f, v);
    case "enum":
      return enumName(f.enum, v as number) ?? (v as number);
    case "message":
      return messageOut(f.message, v as Message);
    case "list":
      return (v as unknown[]).map((item) =>
        f.listKind === "message"
          ? messageOut(f.message, item as Message)
          : f.listKind === "enum"
            ? (enumName(f.enum, item as number) ?? (item as number))
            : scalarOut(f, item),
      );
    case "map":
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, x as JsonValue]));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Metric envelopes

const payloadFields = new Map(
  MetricEnvelopeSchema.fields.filter((f) => f.oneof?.name === "payload").map((f) => [f.localName, f]),
);

/** What {@link envelopesFromLegacy} made of a legacy batch. */
export interface LegacyBatch {
  /** Envelopes of known types, hostname set to the batch's host. */
  envelopes: MetricEnvelope[];
  /** Envelopes left out, with why ("unknown type \"foo\""), as the original logged and dropped them. */
  ignored: string[];
  /** Envelopes whose own `hostname` named another host than the batch's (relabelled to the batch's host). */
  relabelled: number;
}

/**
 * Converts the body of `POST /api/v1/metrics` (a JSON array of `{type, timestamp, hostname, data}`) into envelopes for
 * `hostname`, the agent named by the query parameter. `null` is an empty batch (Go decodes it as a nil slice).
 * Unknown types are ignored. Throws LegacyJsonError when the batch or a known envelope has the wrong shape or types.
 */
export function envelopesFromLegacy(json: unknown, hostname: string): LegacyBatch {
  const batch: LegacyBatch = { envelopes: [], ignored: [], relabelled: 0 };
  if (json === null) return batch;
  if (!Array.isArray(json)) throw new LegacyJsonError(`expected an array of envelopes, got ${describe(json)}`);
  json.forEach((item, i) => {
    const where = `envelope ${i}`;
    if (!isObject(item)) throw new LegacyJsonError(`${where}: expected object, got ${describe(item)}`);
    const { type = "", timestamp = null, hostname: envHost = null, data } = item;
    if (typeof type !== "string") throw new LegacyJsonError(`${where}: type: expected string, got ${describe(type)}`);
    if (envHost !== null && typeof envHost !== "string") {
      throw new LegacyJsonError(`${where}: hostname: expected string, got ${describe(envHost)}`);
    }
    // Every envelope's header is decoded, as Go decoded the whole batch before looking at types.
    let ts: Timestamp | undefined;
    if (timestamp !== null) {
      if (typeof timestamp !== "string") throw new LegacyJsonError(`${where}: timestamp: expected string, got ${describe(timestamp)}`);
      try {
        ts = parseRfc3339(timestamp);
      } catch (err) {
        throw new LegacyJsonError(`${where}: timestamp: ${(err as Error).message}`);
      }
    }
    const payloadCase = caseForType(type);
    if (payloadCase === undefined) {
      batch.ignored.push(`unknown type ${JSON.stringify(type)}`);
      return;
    }
    if (data === undefined) {
      // Go failed to unmarshal an absent `data`, logged it and dropped the envelope.
      batch.ignored.push(`${type} without data`);
      return;
    }
    const field = payloadFields.get(payloadCase)!;
    if (field.fieldKind !== "message") throw new Error(`payload field ${field.name} is not a message`);
    const value = fromLegacyJson(field.message, data, `${where} (${type}): data`);
    // The query parameter identifies the agent (legacy-api.md); an envelope naming another host is relabelled.
    if (envHost !== null && envHost !== "" && envHost !== hostname) batch.relabelled++;
    batch.envelopes.push(
      create(MetricEnvelopeSchema, {
        type: typeForCase(payloadCase),
        hostname,
        ...(ts ? { timestamp: ts } : {}),
        payload: { case: payloadCase, value } as MetricEnvelope["payload"],
      }),
    );
  });
  return batch;
}

// ---------------------------------------------------------------------------------------------------------------
// Host info and agents

/** Decodes the register body (legacy host info). Throws LegacyJsonError. */
export function hostInfoFromLegacy(json: unknown): HostInfo {
  return fromLegacyJson(HostInfoSchema, json);
}

/** Encodes host info in the legacy register shape (plain numbers). */
export function hostInfoToLegacy(host: HostInfo): JsonObject {
  return toLegacyJson(HostInfoSchema, host);
}

/** One entry of `GET /admin/agents`: the legacy host info plus what the server knows of the agent. */
export function agentToLegacy(a: AgentSummary): JsonObject {
  const out: JsonObject = a.host ? hostInfoToLegacy(a.host) : {};
  if (a.lastSeen) out["last_seen"] = formatRfc3339(a.lastSeen);
  if (a.registeredAt) out["registered_at"] = formatRfc3339(a.registeredAt);
  out["pending_commands"] = a.pendingCommands;
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Commands and results

/** Legacy command type name ("DISK_USAGE"), or "" for an unspecified type. */
export function commandTypeName(t: CommandType): string {
  return t === CommandType.UNSPECIFIED ? "" : (enumName(CommandTypeSchema, t) ?? "");
}

/** Command type for a legacy name; UNSPECIFIED when unknown. */
export function commandTypeFromName(name: string): CommandType {
  return (enumNumber(CommandTypeSchema, name) as CommandType | undefined) ?? CommandType.UNSPECIFIED;
}

/** Network action for a legacy action name ("ping"; any case); UNSPECIFIED when unknown. */
export function networkActionFromName(name: string): NetworkAction {
  return (enumNumber(NetworkActionSchema, name) as NetworkAction | undefined) ?? NetworkAction.UNSPECIFIED;
}

/** Legacy state name: "queued", "delivered", "completed", "failed", "expired". */
export function commandStateName(s: CommandState): string {
  return enumName(CommandStateSchema, s) ?? "unspecified";
}

const paramsFields = new Map(
  CommandSchema.fields.filter((f) => f.oneof?.name === "params").map((f) => [f.localName, f]),
);

/**
 * The JSON document a legacy agent finds base64-encoded in a command's `payload`, e.g. `{"path":"/var/log","top_n":10}`;
 * null for commands without parameters (LIST_MOUNTS, RESTART_AGENT), as the original sent them.
 */
export function commandPayloadJson(cmd: Command): string | null {
  const p = cmd.params;
  if (p.case === undefined || p.case === "listMounts") return null;
  const f = paramsFields.get(p.case)!;
  if (f.fieldKind !== "message") throw new Error(`params field ${f.name} is not a message`);
  return goJson(toLegacyJson(f.message, p.value));
}

/** A command as the legacy long poll returns it: `{"id","type","payload":<base64 of JSON>|null}` (no newline). */
export function commandToLegacy(cmd: Command): string {
  const payload = commandPayloadJson(cmd);
  return goJson({
    id: cmd.id,
    type: commandTypeName(cmd.type),
    payload: payload === null ? null : Buffer.from(payload, "utf8").toString("base64"),
  });
}

/**
 * How each command type's result sits in the legacy `payload`: FETCH_LOGS and LIST_MOUNTS are bare arrays (the
 * contract wraps them in a message with one repeated field), DISK_USAGE and NETWORK_DIAG are objects.
 */
const RESULT_SHAPES = {
  [CommandType.FETCH_LOGS]: { case: "fetchLogs", schema: FetchLogsResultSchema, list: "entries" },
  [CommandType.DISK_USAGE]: { case: "diskUsage", schema: DiskUsageResultSchema, list: undefined },
  [CommandType.LIST_MOUNTS]: { case: "listMounts", schema: ListMountsResultSchema, list: "mounts" },
  [CommandType.NETWORK_DIAG]: { case: "networkDiag", schema: NetworkDiagResultSchema, list: undefined },
} as const satisfies Partial<Record<CommandType, { case: string; schema: DescMessage; list: string | undefined }>>;

type ResultType = keyof typeof RESULT_SHAPES;

function resultShape(t: CommandType) {
  return t in RESULT_SHAPES ? RESULT_SHAPES[t as ResultType] : undefined;
}

/**
 * Decodes a legacy result `{"id","type","payload":<embedded JSON>|null,"error"}` into a CommandOutcome, the payload
 * converted into the typed result of its type. A payload of a type without a typed result (RESTART_AGENT, unknown)
 * is dropped. Throws LegacyJsonError.
 */
export function outcomeFromLegacy(json: unknown): CommandOutcome {
  if (!isObject(json)) throw new LegacyJsonError(`expected a result object, got ${describe(json)}`);
  const { id = null, type = null, error = null, payload = null } = json;
  for (const [k, v] of [["id", id], ["type", type], ["error", error]] as const) {
    if (v !== null && typeof v !== "string") throw new LegacyJsonError(`${k}: expected string, got ${describe(v)}`);
  }
  const commandType = commandTypeFromName((type as string | null) ?? "");
  const outcome = create(CommandOutcomeSchema, {
    commandId: (id as string | null) ?? "",
    type: commandType,
    error: (error as string | null) ?? "",
  });
  const shape = resultShape(commandType);
  if (payload === null || !shape) return outcome;
  const value = fromLegacyJson(shape.schema, shape.list ? { [shape.list]: payload } : payload, "payload");
  outcome.result = { case: shape.case, value } as CommandOutcome["result"];
  return outcome;
}

/** The outcome's result in the legacy payload shape (plain JSON numbers), or null when there is none. */
export function outcomeResultToLegacy(outcome: CommandOutcome): JsonValue {
  const r = outcome.result;
  if (r.case === undefined) return null;
  const shape = Object.values(RESULT_SHAPES).find((s) => s.case === r.case)!;
  const obj = toLegacyJson(shape.schema, r.value);
  return shape.list ? (obj[shape.list] ?? []) : obj;
}

/**
 * A stored command for `GET /admin/command`: `{id, hostname, type, state, created_at, delivered_at?, finished_at?,
 * error?, payload}` with the result in the legacy shape (null until a result with a payload arrived).
 */
export function commandRecordToLegacy(rec: CommandRecord): JsonObject {
  const out: JsonObject = {
    id: rec.command.id,
    hostname: rec.hostname,
    type: commandTypeName(rec.command.type),
    state: commandStateName(rec.state),
    created_at: formatMs(rec.createdAtMs),
  };
  if (rec.requestedBy !== "") out["requested_by"] = rec.requestedBy;
  if (rec.deliveredAtMs !== undefined) out["delivered_at"] = formatMs(rec.deliveredAtMs);
  if (rec.finishedAtMs !== undefined) out["finished_at"] = formatMs(rec.finishedAtMs);
  if (rec.outcome && rec.outcome.error !== "") out["error"] = rec.outcome.error;
  out["payload"] = rec.outcome ? outcomeResultToLegacy(rec.outcome) : null;
  return out;
}
