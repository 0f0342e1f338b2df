// Agent lifecycle over a real server on 127.0.0.1 (real SQLite file): status and its timeline, RemoveAgent with and
// without its data, automatic cleanup, rate limits and the failed-authentication slowdown on both transports, and the
// body caps for authenticated callers.
import { create } from "@bufbuild/protobuf";
import { timestampFromMs, durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { request } from "node:http";
import { gzipSync } from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import { AccessService } from "../../gen/spectra/v1/access_service_pb.js";
import { AdminService, AgentStatus } from "../../gen/spectra/v1/admin_service_pb.js";
import { AgentService, HostInfoSchema } from "../../gen/spectra/v1/agent_service_pb.js";
import { CommandState } from "../../gen/spectra/v1/diagnostics_pb.js";
import { HistoryService } from "../../gen/spectra/v1/history_service_pb.js";
import { MetricBatchSchema, MetricEnvelopeSchema } from "../../gen/spectra/v1/metrics_pb.js";
import { startTestApp, type TestApp } from "../testing/app.js";
import { bearer } from "../testing/credentials.js";

const apps: TestApp[] = [];
afterEach(async () => {
  for (const a of apps.splice(0)) {
    await a.close(500);
    a.removeDataDir();
  }
});

async function start(opts: Parameters<typeof startTestApp>[0] = {}) {
  const app = await startTestApp(opts);
  apps.push(app);
  return app;
}

/** Clients of every service with a token, over HTTP/2, or HTTP/1.1 from a chosen loopback address. */
function clients(app: TestApp, token?: string, from?: string) {
  const interceptors: Interceptor[] = token ? [bearer(token)] : [];
  const transport = from
    ? createConnectTransport({ baseUrl: app.baseUrl, httpVersion: "1.1", interceptors, nodeOptions: { localAddress: from } })
    : createConnectTransport({ baseUrl: app.baseUrl, httpVersion: "2", interceptors });
  return {
    agent: createClient(AgentService, transport),
    admin: createClient(AdminService, transport),
    history: createClient(HistoryService, transport),
    access: createClient(AccessService, transport),
  };
}

const host = (hostname: string) => create(HostInfoSchema, { hostname, os: "linux" });

function batch(hostname: string, seq: bigint, t = Date.now()) {
  return create(MetricBatchSchema, {
    hostname,
    sessionId: "s",
    sequence: seq,
    envelopes: [
      create(MetricEnvelopeSchema, { timestamp: timestampFromMs(t), payload: { case: "cpu", value: { usage: 10 + Number(seq) } } }),
      create(MetricEnvelopeSchema, {
        timestamp: timestampFromMs(t),
        payload: { case: "processList", value: { totalProcesses: 1, processes: [{ pid: 1, name: "init" }] } },
      }),
    ],
  });
}

async function codeOf(p: Promise<unknown> | (() => Promise<unknown>)): Promise<Code | "ok"> {
  try {
    await (typeof p === "function" ? p() : p);
    return "ok";
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A plain HTTP/1.1 request from a chosen local address. */
function http(
  app: TestApp,
  method: string,
  path: string,
  opts: { headers?: Record<string, string>; body?: Buffer | string; from?: string } = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  const url = new URL(app.baseUrl);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: url.port, method, path, headers: opts.headers, ...(opts.from ? { localAddress: opts.from } : {}) },
      (res) => {
        let text = "";
        res.on("data", (d: Buffer) => (text += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      },
    );
    req.on("error", reject);
    req.end(opts.body);
  });
}

describe("agent status", () => {
  it("goes stale, offline and online again at the agent's interval, and the timeline says so", async () => {
    const app = await start({ presence: { staleAfter: 2, offlineAfter: 4, evaluateEveryMs: 50, persistEveryMs: 100 } });
    const key = await app.agentKey("st-01");
    const { agent } = clients(app, key);
    const { admin } = clients(app, app.adminToken);
    const t0 = Date.now();
    await agent.register({ host: host("st-01"), reportInterval: durationFromMs(200) }); // stale after 400 ms, offline after 800 ms
    const listed = async () => (await admin.listAgents({})).agents.find((a) => a.host?.hostname === "st-01")!;
    expect((await listed()).status).toBe(AgentStatus.ONLINE);
    let lastBatch = 0;
    for (let i = 1n; i <= 5n; i++) {
      await agent.pushMetrics({ batch: batch("st-01", i) });
      lastBatch = Date.now();
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await listed()).status).toBe(AgentStatus.ONLINE);
    await waitFor("stale", async () => (await listed()).status === AgentStatus.STALE, 5_000);
    const offline = await waitFor("offline", async () => {
      const a = await listed();
      return a.status === AgentStatus.OFFLINE ? a : undefined;
    }, 5_000);
    const since = Number(offline.statusSince!.seconds) * 1000 + offline.statusSince!.nanos / 1e6;
    // Recorded when the threshold passed (the last batch + 4 intervals), not when the job noticed.
    expect(since).toBeGreaterThanOrEqual(lastBatch + 800 - 50);
    expect(since).toBeLessThanOrEqual(lastBatch + 800);
    await agent.pushMetrics({ batch: batch("st-01", 6n) });
    expect((await listed()).status).toBe(AgentStatus.ONLINE);

    const t = await admin.getAgentTimeline({ hostname: "st-01", start: timestampFromMs(t0 - 1_000) });
    expect(t.initial).toBe(AgentStatus.UNSPECIFIED);
    expect(t.changes.map((c) => c.status)).toEqual([AgentStatus.ONLINE, AgentStatus.STALE, AgentStatus.OFFLINE, AgentStatus.ONLINE]);
    const times = t.changes.map((c) => Number(c.time!.seconds) * 1000 + c.time!.nanos / 1e6);
    expect(times[2]! - times[1]!).toBeCloseTo(400, -1); // offline 2 intervals after stale
    // From the middle of the outage: initial = offline.
    const mid = await admin.getAgentTimeline({ hostname: "st-01", start: timestampFromMs(times[2]! + 1), end: timestampFromMs(times[3]! - 1) });
    expect(mid).toMatchObject({ initial: AgentStatus.OFFLINE, changes: [] });
    expect(await codeOf(admin.getAgentTimeline({ hostname: "nobody" }))).toBe(Code.NotFound);
    expect(await codeOf(admin.getAgentTimeline({ hostname: "st-01", start: timestampFromMs(2_000), end: timestampFromMs(1_000) }))).toBe(
      Code.InvalidArgument,
    );
  });
});

