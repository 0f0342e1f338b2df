/**
 * The original Go agent's metrics body for a simulated agent's batch: `POST /api/v1/metrics?hostname=…` with a
 * gzipped JSON array of `{type, timestamp, hostname, data}` envelopes (docs/legacy-api.md in the shared docs), made
 * from the same MetricBatch bytes the Connect agents send, with the server's own legacy JSON encoding
 * (toLegacyJson: proto field names, RFC 3339 timestamps, Go's omitempty rules).
 */
import { fromBinary, type MessageShape } from "@bufbuild/protobuf";
import { gzipSync } from "node:zlib";
import { MetricBatchSchema, MetricEnvelopeSchema, type MetricBatch } from "../../gen/spectra/v1/metrics_pb.js";
import type { StreamMetricsRequestSchema } from "../../gen/spectra/v1/agent_service_pb.js";
import { formatRfc3339, toLegacyJson } from "../../server/rest/legacy-json.js";

const payloadFields = new Map(MetricEnvelopeSchema.fields.filter((f) => f.oneof?.name === "payload").map((f) => [f.localName, f]));

/** The MetricBatch inside a request made with requestWithBatch (the bytes sit in an unknown field, length-prefixed). */
export function batchOfRequest(req: MessageShape<typeof StreamMetricsRequestSchema>): MetricBatch {
  if (req.batch) return req.batch;
  const raw = req.$unknown?.[0]?.data;
  if (!raw) throw new Error("the request holds no batch");
  let pos = 0;
  while (raw[pos]! & 0x80) pos++;
  return fromBinary(MetricBatchSchema, raw.subarray(pos + 1));
}

/** The batch's envelopes as the original agent's JSON array (envelopes without a payload are left out). */
export function legacyJson(batch: MetricBatch): string {
  const out: unknown[] = [];
  for (const env of batch.envelopes) {
    const c = env.payload.case;
    if (c === undefined) continue;
    const field = payloadFields.get(c);
    if (!field || field.fieldKind !== "message") continue;
    out.push({
      type: env.type,
      ...(env.timestamp ? { timestamp: formatRfc3339(env.timestamp) } : {}),
      hostname: batch.hostname,
      data: toLegacyJson(field.message, env.payload.value),
    });
  }
  return JSON.stringify(out);
}

/** The gzipped body of `POST /api/v1/metrics` for this request's batch. */
export function legacyMetricsBody(req: MessageShape<typeof StreamMetricsRequestSchema>): { hostname: string; body: Buffer } {
  const batch = batchOfRequest(req);
  return { hostname: batch.hostname, body: gzipSync(legacyJson(batch), { level: 6 }) };
}

/** A template batch's legacy JSON cut around its hostname and times (see LegacyBodies). */
interface LegacyTemplate {
  /** Text between the fields: parts[i], field i, parts[i + 1], … */
  parts: string[];
  /** Field i: -1 for the hostname, else its time in seconds at shift 0 (the fraction kept as it was, in `frac`). */
  fields: Float64Array;
  frac: string[];
}

const RFC3339 = /(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z/g;

/**
 * The legacy POST bodies of simulated agents without decoding each batch and re-encoding it as JSON: per template
 * batch (pool.ts), the JSON is made once from the first batch seen (legacyJson), cut around its hostname and every
 * RFC 3339 time, and each later batch of that template fills in its own hostname and times shifted by its own
 * offset. Same text as legacyJson of the batch (lib/fleet-report.test.ts checks it); gzipped as the Go agent does.
 */
export class LegacyBodies {
  private readonly cache = new WeakMap<object, LegacyTemplate>();

  /** The JSON array for `data` (MetricBatch bytes of `hostname`, made from `template` with times shifted by `shiftSec`). */
  json(hostname: string, data: Uint8Array, template: object, shiftSec: number): string {
    let t = this.cache.get(template);
    if (!t) {
      t = cut(legacyJson(fromBinary(MetricBatchSchema, data)), hostname, shiftSec);
      this.cache.set(template, t);
    }
    let out = t.parts[0]!;
    for (let i = 0; i < t.fields.length; i++) {
      const f = t.fields[i]!;
      out += (f < 0 ? hostname : new Date((f + shiftSec) * 1000).toISOString().slice(0, 19) + t.frac[i]! + "Z") + t.parts[i + 1]!;
    }
    return out;
  }

  /** The gzipped body of `POST /api/v1/metrics`. */
  body(hostname: string, data: Uint8Array, template: object, shiftSec: number): Buffer {
    return gzipSync(this.json(hostname, data, template, shiftSec), { level: 6 });
  }
}

function cut(json: string, hostname: string, shiftSec: number): LegacyTemplate {
  const parts: string[] = [];
  const fields: number[] = [];
  const frac: string[] = [];
  const re = new RegExp(`${hostname.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}|${RFC3339.source}`, "g");
  let last = 0;
  for (let m = re.exec(json); m; m = re.exec(json)) {
    parts.push(json.slice(last, m.index));
    if (m[0] === hostname) {
      fields.push(-1);
      frac.push("");
    } else {
      fields.push(Date.parse(`${m[1]}Z`) / 1000 - shiftSec);
      frac.push(m[2] ?? "");
    }
    last = m.index + m[0].length;
  }
  parts.push(json.slice(last));
  return { parts, fields: Float64Array.from(fields), frac };
}
