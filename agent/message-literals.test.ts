// The agent builds the messages it sends every few seconds as object literals instead of protobuf-es's `create()`
// (scheduler.ts toEnvelopes, the core collectors' payloads): the interpreter-only agent spent a sizeable share of
// each tick in `create()`'s reflection (docs/benchmarks.md, "Agent footprint"). These must stay the messages
// `create()` makes: equal field by field, encoded to the same bytes, and recognised as their type.
import { create, equals, isMessage, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { TimestampSchema, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { fastToBinary } from "../common/proto/fast-encode.js";
import {
  CpuMetricsSchema,
  DiskIoMetricsSchema,
  MemoryMetricsSchema,
  MetricEnvelopeSchema,
  NetworkMetricsSchema,
} from "../gen/spectra/v1/metrics_pb.js";
import { diskIoPayload } from "./collectors/disk-io/payload.js";
import { memoryPayload } from "./collectors/memory/payload.js";
import { networkPayload } from "./collectors/network/payload.js";
import type { Payload } from "./collectors/types.js";
import { timestampLiteral, toEnvelopes } from "./scheduler.js";

function sameAsCreated(schema: DescMessage, literal: object): void {
  const made = create(schema, literal as never);
  expect(isMessage(literal, schema)).toBe(true);
  expect(equals(schema, literal as never, made)).toBe(true);
  expect(Object.keys(literal).sort()).toEqual(Object.keys(made).sort());
  expect(toBinary(schema, literal as never)).toEqual(toBinary(schema, made));
}

describe("messages written as object literals", () => {
  const payloads: Payload[] = [
    memoryPayload({ ramTotal: 8e9, ramUsed: 3e9, ramAvailable: 5e9, ramUsedPct: 37.5, swapTotal: 0, swapUsed: 0, swapPct: 0 }),
    diskIoPayload(
      "sda",
      { readBytesPerSec: 1024, writeBytesPerSec: 2048.4, readOpsPerSec: 1.5, writeOpsPerSec: 2.25, readTimeMs: 3, writeTimeMs: 4, readLatencyMs: 0.5, writeLatencyMs: 0.25, awaitMs: 0.4, utilPct: 1.5 },
      2,
    ),
    networkPayload("eth0", { deltas: [500, 10, 0, 1, 1000, 15, 0, 0], perSecond: [100, 2, 0, 0.2, 200, 3, 0, 0] }, { mac: "aa:bb:cc:dd:ee:ff", mtu: 1500, speedMbps: 1000 }),
    { case: "cpu", value: { $typeName: "spectra.v1.CpuMetrics", usage: 12.5, cores: [10, 15], iowait: 0.5, steal: 0, load1m: 0.1, load5m: 0.2, load15m: 0.3 } },
  ];

  it("payloads equal what create() makes", () => {
    const schemas: Record<string, DescMessage> = { memory: MemoryMetricsSchema, diskIo: DiskIoMetricsSchema, network: NetworkMetricsSchema, cpu: CpuMetricsSchema };
    for (const p of payloads) sameAsCreated(schemas[p.case]!, p.value);
  });

  it("envelopes and their timestamp equal what create() and timestampFromMs make, and encode the same", () => {
    for (const ms of [1_764_000_000_123, 1_764_000_000_000, 0]) {
      sameAsCreated(TimestampSchema, timestampLiteral(ms));
      expect(equals(TimestampSchema, timestampLiteral(ms), timestampFromMs(ms))).toBe(true);
    }
    const envelopes = toEnvelopes(payloads, "web-01", 1_764_000_000_123);
    expect(envelopes).toHaveLength(payloads.length);
    for (const [i, e] of envelopes.entries()) {
      const made = create(MetricEnvelopeSchema, { type: e.type, timestamp: timestampFromMs(1_764_000_000_123), hostname: "web-01", payload: payloads[i]! });
      sameAsCreated(MetricEnvelopeSchema, e);
      expect(equals(MetricEnvelopeSchema, e, made)).toBe(true);
      expect(fastToBinary(MetricEnvelopeSchema, e)).toEqual(toBinary(MetricEnvelopeSchema, made));
    }
  });
});
