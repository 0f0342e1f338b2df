import { MetricEnvelopeSchema, type MetricEnvelope } from "../../gen/spectra/v1/metrics_pb.js";
import { fastEncodeRepeated, fastToBinary } from "../../common/proto/fast-encode.js";

/** Envelopes of one batch encoded once: each envelope's bytes (for snapshots and latest) and the WAL payload. */
export interface EncodedBatch {
  /**
   * Each envelope's bytes, as views into `wal` (so the batch is one buffer: a store that hands it to another thread
   * copies that buffer once, not the request it came from).
   */
  envelopes: Uint8Array[];
  /** A binary MetricBatch with `hostname` and `envelopes`, built from the envelope bytes without re-encoding. */
  wal: Uint8Array;
}

const ENVELOPES_FIELD = 4; // MetricBatch.envelopes
const HOSTNAME_TAG = 0x0a; // MetricBatch.hostname = 1, length-delimited
const ENVELOPE_TAG = (ENVELOPES_FIELD << 3) | 2;

/**
 * Frames the envelopes as a MetricBatch (fields 1 and 4) for the write-ahead log. `raw[i]`, when given, is envelope
 * i's exact binary encoding as it arrived (see envelopeSlices): used as is, so an agent's batch is not encoded a
 * second time; envelopes without one are encoded here.
 */
export function encodeBatch(
  hostname: string,
  envelopes: readonly MetricEnvelope[],
  raw?: readonly (Uint8Array | undefined)[],
): EncodedBatch {
  const host = Buffer.from(hostname, "utf8");
  let elements: Uint8Array[];
  let body: Uint8Array | undefined;
  if (raw && raw.length === envelopes.length) {
    elements = envelopes.map((env, i) => raw[i] ?? fastToBinary(MetricEnvelopeSchema, env));
  } else {
    const r = fastEncodeRepeated(MetricEnvelopeSchema, ENVELOPES_FIELD, envelopes);
    elements = r.elements;
    body = r.framed;
  }
  let size = 1 + varintSize(host.length) + host.length;
  if (body) size += body.length;
  else for (const e of elements) size += 1 + varintSize(e.length) + e.length;
  const out = new Uint8Array(size);
  let p = 0;
  out[p++] = HOSTNAME_TAG;
  p = writeVarint(out, p, host.length);
  out.set(host, p);
  p += host.length;
  const views: Uint8Array[] = [];
  if (body) {
    out.set(body, p);
    // fastEncodeRepeated's elements are views into `body`
    for (const e of elements) {
      const start = p + e.byteOffset - body.byteOffset;
      views.push(out.subarray(start, start + e.length));
    }
  } else {
    for (const e of elements) {
      out[p++] = ENVELOPE_TAG;
      p = writeVarint(out, p, e.length);
      out.set(e, p);
      views.push(out.subarray(p, p + e.length));
      p += e.length;
    }
  }
  return { envelopes: views, wal: out };
}

/**
 * The bytes of each `envelopes` element of a binary MetricBatch, in order, as views into `batch` (no copy, nothing
 * decoded). Undefined when the bytes are not a well-formed message at the top level (the decoder reports why).
 */
export function envelopeSlices(batch: Uint8Array): Uint8Array[] | undefined {
  const out: Uint8Array[] = [];
  let p = 0;
  const n = batch.length;
  /** A varint as a number (tags and lengths), -1 when truncated or too large for one. */
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (p >= n) return -1;
      const b = batch[p++]!;
      if (mul < 2 ** 49) v += (b & 0x7f) * mul;
      else if ((b & 0x7f) !== 0) return -1; // larger than any length this message can hold
      if (b < 0x80) return v;
      mul *= 128;
    }
    return -1;
  };
  while (p < n) {
    const tag = varint();
    if (tag < 0) return undefined;
    const wt = tag % 8;
    if (wt === 0) {
      const start = p;
      while (p < n && batch[p]! >= 0x80) p++;
      if (p >= n || p - start >= 10) return undefined;
      p++;
    } else if (wt === 1) {
      p += 8;
    } else if (wt === 5) {
      p += 4;
    } else if (wt === 2) {
      const len = varint();
      if (len < 0 || p + len > n) return undefined;
      if (Math.floor(tag / 8) === ENVELOPES_FIELD) out.push(batch.subarray(p, p + len));
      p += len;
    } else {
      return undefined; // groups are not part of this contract
    }
    if (p > n) return undefined;
  }
  return out;
}

function varintSize(n: number): number {
  let s = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    s++;
  }
  return s;
}

function writeVarint(out: Uint8Array, p: number, n: number): number {
  while (n >= 0x80) {
    out[p++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  out[p++] = n;
  return p;
}
