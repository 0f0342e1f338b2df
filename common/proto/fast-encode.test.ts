import { create, equals, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { MetricBatchSchema, MetricEnvelopeSchema } from "../../gen/spectra/v1/metrics_pb.js";
import { contractFiles, prng, randomInit } from "./testing/random-messages.js";
import { fastEncodeRepeated, fastToBinary } from "./fast-encode.js";

describe("fastToBinary", () => {
  for (const file of contractFiles) {
    for (const desc of file.messages) {
      it(`${desc.typeName}: random messages decode to equal messages, as toBinary's do`, () => {
        const r = prng(desc.typeName.length * 7919);
        for (let i = 0; i < 40; i++) {
          const msg = create(desc, randomInit(desc, r));
          const bytes = fastToBinary(desc, msg);
          const back = fromBinary(desc, bytes);
          expect(equals(desc, back, msg), `${desc.typeName} #${i}`).toBe(true);
          expect(equals(desc, back, fromBinary(desc, toBinary(desc, msg)))).toBe(true);
        }
      });
    }
  }

  it("writes the same bytes as toBinary for a typical envelope", () => {
    const env = create(MetricEnvelopeSchema, {
      type: "disk",
      hostname: "web-01",
      timestamp: { seconds: 1_770_036_520n, nanos: 123_000_000 },
      payload: { case: "disk", value: { device: "/dev/sda1", mountpoint: "/", diskTotal: 512110190592n, diskUsedPct: 12.5, inodesTotal: 0n } },
    });
    expect(fastToBinary(MetricEnvelopeSchema, env)).toEqual(toBinary(MetricEnvelopeSchema, env));
  });
});

describe("fastEncodeRepeated", () => {
  it("frames messages as a repeated field and returns each element's bytes", () => {
    const r = prng(42);
    const envs = Array.from({ length: 25 }, () => create(MetricEnvelopeSchema, randomInit(MetricEnvelopeSchema, r)));
    const { framed, elements } = fastEncodeRepeated(MetricEnvelopeSchema, 4, envs);
    const batch = fromBinary(MetricBatchSchema, framed);
    expect(batch.envelopes).toHaveLength(25);
    batch.envelopes.forEach((e, i) => expect(equals(MetricEnvelopeSchema, e, envs[i]!)).toBe(true));
    elements.forEach((b, i) => expect(equals(MetricEnvelopeSchema, fromBinary(MetricEnvelopeSchema, b), envs[i]!)).toBe(true));
  });
});
