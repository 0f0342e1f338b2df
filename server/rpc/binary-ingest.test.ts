import { create, equals, fromBinary, fromJson, toJson } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../../gen/spectra/v1/agent_service_pb.js";
import { MetricBatchSchema, MetricEnvelopeSchema, type MetricEnvelope } from "../../gen/spectra/v1/metrics_pb.js";
import { prng, randomInit } from "../../common/proto/testing/random-messages.js";
import { startTestApp } from "../testing/app.js";
import { bearer } from "../testing/credentials.js";
import { typeForCase } from "../ingest/payload-types.js";
import { isBinaryMetricUpload, RawBatchAgentService } from "./binary-ingest.js";

let app: Awaited<ReturnType<typeof startTestApp>>;
beforeAll(async () => (app = await startTestApp()));
afterAll(async () => {
  await app.close();
  app.removeDataDir();
});

/** One random, fully valid envelope of every payload type (type and hostname left for the server to fill). */
function envelopes(seed: number, t: number): MetricEnvelope[] {
  const r = prng(seed);
  const payload = MetricEnvelopeSchema.oneofs.find((o) => o.name === "payload")!;
  return payload.fields.map((f) => {
    if (f.fieldKind !== "message") throw new Error("payload is a message");
    const value = create(f.message, randomInit(f.message, r));
    const env = create(MetricEnvelopeSchema, { timestamp: timestampFromMs(t), payload: { case: f.localName, value } as never });
    // only values JSON text can carry (no -0), so both doors get the same numbers
    return fromJson(MetricEnvelopeSchema, JSON.parse(JSON.stringify(toJson(MetricEnvelopeSchema, env))));
  });
}