describe("RemoveAgent", () => {
  it("without its data: key refused at once (open stream too), queue emptied, unlisted, history kept", async () => {
    const app = await start();
    const key = await app.agentKey("rm-01");
    const { agent } = clients(app, key);
    const { admin, history, access } = clients(app, app.adminToken);
    await agent.register({ host: host("rm-01") });
    await agent.pushMetrics({ batch: batch("rm-01", 1n) });
    await app.services.tsdb.flush();
    const queued = await admin.triggerListMounts({ hostname: "rm-01" });
    const id = queued.command!.command!.id;
    const poll = agent.commandPoll({ hostname: "rm-01" })[Symbol.asyncIterator]();
    expect((await poll.next()).value?.command?.id).toBe(id); // delivered
    const queued2 = (await admin.triggerDisk({ hostname: "rm-01", params: { path: "/" } })).command!.command!.id;
    expect((await poll.next()).value?.command?.id).toBe(queued2);
    const waiting = codeOf(poll.next()); // the open stream waits for the next command

    await access.removeAgent({ hostname: "rm-01" });
    expect(await waiting).toBe(Code.Unauthenticated); // the open stream ended
    expect(await codeOf(agent.pushMetrics({ batch: batch("rm-01", 2n) }))).toBe(Code.Unauthenticated);
    expect((await http(app, "POST", "/api/v1/metrics?hostname=rm-01", { headers: { authorization: `Bearer ${key}` }, body: "[]" })).status).toBe(401);
    for (const cid of [id, queued2]) {
      const c = (await admin.getCommand({ commandId: cid })).command!;
      expect(c.state).toBe(CommandState.EXPIRED);
      expect(c.outcome?.error).toMatch(/^agent removed by test-admin-/);
    }
    expect((await admin.listAgents({})).agents.map((a) => a.host?.hostname)).not.toContain("rm-01");
    expect(await codeOf(admin.triggerListMounts({ hostname: "rm-01" }))).toBe(Code.NotFound); // not registered
    // Its history stays: series, points, snapshots, and the timeline.
    expect((await history.listSeries({ hostname: "rm-01" })).series.length).toBeGreaterThan(0);
    const points = await history.queryRange({ metric: "cpu.usage", hostname: "rm-01", start: timestampFromMs(Date.now() - 60_000) });
    expect(points.series[0]?.values).toEqual([11]);
    expect((await history.listSnapshots({ hostname: "rm-01" })).snapshots).toHaveLength(1);
    expect((await admin.getAgentTimeline({ hostname: "rm-01" })).changes.map((c) => c.status)).toEqual([AgentStatus.ONLINE, AgentStatus.OFFLINE]);
    // Removing it again: nothing left to remove but its data.
    expect(await codeOf(access.removeAgent({ hostname: "rm-01" }))).toBe(Code.NotFound);
  });

  it("with its data: series, points, snapshots, latest values and timeline are gone; other agents untouched", async () => {
    const app = await start();
    const { admin, history, access } = clients(app, app.adminToken);
    for (const h of ["rm-02", "keep-01"]) {
      const { agent } = clients(app, await app.agentKey(h));
      await agent.register({ host: host(h) });
      await agent.pushMetrics({ batch: batch(h, 1n) });
    }
    await app.services.tsdb.flush(); // some in chunks,
    const { agent } = clients(app, await app.agentKey("rm-02")); // (a fresh key: provisioning replaces it)
    await agent.pushMetrics({ batch: batch("rm-02", 2n, Date.now() + 1) }); // some in the head only
    await admin.triggerListMounts({ hostname: "rm-02" });

    await access.removeAgent({ hostname: "rm-02", deleteData: true });
    expect((await history.listHosts({})).hosts.map((h) => h.hostname)).toEqual(["keep-01"]);
    expect((await history.listSeries({ hostname: "rm-02" })).series).toEqual([]);
    const points = await history.queryRange({ metric: "cpu.usage", start: timestampFromMs(Date.now() - 60_000) });
    expect(points.series.map((s) => s.series?.hostname)).toEqual(["keep-01"]);
    expect((await history.listSnapshots({ hostname: "rm-02" })).snapshots).toEqual([]);
    expect(await codeOf(admin.getLatestMetrics({ hostname: "rm-02" }))).toBe(Code.NotFound);
    expect(await codeOf(admin.getAgentTimeline({ hostname: "rm-02" }))).toBe(Code.NotFound);
    expect(await codeOf(agent.pushMetrics({ batch: batch("rm-02", 3n) }))).toBe(Code.Unauthenticated);
    expect((await admin.listCommands({ hostname: "rm-02" })).commands[0]?.state).toBe(CommandState.EXPIRED); // audit trail kept
    // After a flush and a restart nothing comes back.
    await app.services.tsdb.flush();
    await app.close(500);
    apps.splice(apps.indexOf(app), 1);
    const again = await start({ dataDir: app.dataDir });
    const h2 = clients(again, again.adminToken).history;
    expect((await h2.listHosts({})).hosts.map((h) => h.hostname)).toEqual(["keep-01"]);
    expect((await h2.listSeries({ hostname: "keep-01" })).series.length).toBeGreaterThan(0);
  });

  it("removes agents offline longer than --agent-cleanup-after, keeping their data", async () => {
    const app = await start({ presence: { staleAfter: 1, offlineAfter: 2, evaluateEveryMs: 50, persistEveryMs: 100, cleanupAfterMs: 300 } });
    const key = await app.agentKey("gone-01");
    const { agent } = clients(app, key);
    const { admin, history } = clients(app, app.adminToken);
    await agent.register({ host: host("gone-01"), reportInterval: durationFromMs(100) });
    await agent.pushMetrics({ batch: batch("gone-01", 1n) });
    // Kept alive meanwhile: another agent that keeps reporting.
    const alive = clients(app, await app.agentKey("alive-01")).agent;
    await alive.register({ host: host("alive-01"), reportInterval: durationFromMs(100) });
    let seq = 0n;
    const beat = setInterval(() => void alive.pushMetrics({ batch: batch("alive-01", ++seq) }).catch(() => undefined), 50);
    try {
      await waitFor("cleanup", async () => !(await admin.listAgents({})).agents.some((a) => a.host?.hostname === "gone-01"), 5_000);
      expect((await admin.listAgents({})).agents.find((a) => a.host?.hostname === "alive-01")?.status).toBe(AgentStatus.ONLINE);
    } finally {
      clearInterval(beat);
    }
    expect(await codeOf(agent.pushMetrics({ batch: batch("gone-01", 2n) }))).toBe(Code.Unauthenticated);
    expect((await history.listSeries({ hostname: "gone-01" })).series.length).toBeGreaterThan(0);
    const t = await admin.getAgentTimeline({ hostname: "gone-01" });
    expect(t.changes.map((c) => c.status)).toEqual([AgentStatus.ONLINE, AgentStatus.STALE, AgentStatus.OFFLINE]);
  });
});

