import http from "node:http";
import http2 from "node:http2";
import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { compressionGzip, connectNodeAdapter } from "@connectrpc/connect-node";
import { pino } from "pino";
import type { Logger } from "../../common/logger.js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AgentService } from "../../gen/spectra/v1/agent_service_pb.js";
import { MetricEnvelopeSchema, type MetricBatch } from "../../gen/spectra/v1/metrics_pb.js";
import { createBackoff } from "./backoff.js";
import { classifyError, createAgentConnection, type AgentConnection } from "./client.js";
import { createSender, type Sender } from "./sender.js";
import { openSpool, type Spool } from "./spool.js";

/** A real AgentService on 127.0.0.1 that stores each (session, sequence) once, like the server's contract. */
interface TestServer {
  port: number;
  url: string;
  stores: Map<string, number>;
  duplicates: number;
  streams: number;
  pushes: number;
  gzipSeen: boolean;
  reject: Set<bigint>;
  close(): Promise<void>;
}

async function startServer(kind: "h2" | "h1", port = 0, shared?: Pick<TestServer, "stores" | "reject">): Promise<TestServer> {
  const state = {
    stores: shared?.stores ?? new Map<string, number>(),
    reject: shared?.reject ?? new Set<bigint>(),
    duplicates: 0,
    streams: 0,
    pushes: 0,
    gzipSeen: false,
  };
  const store = (batch: MetricBatch): "stored" | "duplicate" | "rejected" => {
    if (state.reject.has(batch.sequence)) return "rejected";
    const key = `${batch.sessionId}/${batch.sequence}`;
    if (state.stores.has(key)) {
      state.duplicates++;
      return "duplicate";
    }
    state.stores.set(key, batch.envelopes.length);
    return "stored";
  };
  const impl: Partial<ServiceImpl<typeof AgentService>> = {
    async register() {
      return {};
    },
    async streamMetrics(requests, ctx) {
      state.streams++;
      if (ctx.requestHeader.get("connect-content-encoding") === "gzip") state.gzipSeen = true;
      const acked: bigint[] = [];
      const rejected: bigint[] = [];
      for await (const req of requests) {
        if (!req.batch) continue;
        (store(req.batch) === "rejected" ? rejected : acked).push(req.batch.sequence);
      }
      return { ackedSequences: acked, rejectedSequences: rejected, rejectedReason: rejected.length ? "envelope hostname mismatch" : "" };
    },
    async pushMetrics(req) {
      state.pushes++;
      if (!req.batch) throw new ConnectError("batch missing", Code.InvalidArgument);
      const r = store(req.batch);
      if (r === "rejected") throw new ConnectError("envelope hostname mismatch", Code.InvalidArgument);
      return { ackedSequence: req.batch.sequence, duplicate: r === "duplicate" };
    },
  };
  const handler = connectNodeAdapter({
    routes: (router) => router.service(AgentService, impl),
    acceptCompression: [compressionGzip],
    readMaxBytes: 16 << 20,
  });
  const sockets = new Set<Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  const server = kind === "h2" ? http2.createServer(handler) : http.createServer(handler);
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  if (kind === "h2") (server as http2.Http2Server).on("session", (s) => sessions.add(s));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  const actual = (server.address() as AddressInfo).port;
  return Object.assign(state, {
    port: actual,
    url: `http://127.0.0.1:${actual}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  });
}

function captureLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _e, cb) {
      for (const l of String(chunk).split("\n")) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { logger: pino({ level: "debug" }, stream), lines };
}

async function until(cond: () => boolean, timeoutMs = 15_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

let dir: string;
const cleanups: (() => unknown)[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "spectra-sender-"));
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

function setup(url: string, opts: { windowMs?: number; logger?: Logger; connection?: AgentConnection } = {}) {
  const logger = opts.logger ?? pino({ level: "silent" });
  const spool = openSpool({ dir, maxBytes: 1 << 24, maxAgeMs: 86_400_000, logger });
  const connection = opts.connection ?? createAgentConnection({ baseUrl: url, logger, protocolFailuresBeforeFallback: 3 });
  const sender = createSender({
    connection,
    spool,
    logger,
    windowMs: opts.windowMs ?? 200,
    backoff: createBackoff({ initialMs: 20, maxMs: 150, minMs: 5 }),
    callTimeoutMs: 3_000,
    stopTimeoutMs: 2_000,
  });
  cleanups.push(() => spool.close());
  cleanups.push(() => connection.close());
  cleanups.push(() => sender.stop());
  return { spool, connection, sender };
}

async function appendBatch(spool: Spool, sender: Sender, n = 2): Promise<bigint> {
  const seq = await spool.append({
    hostname: "web-01",
    envelopes: Array.from({ length: n }, () => create(MetricEnvelopeSchema, { type: "cpu", hostname: "web-01" })),
    collectorStatus: [],
    countsByCollector: { cpu: n },
  });
  sender.notify();
  if (seq === undefined) throw new Error("append failed");
  return seq;
}

function storedSequences(server: Pick<TestServer, "stores">, session: string): number[] {
  return [...server.stores.keys()]
    .filter((k) => k.startsWith(`${session}/`))
    .map((k) => Number(k.split("/")[1]))
    .sort((a, b) => a - b);
}

describe("sender over HTTP/2", () => {
  it("streams batches, applies the acknowledgements and retires them from the spool", async () => {
    const server = await startServer("h2");
    cleanups.push(() => server.close());
    const { spool, sender, connection } = setup(server.url);
    for (let i = 0; i < 3; i++) await appendBatch(spool, sender);
    sender.start();
    await until(() => !spool.hasPending(), 10_000, "spool drained");
    // Batches keep flowing through later windows.
    for (let i = 0; i < 4; i++) await appendBatch(spool, sender);
    await until(() => !spool.hasPending(), 10_000, "spool drained again");
    expect(storedSequences(server, spool.sessionId)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(server.gzipSeen).toBe(true);
    expect(server.pushes).toBe(0);
    expect(connection.mode).toBe("h2");
    expect(sender.stats().ackedBatches).toBe(7);
  });

  it("drops rejected batches and logs the server's reason", async () => {
    const server = await startServer("h2");
    cleanups.push(() => server.close());
    server.reject.add(2n);
    const { logger, lines } = captureLogger();
    const { spool, sender } = setup(server.url, { logger });
    for (let i = 0; i < 3; i++) await appendBatch(spool, sender);
    sender.start();
    await until(() => !spool.hasPending(), 10_000, "spool drained");
    expect(storedSequences(server, spool.sessionId)).toEqual([1, 3]);
    const warn = lines.find((l) => String(l["msg"]).includes("rejected"));
    expect(warn?.["reason"]).toBe("envelope hostname mismatch");
    expect(warn?.["sequences"]).toEqual(["2"]);
  });

  it("stores every batch exactly once across a server outage, replaying with the original sequences", async () => {
    let server = await startServer("h2");
    const port = server.port;
    const shared = { stores: server.stores, reject: server.reject };
    cleanups.push(() => server.close());
    const { logger, lines } = captureLogger();
    const { spool, sender } = setup(server.url, { logger, windowMs: 300 });
    sender.start();
    for (let i = 0; i < 3; i++) await appendBatch(spool, sender);
    await until(() => !spool.hasPending(), 10_000, "first batches");

    // The server goes away mid-window; batches collected meanwhile wait in the spool.
    await appendBatch(spool, sender);
    await server.close();
    for (let i = 0; i < 5; i++) {
      await appendBatch(spool, sender);
      await new Promise((r) => setTimeout(r, 40));
    }
    await until(() => lines.some((l) => /unreachable: ECONNREFUSED; retrying in/.test(String(l["msg"]))), 10_000, "retry log");
    expect(spool.stats().batches).toBeGreaterThanOrEqual(5);

    server = await startServer("h2", port, shared);
    await appendBatch(spool, sender);
    await until(() => !spool.hasPending(), 15_000, "spool drained after the outage");
    expect(storedSequences(server, spool.sessionId)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    for (const count of server.stores.values()) expect(count).toBe(2);
    expect(lines.some((l) => l["msg"] === "server reachable again; sending the spool")).toBe(true);
    expect(lines.every((l) => !JSON.stringify(l).includes("    at "))).toBe(true);
  });

  it("replays the spool after an agent restart", async () => {
    const server = await startServer("h2");
    cleanups.push(() => server.close());
    // First agent: collects while the server is not known yet, then stops with everything still spooled.
    const first = setup("http://127.0.0.1:1");
    for (let i = 0; i < 4; i++) await appendBatch(first.spool, first.sender);
    const session = first.spool.sessionId;
    await first.spool.close();

    const second = setup(server.url);
    expect(second.spool.sessionId).toBe(session);
    second.sender.start();
    await appendBatch(second.spool, second.sender);
    await until(() => !second.spool.hasPending(), 10_000, "replay");
    expect(storedSequences(server, session)).toEqual([1, 2, 3, 4, 5]);
  });

  it("half-closes the open window on stop and retires what the server acknowledged", async () => {
    const server = await startServer("h2");
    cleanups.push(() => server.close());
    const { spool, sender } = setup(server.url, { windowMs: 30_000 });
    sender.start();
    await appendBatch(spool, sender);
    await appendBatch(spool, sender);
    await until(() => server.streams === 1, 5_000, "stream open");
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    await sender.stop();
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(spool.hasPending()).toBe(false);
    expect(storedSequences(server, spool.sessionId)).toEqual([1, 2]);
  });

  it("logs an unreachable server as one clear line, without a stack trace", async () => {
    const { logger, lines } = captureLogger();
    const { spool, sender } = setup("http://127.0.0.1:1", { logger });
    await appendBatch(spool, sender);
    sender.start();
    await until(() => lines.filter((l) => l["level"] === 40).length >= 2, 5_000, "warnings");
    const warn = lines.find((l) => l["level"] === 40)!;
    expect(warn["msg"]).toMatch(/^server http:\/\/127\.0\.0\.1:1 unreachable: ECONNREFUSED; retrying in \d+(\.\d)? ?m?s$/);
    expect(JSON.stringify(lines)).not.toContain("    at ");
    expect(spool.hasPending()).toBe(true);
  });
});

describe("sender fallback to HTTP/1.1", () => {
  it("switches to unary PushMetrics when the server only speaks HTTP/1.1", async () => {
    const server = await startServer("h1");
    cleanups.push(() => server.close());
    server.reject.add(3n);
    const { logger, lines } = captureLogger();
    const { spool, sender, connection } = setup(server.url, { logger });
    for (let i = 0; i < 5; i++) await appendBatch(spool, sender);
    sender.start();
    await until(() => !spool.hasPending(), 15_000, "spool drained over HTTP/1.1");
    expect(connection.mode).toBe("http1");
    expect(server.streams).toBe(0);
    expect(server.pushes).toBeGreaterThanOrEqual(5);
    expect(storedSequences(server, spool.sessionId)).toEqual([1, 2, 4, 5]);
    expect(lines.some((l) => String(l["msg"]).includes("falling back to HTTP/1.1"))).toBe(true);
    const rejected = lines.find((l) => String(l["msg"]).includes("rejected a batch"));
    expect(rejected?.["reason"]).toBe("envelope hostname mismatch");
    await appendBatch(spool, sender);
    await until(() => !spool.hasPending(), 5_000, "later batch");
    expect(storedSequences(server, spool.sessionId)).toEqual([1, 2, 4, 5, 6]);
  });

  it("tries HTTP/2 again after a while and stays on it when it works", async () => {
    let t = 0;
    const server = await startServer("h2");
    cleanups.push(() => server.close());
    const logger = pino({ level: "silent" });
    const connection = createAgentConnection({ baseUrl: server.url, logger, initialMode: "http1", retryH2AfterMs: 1_000, now: () => t });
    const { spool, sender } = setup(server.url, { connection });
    expect(connection.mode).toBe("http1");
    t = 2_000;
    expect(connection.mode).toBe("h2");
    await appendBatch(spool, sender);
    sender.start();
    await until(() => !spool.hasPending(), 5_000, "sent over h2");
    expect(server.streams).toBeGreaterThanOrEqual(1);
    expect(connection.mode).toBe("h2");
  });
});

describe("classifyError", () => {
  it("names network failures by their code", () => {
    const err = new ConnectError("connect ECONNREFUSED 127.0.0.1:1", Code.Unavailable, undefined, undefined, Object.assign(new Error("x"), { code: "ECONNREFUSED" }));
    expect(classifyError(err)).toMatchObject({ kind: "unreachable", reason: "ECONNREFUSED" });
  });
  it("recognises an HTTP/2 protocol error", () => {
    const cause = Object.assign(new Error("Protocol error"), { code: "ERR_HTTP2_ERROR" });
    expect(classifyError(new ConnectError("Protocol error", Code.Internal, undefined, undefined, cause)).kind).toBe("protocol");
  });
  it("treats server codes as answers", () => {
    expect(classifyError(new ConnectError("no", Code.PermissionDenied))).toMatchObject({ kind: "server", reason: "[permission_denied] no" });
    expect(classifyError(new ConnectError("slow", Code.DeadlineExceeded)).kind).toBe("timeout");
  });
});
