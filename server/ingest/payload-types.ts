import { MetricEnvelopeSchema, type MetricEnvelope } from "../../gen/spectra/v1/metrics_pb.js";

/** The oneof case (camelCase local name) of an envelope payload. */
export type PayloadCase = Exclude<MetricEnvelope["payload"]["case"], undefined>;

const payloadOneof = MetricEnvelopeSchema.oneofs.find((o) => o.name === "payload")!;

/** Legacy type name (= proto field name, e.g. "disk_io") → payload case ("diskIo"). */
const caseByType = new Map<string, PayloadCase>(
  payloadOneof.fields.map((f) => [f.name, f.localName as PayloadCase]),
);
/** Payload case → legacy type name. */
const typeByCase = new Map<string, string>(payloadOneof.fields.map((f) => [f.localName, f.name]));

/** Aliases the original agent sent for a type the server knows under another name. */
const typeAliases: Readonly<Record<string, string>> = { updates: "update_status" };

/** Returns the payload case for a legacy type name, or undefined for an unknown type. */
export function caseForType(type: string): PayloadCase | undefined {
  return caseByType.get(typeAliases[type] ?? type);
}

/** Returns the canonical type name of a payload case. */
export function typeForCase(c: PayloadCase): string {
  return typeByCase.get(c)!;
}

/** Canonical type name for a legacy type (resolving aliases), or undefined when unknown. */
export function canonicalType(type: string): string | undefined {
  const c = caseForType(type);
  return c && typeForCase(c);
}