describe("abuse limits", () => {
  it("refuse an agent over its rate with ResourceExhausted / 429 and Retry-After while another agent is served", async () => {
    const app = await start({ rateLimits: { ratePerSec: 2, burst: 5 } });
    const keyA = await app.agentKey("busy-01");
    const keyB = await app.agentKey("calm-01");
    const a = clients(app, keyA).agent;
    const b = clients(app, keyB).agent;
    const codes: (Code | "ok")[] = [];
    let retryAfter: string | null = null;
    for (let i = 1n; i <= 10n; i++) {
      try {
        await a.pushMetrics({ batch: batch("busy-01", i) });
        codes.push("ok");
      } catch (err) {
        const e = ConnectError.from(err);
        codes.push(e.code);
        retryAfter ??= e.metadata.get("retry-after");
      }
    }
    expect(codes.filter((c) => c === "ok").length).toBeGreaterThanOrEqual(5);
    expect(codes.filter((c) => c === "ok").length).toBeLessThanOrEqual(6);
    expect(codes.filter((c) => c === Code.ResourceExhausted).length).toBeGreaterThanOrEqual(4);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    // Another agent from the same address is served.
    expect(await codeOf(b.pushMetrics({ batch: batch("calm-01", 1n) }))).toBe("ok");
    // The legacy routes share the agent's bucket: 429 with Retry-After.
    const legacy = await http(app, "POST", "/api/v1/metrics?hostname=busy-01", { headers: { authorization: `Bearer ${keyA}` }, body: "[]" });
    expect(legacy.status).toBe(429);
    expect(Number(legacy.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    expect(legacy.text).toMatch(/^Too Many Requests: rate limit/);
    // Admin reads are limited per token too; another token is not affected.
    const viewer = await app.token("viewer");
    const v = clients(app, viewer).admin;
    const adminCodes = [];
    for (let i = 0; i < 8; i++) adminCodes.push(await codeOf(v.listAgents({})));
    expect(adminCodes.filter((c) => c === Code.ResourceExhausted).length).toBeGreaterThanOrEqual(2);
    expect(await codeOf(clients(app, app.adminToken).admin.listAgents({}))).toBe("ok");
    expect((await http(app, "GET", "/admin/agents", { headers: { authorization: `Bearer ${viewer}` } })).status).toBe(429);
    // The limited agent is served again once its bucket refilled.
    await new Promise((r) => setTimeout(r, 600));
    expect(await codeOf(a.pushMetrics({ batch: batch("busy-01", 20n) }))).toBe("ok");
  });

  it("slows an address after repeated failed authentication; other addresses are served", async () => {
    const app = await start({ rateLimits: { authFailuresPerMinute: 5, authBlockMs: 1_000, authBlockMaxMs: 8_000 } });
    const key = await app.agentKey("web-01");
    const bad = key.slice(0, -4) + (key.endsWith("AAAA") ? "BBBB" : "AAAA");
    const fromBad = clients(app, bad, "127.0.0.2").agent;
    const codes = [];
    for (let i = 0; i < 5; i++) codes.push(await codeOf(fromBad.pushMetrics({ batch: batch("web-01", 1n) })));
    expect(codes).toEqual(Array(5).fill(Code.Unauthenticated));
    // The sixth attempt, even with the right key, from that address: refused before the key is looked at.
    let refused: ConnectError | undefined;
    try {
      await clients(app, key, "127.0.0.2").agent.pushMetrics({ batch: batch("web-01", 1n) });
    } catch (err) {
      refused = ConnectError.from(err);
    }
    expect(refused?.code).toBe(Code.ResourceExhausted);
    expect(refused?.message).toMatch(/too many failed authentication/);
    expect(Number(refused?.metadata.get("retry-after"))).toBe(1);
    const legacy = await http(app, "GET", "/admin/agents", { headers: { authorization: `Bearer ${app.adminToken}` }, from: "127.0.0.2" });
    expect(legacy.status).toBe(429);
    expect(legacy.headers["retry-after"]).toBe("1");
    // Missing credentials and unknown enrollment tokens count as failures on every route.
    expect((await http(app, "POST", "/api/v1/metrics?hostname=web-01", { body: "[]", from: "127.0.0.3" })).status).toBe(401);
    // Other addresses are served.
    expect(await codeOf(clients(app, key, "127.0.0.1").agent.pushMetrics({ batch: batch("web-01", 2n) }))).toBe("ok");
    // After the refusal period one more failure doubles it: Retry-After grows.
    await new Promise((r) => setTimeout(r, 1_100));
    expect(await codeOf(fromBad.pushMetrics({ batch: batch("web-01", 1n) }))).toBe(Code.Unauthenticated);
    const again = await http(app, "POST", "/api/v1/metrics?hostname=web-01", {
      headers: { authorization: `Bearer ${bad}` },
      body: "[]",
      from: "127.0.0.2",
    });
    expect(again.status).toBe(429);
    expect(again.headers["retry-after"]).toBe("2");
    const enroll = clients(app, undefined, "127.0.0.4").agent;
    const enrollCodes = [];
    for (let i = 0; i < 6; i++) {
      enrollCodes.push(
        await codeOf(enroll.enroll({ enrollmentToken: `spe_0123456789abcdef_${"A".repeat(43)}`, host: host("x"), enrollmentSecret: "0123456789abcdef-secret" })),
      );
    }
    expect(enrollCodes).toEqual([...Array(5).fill(Code.Unauthenticated), Code.ResourceExhausted]);
  });

  it("keeps the body caps for authenticated callers", async () => {
    const app = await start(); // maxBodyBytes 1 MiB, maxInflatedBytes 8 MiB
    const key = await app.agentKey("big-01");
    const { agent } = clients(app, key);
    const envelopes = Array.from({ length: 9 }, () =>
      create(MetricEnvelopeSchema, { timestamp: timestampFromMs(Date.now()), payload: { case: "process", value: { pid: 1, name: "x".repeat(1024 * 1024) } } }),
    );
    const big = create(MetricBatchSchema, { hostname: "big-01", sessionId: "s", sequence: 1n, envelopes });
    expect(await codeOf(agent.pushMetrics({ batch: big }))).toBe(Code.ResourceExhausted);
    const headers = { authorization: `Bearer ${key}`, "content-type": "application/json" };
    const body = JSON.stringify([{ type: "cpu", hostname: "big-01", data: { usage: 1 }, pad: "x".repeat(2 * 1024 * 1024) }]);
    expect((await http(app, "POST", "/api/v1/metrics?hostname=big-01", { headers, body })).status).toBe(413);
    const bomb = gzipSync(Buffer.alloc(20 * 1024 * 1024));
    const gz = await http(app, "POST", "/api/v1/metrics?hostname=big-01", { headers: { ...headers, "content-encoding": "gzip" }, body: bomb });
    expect(gz.status).toBe(413);
    expect(gz.text).toMatch(/after gunzip/);
    expect(await app.services.store.countEnvelopes()).toBe(0);
  });

  it("caps each message of a StreamMetrics stream, not the stream: an oversized one ends it, nothing of it is stored", async () => {
    // Connect's readMaxBytes (--max-inflated) is checked per message envelope, after decompression
    // (connect-node's transformSplitEnvelope / transformDecompressEnvelope): a long stream of small batches may
    // carry more than the cap in total; one message over it ends the stream with ResourceExhausted.
    const cap = 256 * 1024;
    const app = await start({ maxInflatedBytes: cap });
    const key = await app.agentKey("cap-01");
    const snapshot = (seq: bigint, nameBytes: number) =>
      create(MetricBatchSchema, {
        hostname: "cap-01",
        sessionId: "s",
        sequence: seq,
        envelopes: [
          create(MetricEnvelopeSchema, {
            timestamp: timestampFromMs(Date.now()),
            payload: { case: "process", value: { pid: Number(seq), name: "x".repeat(nameBytes) } },
          }),
        ],
      });
    for (const binary of [true, false]) {
      const transport = createConnectTransport({ baseUrl: app.baseUrl, httpVersion: "2", useBinaryFormat: binary, interceptors: [bearer(key)] });
      const agent = createClient(AgentService, transport);
      const base = binary ? 0n : 100n;
      // Five messages of 100 KiB: 500 KiB in one stream, each under the cap.
      const ok = await agent.streamMetrics(
        (async function* () {
          for (let i = 1n; i <= 5n; i++) yield { batch: snapshot(base + i, 100 * 1024) };
        })(),
      );
      expect(ok.ackedSequences).toEqual([1n, 2n, 3n, 4n, 5n].map((i) => base + i));
      // One small message, then one over the cap.
      let err: ConnectError | undefined;
      try {
        await agent.streamMetrics(
          (async function* () {
            yield { batch: snapshot(base + 10n, 1024) };
            yield { batch: snapshot(base + 11n, cap + 1024) };
          })(),
        );
      } catch (e) {
        err = ConnectError.from(e);
      }
      expect(err?.code, binary ? "binary" : "json").toBe(Code.ResourceExhausted);
      expect(err?.rawMessage).toMatch(/message size \d+ is larger than configured readMaxBytes 262144/);
    }
    // Stored: the five and the small one of each wire; neither oversized message.
    expect(await app.services.store.countEnvelopes("cap-01")).toBe(12);
  });
});
