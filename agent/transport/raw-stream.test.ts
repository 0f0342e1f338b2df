import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import { compressionGzip, connectNodeAdapter, createConnectTransport, createNodeHttpClient, Http2SessionManager } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import {
  AgentService,
  StreamMetricsRequestSchema,
  StreamMetricsResponseSchema,
  type StreamMetricsRequest,
} from "../../gen/spectra/v1/agent_service_pb.js";
import { MetricBatchSchema, MetricEnvelopeSchema } from "../../gen/spectra/v1/metrics_pb.js";
import { createRawClientStream, type RawClientStreamFn } from "./raw-stream.js";
import { encodeRequestWithBatch } from "./sender.js";

/** A MetricBatch of `n` envelopes, encoded (what the spool holds). */
function batchBytes(sequence: number, n = 1, hostname = "h1"): Uint8Array {
  return toBinary(
    MetricBatchSchema,
    create(MetricBatchSchema, {
      sessionId: "s1",
      sequence: BigInt(sequence),
      envelopes: Array.from({ length: n }, (_, i) =>
        create(MetricEnvelopeSchema, { type: "memory", hostname: `${hostname}-${i}`, payload: { case: "memory", value: { ramTotal: BigInt(i), ramUsedPct: 12.5 } } }),
      ),
    }),
  );
}

