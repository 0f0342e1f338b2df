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
