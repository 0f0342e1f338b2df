import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { MetricBatchSchema, MetricEnvelopeSchema } from "../../gen/spectra/v1/metrics_pb.js";
import { prng, randomInit } from "../../common/proto/testing/random-messages.js";
import { encodeBatch, envelopeSlices } from "./wal-payload.js";

describe("encodeBatch", () => {
  it("frames envelopes as a MetricBatch that decodes to the same envelopes", () => {
    const envs = Array.from({ length: 30 }, (_, i) =>
      create(MetricEnvelopeSchema, {
        type: "disk",
        hostname: "h",
        timestamp: timestampFromMs(1_700_000_000_000 + i),
        // a long mountpoint makes some envelopes longer than 127 bytes (two-byte length varint)
        payload: { case: "disk", value: { mountpoint: "/m".repeat(i * 3), diskUsed: BigInt(i) << 40n, diskUsedPct: i / 3 } },
      }),
    );
    const enc = encodeBatch("höst-ü", envs);
    expect(enc.envelopes).toHaveLength(30);
    const back = fromBinary(MetricBatchSchema, enc.wal);
    expect(back.hostname).toBe("höst-ü");
    expect(back.envelopes).toEqual(envs);
    // each envelope's bytes are a view into the payload, and decode to that envelope
    enc.envelopes.forEach((e, i) => {
      expect(e.buffer).toBe(enc.wal.buffer);
      expect(fromBinary(MetricEnvelopeSchema, e)).toEqual(envs[i]);
    });
  });

  it("encodes an empty batch", () => {
    expect(fromBinary(MetricBatchSchema, encodeBatch("h", []).wal).envelopes).toEqual([]);
  });
});

describe("envelopeSlices and encodeBatch with the bytes as they arrived", () => {
  it("finds every envelope of random batches, in order, and frames them unchanged", () => {
    const r = prng(42);
    for (let i = 0; i < 300; i++) {
      const batch = create(MetricBatchSchema, randomInit(MetricBatchSchema, r) as never);
      const bytes = toBinary(MetricBatchSchema, batch);
      const slices = envelopeSlices(bytes)!;
      expect(slices.map((s) => fromBinary(MetricEnvelopeSchema, s))).toEqual(batch.envelopes);
      // some envelopes with their bytes, some without (changed by ingest): the same batch either way
      const raw = slices.map((s, k) => (k % 2 === 0 ? s : undefined));
      const enc = encodeBatch("h", batch.envelopes, raw);
      expect(fromBinary(MetricBatchSchema, enc.wal).envelopes).toEqual(batch.envelopes);
      slices.forEach((s, k) => {
        expect(enc.envelopes[k]!.buffer).toBe(enc.wal.buffer);
        if (k % 2 === 0) expect(enc.envelopes[k]).toEqual(s);
      });
    }
  });

  it("rejects bytes that are not a well-formed message", () => {
    expect(envelopeSlices(Uint8Array.of(0x22, 0x05, 0x01))).toBeUndefined(); // length past the end
    expect(envelopeSlices(Uint8Array.of(0x23))).toBeUndefined(); // group wire type
    expect(envelopeSlices(Uint8Array.of(0x08, 0xff))).toBeUndefined(); // truncated varint
    expect(envelopeSlices(new Uint8Array(0))).toEqual([]);
  });
});