async function* from(items: Uint8Array[], between?: () => Promise<void>): AsyncGenerator<Uint8Array> {
  for (const item of items) {
    if (between) await between();
    yield item;
  }
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function listen(server: http2.Http2Server): Promise<string> {
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => sessions.add(s));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A connect-node AgentService whose StreamMetrics records what it received. */
async function connectServer(streamMetrics: ServiceImpl<typeof AgentService>["streamMetrics"]): Promise<string> {
  const handler = connectNodeAdapter({
    routes: (router) => router.service(AgentService, { streamMetrics }),
    acceptCompression: [compressionGzip],
    readMaxBytes: 16 << 20,
  });
  return listen(http2.createServer(handler));
}

function rawClient(baseUrl: string, interceptors: Interceptor[] = [], writeMaxBytes = 16 << 20): RawClientStreamFn {
  const manager = new Http2SessionManager(baseUrl);
  cleanups.push(() => manager.abort());
  return createRawClientStream({
    baseUrl,
    httpClient: createNodeHttpClient({ httpVersion: "2", sessionProvider: () => manager }),
    interceptors,
    sendCompression: compressionGzip,
    compressMinBytes: 1024,
    acceptCompression: [compressionGzip],
    readMaxBytes: 16 << 20,
    writeMaxBytes,
  });
}

const streamMetrics = AgentService.method.streamMetrics;

describe("createRawClientStream (StreamMetrics with pre-encoded messages)", () => {
  it("delivers each message to a connect server as the request it encodes, and returns the response", async () => {
    const received: StreamMetricsRequest[] = [];
    let gzipHeader: string | null = "";
    const url = await connectServer(async (requests, ctx) => {
      gzipHeader = ctx.requestHeader.get("connect-content-encoding");
      for await (const r of requests) received.push(r);
      return { ackedSequences: received.map((r) => r.batch!.sequence), rejectedReason: "none" };
    });
    // A small batch (sent as is), a large one (>= 1 KiB: gzipped) and another small one, with waits between them.
    const batches = [batchBytes(1), batchBytes(2, 200), batchBytes(3)];
    expect(batches[1]!.byteLength).toBeGreaterThan(1024);
    const res = await rawClient(url)(streamMetrics, from(batches.map((data) => encodeRequestWithBatch({ data })), () => new Promise((r) => setTimeout(r, 20))), {
      timeoutMs: 10_000,
    });
    expect(res.ackedSequences).toEqual([1n, 2n, 3n]);
    expect(res.rejectedReason).toBe("none");
    expect(received.map((r) => r.batch?.envelopes.length)).toEqual([1, 200, 1]);
    expect(received[1]!.batch!.envelopes[199]!.hostname).toBe("h1-199");
    expect(gzipHeader).toBe("gzip");
  });

  it("writes the bytes connect-es writes: 5-byte envelopes, gzip flag from 1 KiB, the same headers", async () => {
    // A plain HTTP/2 server that records the raw request and answers with a valid Connect streaming response.
    const seen: { headers: http2.IncomingHttpHeaders; body: Buffer }[] = [];
    const server = http2.createServer();
    server.on("stream", (stream, headers) => {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        seen.push({ headers, body: Buffer.concat(chunks) });
        const msg = toBinary(StreamMetricsResponseSchema, create(StreamMetricsResponseSchema, { ackedSequences: [7n] }));
        const end = Buffer.from("{}");
        const out = Buffer.alloc(5 + msg.length + 5 + end.length);
        out[0] = 0;
        out.writeUInt32BE(msg.length, 1);
        out.set(msg, 5);
        out[5 + msg.length] = 2;
        out.writeUInt32BE(end.length, 6 + msg.length);
        end.copy(out, 10 + msg.length);
        stream.respond({ ":status": 200, "content-type": "application/connect+proto" });
        stream.end(out);
      });
    });
    const url = await listen(server);
    const small = batchBytes(1);
    const large = batchBytes(2, 200);

    // The same two requests through connect-es's own client, then through the raw stream.
    const manager = new Http2SessionManager(url);
    cleanups.push(() => manager.abort());
    const client = createClient(
      AgentService,
      createConnectTransport({ baseUrl: url, httpVersion: "2", sessionManager: manager, sendCompression: compressionGzip, compressMinBytes: 1024, acceptCompression: [compressionGzip], useBinaryFormat: true }),
    );
    async function* messages(): AsyncGenerator<StreamMetricsRequest> {
      yield create(StreamMetricsRequestSchema, { batch: fromBinaryBatch(small) });
      yield create(StreamMetricsRequestSchema, { batch: fromBinaryBatch(large) });
    }
    const viaConnect = await client.streamMetrics(messages(), { timeoutMs: 10_000 });
    const viaRaw = await rawClient(url)(streamMetrics, from([encodeRequestWithBatch({ data: small }), encodeRequestWithBatch({ data: large })]), { timeoutMs: 10_000 });
    expect(viaConnect.ackedSequences).toEqual([7n]);
    expect(viaRaw.ackedSequences).toEqual([7n]);

    const [a, b] = seen;
    // Headers: the same names and values (the timeout is what was left of it when sent).
    const strip = (h: http2.IncomingHttpHeaders) => {
      const { "connect-timeout-ms": timeout, ...rest } = h;
      expect(Number(timeout)).toBeGreaterThan(9_000);
      return rest;
    };
    expect(strip(b!.headers)).toEqual(strip(a!.headers));
    expect(b!.headers[":path"]).toBe("/spectra.v1.AgentService/StreamMetrics");
    expect(b!.headers["content-type"]).toBe("application/connect+proto");
    expect(b!.headers["connect-content-encoding"]).toBe("gzip");

    // The body: envelope by envelope, the uncompressed one byte for byte as connect-es's, the gzipped one equal
    // once decompressed (gzip output may differ in its header bytes).
    const envelopes = (body: Buffer) => {
      const out: { flags: number; data: Buffer }[] = [];
      for (let i = 0; i < body.length; ) {
        const len = body.readUInt32BE(i + 1);
        out.push({ flags: body[i]!, data: body.subarray(i + 5, i + 5 + len) });
        i += 5 + len;
      }
      return out;
    };
    const ea = envelopes(a!.body);
    const eb = envelopes(b!.body);
    expect(eb.map((e) => e.flags)).toEqual([0, 1]);
    expect(ea.map((e) => e.flags)).toEqual([0, 1]);
    expect(eb[0]!.data).toEqual(ea[0]!.data);
    expect(gunzipSync(eb[1]!.data)).toEqual(gunzipSync(ea[1]!.data));
    expect(new Uint8Array(eb[0]!.data)).toEqual(toBinary(StreamMetricsRequestSchema, create(StreamMetricsRequestSchema, { batch: fromBinaryBatch(small) })));
  });

  it("passes the server's error on with its code, as connect's client does", async () => {
    const url = await connectServer(async (requests) => {
      for await (const _ of requests) throw new ConnectError("not you", Code.PermissionDenied);
      return {};
    });
    const err = await rawClient(url)(streamMetrics, from([encodeRequestWithBatch({ data: batchBytes(1) })]), { timeoutMs: 10_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.PermissionDenied);
    expect((err as ConnectError).rawMessage).toBe("not you");
  });

  it("runs the interceptors (the agent's key goes in as a header)", async () => {
    let auth: string | null = null;
    const url = await connectServer(async (requests, ctx) => {
      auth = ctx.requestHeader.get("authorization");
      for await (const _ of requests);
      return {};
    });
    const interceptor: Interceptor = (next) => async (req) => {
      req.header.set("authorization", "Bearer k1");
      return await next(req);
    };
    await rawClient(url, [interceptor])(streamMetrics, from([encodeRequestWithBatch({ data: batchBytes(1) })]), { timeoutMs: 10_000 });
    expect(auth).toBe("Bearer k1");
  });

  it("ends with DeadlineExceeded when the deadline passes, and Canceled when aborted", async () => {
    const url = await connectServer(async (requests) => {
      for await (const _ of requests);
      return {};
    });
    const never = (signal?: AbortSignal) =>
      (async function* (): AsyncGenerator<Uint8Array> {
        yield encodeRequestWithBatch({ data: batchBytes(1) });
        await new Promise((r) => (signal ? signal.addEventListener("abort", r) : setTimeout(r, 2_000)));
      })();
    const timedOut = await rawClient(url)(streamMetrics, never(), { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(ConnectError.from(timedOut).code).toBe(Code.DeadlineExceeded);

    const abort = new AbortController();
    setTimeout(() => abort.abort(), 100);
    const aborted = await rawClient(url)(streamMetrics, never(abort.signal), { signal: abort.signal, timeoutMs: 10_000 }).catch((e: unknown) => e);
    expect(ConnectError.from(aborted).code).toBe(Code.Canceled);
  });

  it("refuses a message over writeMaxBytes with ResourceExhausted", async () => {
    const url = await connectServer(async (requests) => {
      for await (const _ of requests);
      return {};
    });
    const err = await rawClient(url, [], 100)(streamMetrics, from([encodeRequestWithBatch({ data: batchBytes(1, 20) })]), { timeoutMs: 10_000 }).catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.ResourceExhausted);
  });

  it("reports an unreachable server as connect's client does (the cause keeps the network code)", async () => {
    const err = await rawClient("http://127.0.0.1:1")(streamMetrics, from([encodeRequestWithBatch({ data: batchBytes(1) })]), { timeoutMs: 5_000 }).catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.Unavailable);
    const chain: unknown[] = [];
    for (let e: unknown = err; e instanceof Error && chain.length < 5; e = e.cause) chain.push((e as { code?: unknown }).code);
    expect(chain).toContain("ECONNREFUSED");
  });
});

/** A spooled batch decoded, for connect-es's side of a comparison. */
function fromBinaryBatch(data: Uint8Array) {
  return fromBinary(MetricBatchSchema, data);
}
