import { describe, expect, it } from "vitest";
import { create, fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { gunzipSync } from "node:zlib";
import { StreamMetricsRequestSchema } from "../../gen/spectra/v1/agent_service_pb.js";
import { MetricBatchSchema } from "../../gen/spectra/v1/metrics_pb.js";
import { envelopesFromLegacy } from "../../server/rest/legacy-json.js";
import { flattenEnvelope, type SeriesGroup } from "../../server/tsdb/flatten/flatten.js";
import { ErrorTally, inWindow, latencyStats, mergeErrors, summarizeDelivery, type Trigger } from "./fleet-report.js";
import { isLegacy, spread } from "./fleet-agent.js";
import { batchOfRequest, LegacyBodies, legacyJson, legacyMetricsBody } from "./legacy-body.js";
import { buildPool, poolAgents } from "./pool.js";

describe("summarizeDelivery", () => {
  const t = (id: string | undefined, at: number): Trigger => ({ id, hostname: "h", at });

  it("counts delivered, lost, duplicated and failed triggers, with latency from the first arrival", () => {
    const d = summarizeDelivery(
      [t("a", 100), t("b", 200), t("c", 300), t(undefined, 400)],
      [
        ["a", 105],
        ["b", 260],
        ["b", 250],
        ["x", 1],
      ],
    );
    expect(d).toEqual({ triggered: 4, failedTriggers: 1, delivered: 2, lost: 1, duplicates: 1, otherArrivals: 1, latencies: [5, 50] });
  });
});

describe("ErrorTally", () => {
  it("counts by kind and keeps the first five distinct messages", () => {
    const e = new ErrorTally();
    for (let i = 0; i < 7; i++) e.add("poll", new Error(`m${i}`));
    e.add("poll", new Error("m0"));
    e.add("stream", new ConnectError("slow down", Code.ResourceExhausted));
    const s = e.summary();
    expect(s.total).toBe(9);
    expect(s.byKind["poll"]!.count).toBe(8);
    expect(s.byKind["poll"]!.first).toEqual([
      ["m0", 2],
      ["m1", 1],
      ["m2", 1],
      ["m3", 1],
      ["m4", 1],
    ]);
    expect(s.byKind["stream"]!.first[0]![0]).toBe(`[${Code.ResourceExhausted}] slow down`);
    const m = mergeErrors([s, s]);
    expect(m.total).toBe(18);
    expect(m.byKind["poll"]!.first[0]).toEqual(["m0", 4]);
  });
});

describe("latency helpers", () => {
  it("takes nearest-rank percentiles of the values inside a window", () => {
    const at = [0, 10, 20, 30, 40];
    const v = [1, 2, 3, 4, 5];
    expect(inWindow(at, v, 10, 40)).toEqual([2, 3, 4]);
    expect(latencyStats([4, 2, 3])).toEqual({ n: 3, p50: 3, p99: 4, max: 4 });
    expect(latencyStats([]).n).toBe(0);
  });
});

describe("fleet shares", () => {
  it("makes a tenth of the ids legacy senders, spread evenly", () => {
    const ids = Array.from({ length: 1000 }, (_, i) => i);
    expect(ids.filter((i) => isLegacy(i, 0.1)).length).toBe(100);
    expect(ids.filter((i) => i < 100 && isLegacy(i, 0.1)).length).toBe(10);
    expect(ids.filter((i) => isLegacy(i, 0)).length).toBe(0);
  });

  it("spreads first windows over [0, 1)", () => {
    const xs = Array.from({ length: 1000 }, (_, i) => spread(i));
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    // each tenth of the range gets some
    for (let d = 0; d < 10; d++) expect(xs.filter((x) => Math.floor(x * 10) === d).length).toBeGreaterThan(50);
  });
});

describe("legacy metrics body", () => {
  it("carries the same samples as the Connect batch through the server's legacy decoding", () => {
    const { templates } = buildPool({ templates: 1, batchEnvelopes: 0, vmFormat: undefined });
    const [agent] = poolAgents(templates, 1, Date.UTC(2026, 10, 27), "t");
    const groups: SeriesGroup[] = [];
    const count = (envs: Parameters<typeof flattenEnvelope>[0][]) => {
      let n = 0;
      for (const e of envs) {
        groups.length = 0;
        flattenEnvelope(e, groups);
        for (const g of groups) for (const v of g.values) if (!Number.isNaN(v)) n++;
      }
      return n;
    };
    // the first batches of the cycle hold the hourly collectors (300 applications, update status) too
    for (let i = 0; i < 13; i++) {
      const next = agent!.nextRequest();
      const batch = batchOfRequest(next.req);
      expect(batch.hostname).toBe(agent!.hostname);
      const { hostname, body } = legacyMetricsBody(next.req);
      expect(hostname).toBe(agent!.hostname);
      const decoded = envelopesFromLegacy(JSON.parse(gunzipSync(body).toString("utf8")), hostname);
      expect(decoded.ignored).toEqual([]);
      expect(decoded.envelopes.map((e) => e.type)).toEqual(batch.envelopes.map((e) => e.type));
      expect(count(decoded.envelopes)).toBe(next.samples);
    }
  });

  it("LegacyBodies gives the same JSON as encoding each batch, for every agent and cycle of a template", () => {
    const { templates } = buildPool({ templates: 2, batchEnvelopes: 0, vmFormat: undefined });
    const agents = poolAgents(templates, 6, Date.UTC(2026, 10, 27), "t");
    const bodies = new LegacyBodies();
    // two 10-minute cycles and then some: the first holds the hourly collectors, the second not, the third again not
    for (let i = 0; i < 260; i++) {
      for (const a of agents) {
        const b = a.nextBatch();
        const json = bodies.json(a.hostname, b.data, b.template, b.shiftSec);
        if (i % 7 === 0 || i < 13) expect(json).toBe(legacyJson(fromBinary(MetricBatchSchema, b.data)));
      }
    }
    const b = agents[3]!.nextBatch();
    const body = bodies.body(agents[3]!.hostname, b.data, b.template, b.shiftSec);
    expect(gunzipSync(body).toString("utf8")).toBe(legacyJson(fromBinary(MetricBatchSchema, b.data)));
  });

  it("reads a batch set as a field as well", () => {
    const req = create(StreamMetricsRequestSchema, { batch: create(MetricBatchSchema, { hostname: "h1" }) });
    expect(batchOfRequest(req).hostname).toBe("h1");
  });
});
