import { create, fromBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { MetricBatchSchema, MetricEnvelopeSchema } from "../../gen/spectra/v1/metrics_pb.js";
import { encodeBatch } from "./wal-payload.js";

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
  });

  it("encodes an empty batch", () => {
    expect(fromBinary(MetricBatchSchema, encodeBatch("h", []).wal).envelopes).toEqual([]);
  });
});
