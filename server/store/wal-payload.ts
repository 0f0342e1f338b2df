import { MetricEnvelopeSchema, type MetricEnvelope } from "../../gen/spectra/v1/metrics_pb.js";
import { fastEncodeRepeated } from "../../common/proto/fast-encode.js";

/** Envelopes of one batch encoded once: each envelope's bytes (for snapshots and latest) and the WAL payload. */
export interface EncodedBatch {
  envelopes: Uint8Array[];
  /** A binary MetricBatch with `hostname` and `envelopes`, built from the envelope bytes without re-encoding. */
  wal: Uint8Array;
}

/** Encodes every envelope once and frames them as a MetricBatch (fields 1 and 4) for the write-ahead log. */
export function encodeBatch(hostname: string, envelopes: readonly MetricEnvelope[]): EncodedBatch {
  const host = Buffer.from(hostname, "utf8");
  const { framed, elements } = fastEncodeRepeated(MetricEnvelopeSchema, 4, envelopes);
  const head: number[] = [0x0a]; // MetricBatch.hostname = 1, length-delimited
  for (let n = host.length; ; n >>>= 7) {
    if (n < 0x80) {
      head.push(n);
      break;
    }
    head.push((n & 0x7f) | 0x80);
  }
  const out = new Uint8Array(head.length + host.length + framed.length);
  out.set(head, 0);
  out.set(host, head.length);
  out.set(framed, head.length + host.length);
  return { envelopes: elements, wal: out };
}
