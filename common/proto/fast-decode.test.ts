import { create, equals, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { MetricBatchSchema, MetricEnvelopeSchema } from "../../gen/spectra/v1/metrics_pb.js";
import { contractFiles, prng, randomInit } from "./testing/random-messages.js";
import { fastFromBinary } from "./fast-decode.js";

describe("fastFromBinary", () => {
  for (const file of contractFiles) {
    for (const desc of file.messages) {
      it(`${desc.typeName}: decodes random messages exactly as fromBinary does`, () => {
        const r = prng(desc.typeName.length * 104729);
        for (let i = 0; i < 40; i++) {
          const msg = create(desc, randomInit(desc, r));
          const bytes = toBinary(desc, msg);
          const mine = fastFromBinary(desc, bytes);
          expect(equals(desc, mine, msg), `${desc.typeName} #${i}`).toBe(true);
          // same shape as protobuf-es's own result, field by field (defaults, undefined, oneof objects)
          expect(mine).toStrictEqual(fromBinary(desc, bytes));
        }
      });
    }
  }

  it("accepts unpacked repeated scalars, merges a message field seen twice, skips unknown fields", () => {
    // cpu.cores = 2 unpacked: tag (2<<3|1) + 8 bytes, twice
    const f64 = (v: number) => {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setFloat64(0, v, true);
      return [...b];
    };
    const cpu = [0x11, ...f64(1.5), 0x11, ...f64(2.5), 0xf8, 0x07, 0x01 /* unknown field 127 varint */];
    const env = [0x52, cpu.length, ...cpu];
    const m = fastFromBinary(MetricEnvelopeSchema, Uint8Array.from(env));
    expect(m.payload.case === "cpu" && m.payload.value.cores).toEqual([1.5, 2.5]);
    // timestamp (field 2) sent in two parts: seconds, then nanos: merged
    const ts = Uint8Array.from([0x12, 0x02, 0x08, 0x05, 0x12, 0x02, 0x10, 0x07]);
    const t = fastFromBinary(MetricEnvelopeSchema, ts).timestamp;
    expect([t?.seconds, t?.nanos]).toEqual([5n, 7]);
  });

  it("decodes short strings through its cache exactly: hits, collisions, non-ASCII, lengths around the limit", () => {
    // 20,000 distinct names (far more than the cache's 4,096 entries, so entries collide and are replaced),
    // decoded three times over in different orders; every decoded string equals what was encoded.
    const names = Array.from({ length: 20_000 }, (_, i) => `dev-${i.toString(36)}-${"x".repeat(i % 50)}`);
    names.push("", "é", "naïve-ünïcode", "日本語のディスク", "a".repeat(47), "a".repeat(48), "a".repeat(49), "b".repeat(200));
    const encode = (hostname: string) => toBinary(MetricBatchSchema, create(MetricBatchSchema, { hostname }));
    const encoded = names.map(encode);
    for (const order of [names.keys(), [...names.keys()].reverse(), [...names.keys()].map((i) => (i * 7919) % names.length)]) {
      for (const i of order) expect(fastFromBinary(MetricBatchSchema, encoded[i]!).hostname).toBe(names[i]);
    }
    // a string that differs from a cached one only in its last byte is not taken for it
    expect(fastFromBinary(MetricBatchSchema, encode("sda1")).hostname).toBe("sda1");
    expect(fastFromBinary(MetricBatchSchema, encode("sda2")).hostname).toBe("sda2");
    expect(fastFromBinary(MetricBatchSchema, encode("sda1")).hostname).toBe("sda1");
  });

  it("throws on truncated or malformed input and never reads past the end", () => {
    const batch = create(MetricBatchSchema, {
      hostname: "web-01",
      envelopes: [create(MetricEnvelopeSchema, { type: "cpu", payload: { case: "cpu", value: { usage: 1, cores: [1, 2, 3] } } })],
    });
    const bytes = toBinary(MetricBatchSchema, batch);
    for (let cut = 1; cut < bytes.length; cut++) {
      let threw = false;
      try {
        fastFromBinary(MetricBatchSchema, bytes.subarray(0, cut));
      } catch {
        threw = true;
      }
      // protobuf-es rejects the same prefixes
      let pbThrew = false;
      try {
        fromBinary(MetricBatchSchema, bytes.subarray(0, cut));
      } catch {
        pbThrew = true;
      }
      expect(threw, `cut at ${cut}`).toBe(pbThrew);
    }
    expect(() => fastFromBinary(MetricBatchSchema, Uint8Array.from([0x0a, 0x05, 0x61]))).toThrow(/premature end/);
    expect(() => fastFromBinary(MetricBatchSchema, Uint8Array.from([0x0b]))).toThrow(/wire type/);
  });
});