describe("binary metric uploads", () => {
  it("route only binary StreamMetrics/PushMetrics requests to the raw-batch handler", () => {
    const req = (url: string, type: string) => ({ url, headers: { "content-type": type } }) as never;
    expect(isBinaryMetricUpload(req("/spectra.v1.AgentService/PushMetrics", "application/proto"))).toBe(true);
    expect(isBinaryMetricUpload(req("/spectra.v1.AgentService/StreamMetrics", "application/connect+proto"))).toBe(true);
    expect(isBinaryMetricUpload(req("/spectra.v1.AgentService/StreamMetrics", "application/grpc"))).toBe(true);
    expect(isBinaryMetricUpload(req("/spectra.v1.AgentService/PushMetrics", "application/grpc-web+proto"))).toBe(true);
    expect(isBinaryMetricUpload(req("/spectra.v1.AgentService/PushMetrics", "application/json"))).toBe(false);
    expect(isBinaryMetricUpload(req("/spectra.v1.AgentService/StreamMetrics", "application/connect+json"))).toBe(false);
    expect(isBinaryMetricUpload(req("/spectra.v1.AgentService/Register", "application/proto"))).toBe(false);
    const batchField = RawBatchAgentService.methods.find((m) => m.name === "PushMetrics")!.input.fields.find((f) => f.name === "batch");
    expect(batchField?.fieldKind === "scalar" && batchField.scalar).toBe(12); // bytes
  });

  it("stores every payload type exactly as the JSON path does, over Connect and gRPC", async () => {
    const json = createClient(AgentService, createConnectTransport({ baseUrl: app.baseUrl, httpVersion: "2", useBinaryFormat: false, interceptors: [bearer(await app.agentKey("via-json"))] }));
    const connect = createClient(AgentService, createConnectTransport({ baseUrl: app.baseUrl, httpVersion: "2", interceptors: [bearer(await app.agentKey("via-connect"))] }));
    const grpc = createClient(AgentService, createGrpcTransport({ baseUrl: app.baseUrl, interceptors: [bearer(await app.agentKey("via-grpc-stream"))] }));
    const t = Date.UTC(2026, 10, 27, 12);
    for (const [hostname, client, streaming] of [
      ["via-json", json, false],
      ["via-connect", connect, false],
      ["via-grpc-stream", grpc, true],
    ] as const) {
      const batch = create(MetricBatchSchema, { hostname, sessionId: "s", sequence: 1n, envelopes: envelopes(7, t) });
      if (streaming) {
        const res = await client.streamMetrics(
          (async function* () {
            yield { batch };
          })(),
        );
        expect(res.ackedSequences).toEqual([1n]);
      } else {
        expect((await client.pushMetrics({ batch })).storedEnvelopes).toBe(batch.envelopes.length);
      }
    }
    const viaJson = await app.services.tsdb.latest("via-json");
    expect(viaJson.length).toBeGreaterThan(15);
    for (const host of ["via-connect", "via-grpc-stream"]) {
      const got = await app.services.tsdb.latest(host);
      expect(got.map((g) => [g.type, g.key])).toEqual(viaJson.map((g) => [g.type, g.key]));
      got.forEach((g, i) => {
        const want = { ...viaJson[i]!.envelope, hostname: host };
        expect(equals(MetricEnvelopeSchema, g.envelope, want), `${host} ${g.type}`).toBe(true);
      });
      const series = app.services.tsdb.select({ hostname: host }).map((s) => `${s.metric}{${s.labelsText}}=${s.lastV}`).sort();
      const jsonSeries = app.services.tsdb.select({ hostname: "via-json" }).map((s) => `${s.metric}{${s.labelsText}}=${s.lastV}`).sort();
      expect(series).toEqual(jsonSeries);
    }
  });

  it("stores an agent's envelopes as the bytes they arrived as, without encoding them again", async () => {
    const hostname = "as-sent";
    const client = createClient(AgentService, createConnectTransport({ baseUrl: app.baseUrl, httpVersion: "2", interceptors: [bearer(await app.agentKey(hostname))] }));
    const t = Date.UTC(2026, 10, 27, 13);
    // as the agent sends them: type, hostname and timestamp set, so ingest changes nothing
    const envs = envelopes(11, t).map((e) => create(MetricEnvelopeSchema, { ...e, hostname, type: typeForCase(e.payload.case!) }));
    const store = app.services.store;
    const seen: Array<readonly (Uint8Array | undefined)[] | undefined> = [];
    const writeBatch = store.writeBatch.bind(store);
    store.writeBatch = (b) => {
      seen.push(b.encoded);
      return writeBatch(b);
    };
    try {
      const batch = create(MetricBatchSchema, { hostname, sessionId: "s", sequence: 1n, envelopes: envs });
      expect((await client.pushMetrics({ batch })).storedEnvelopes).toBe(envs.length);
    } finally {
      store.writeBatch = writeBatch;
    }
    expect(seen).toHaveLength(1);
    expect(seen[0]?.length).toBe(envs.length);
    seen[0]!.forEach((b, i) => expect(b && equals(MetricEnvelopeSchema, fromBinary(MetricEnvelopeSchema, b), envs[i]!), `envelope ${i}`).toBe(true));
    // read back: latest (memory, then stored by a flush), snapshots and series hold what was sent
    const check = async () => {
      const got = await app.services.tsdb.latest(hostname);
      expect(got.length).toBeGreaterThan(15);
      for (const g of got) {
        const sent = envs.filter((e) => e.type === g.type).find((e) => equals(MetricEnvelopeSchema, e, g.envelope));
        expect(sent, `${g.type} ${g.key}`).toBeDefined();
      }
    };
    await check();
    await app.services.tsdb.flush();
    await check();
    const snaps = await store.listEnvelopes({ hostname, limit: 100 });
    expect(snaps.length).toBeGreaterThan(0);
    for (const sn of snaps) expect(envs.some((e) => equals(MetricEnvelopeSchema, e, sn.envelope))).toBe(true);
  });
  it("keeps none of a batch's decoded messages alive while its commit is awaited", async () => {
    // What waits for a group commit is the store's encoded rows and the head's numbers (TsdbEngine.prepare), not the
    // messages: suspended handlers and stream generators keep their locals, which kept every in-flight batch alive.
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const store = app.services.store;
    const writeBatch = store.writeBatch.bind(store);
    for (const [hostname, streaming] of [
      ["held-stream", true],
      ["held-push", false],
    ] as const) {
      const client = createClient(AgentService, createConnectTransport({ baseUrl: app.baseUrl, httpVersion: "2", interceptors: [bearer(await app.agentKey(hostname))] }));
      const refs: Array<WeakRef<object>> = [];
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      let entered!: () => void;
      const inWrite = new Promise<void>((r) => (entered = r));
      store.writeBatch = (b) => {
        refs.push(new WeakRef(b.envelopes), new WeakRef(b.envelopes[0]!));
        const written = writeBatch(b);
        entered();
        return held.then(() => written);
      };
      try {
        const batch = create(MetricBatchSchema, { hostname, sessionId: "s", sequence: 1n, envelopes: envelopes(5, Date.UTC(2026, 10, 27, 14)) });
        const acked = streaming
          ? client.streamMetrics((async function* () { yield { batch }; })()).then((r) => r.ackedSequences)
          : client.pushMetrics({ batch }).then((r) => [r.ackedSequence]);
        await inWrite;
        for (let i = 0; i < 3; i++) {
          await new Promise((r) => setTimeout(r, 10));
          gc();
        }
        expect(refs.map((r) => r.deref() === undefined), hostname).toEqual([true, true]);
        release();
        expect(await acked).toEqual([1n]);
      } finally {
        store.writeBatch = writeBatch;
      }
      expect((await app.services.tsdb.latest(hostname)).length).toBeGreaterThan(15);
    }
  });
});
