import { toBinary } from "@bufbuild/protobuf";
import { MetricEnvelopeSchema, type MetricEnvelope } from "../../gen/spectra/v1/metrics_pb.js";

/** Envelopes of one batch encoded once: each envelope's bytes (for snapshots and latest) and the WAL payload. */
export interface EncodedBatch {
  envelopes: Uint8Array[];
  /** A binary MetricBatch with `hostname` and `envelopes`, built from the envelope bytes without re-encoding. */
  wal: Uint8Array;
}

/** Encodes every envelope once and frames them as a MetricBatch (fields 1 and 4) for the write-ahead log. */
export function encodeBatch(hostname: string, envelopes: readonly MetricEnvelope[]): EncodedBatch {
  const host = Buffer.from(hostname, "utf8");
  const encoded = envelopes.map((e) => toBinary(MetricEnvelopeSchema, e));
  let size = 1 + varintSize(host.length) + host.length;
  for (const b of encoded) size += 1 + varintSize(b.length) + b.length;
  const out = new Uint8Array(size);
  let pos = 0;
  const field = (tag: number, bytes: Uint8Array) => {
    out[pos++] = tag;
    let n = bytes.length;
    while (n >= 0x80) {
      out[pos++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    out[pos++] = n;
    out.set(bytes, pos);
    pos += bytes.length;
  };
  field(0x0a, host); // MetricBatch.hostname = 1, length-delimited
  for (const b of encoded) field(0x22, b); // MetricBatch.envelopes = 4, length-delimited
  return { envelopes: encoded, wal: out };
}

function varintSize(n: number): number {
  let s = 1;
  while (n >= 0x80) {
    n >>>= 7;
    s++;
  }
  return s;
}
