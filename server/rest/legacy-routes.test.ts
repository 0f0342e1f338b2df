/**
 * The legacy REST contract (legacy-api.md), endpoint by endpoint and status by status, over real sockets on
 * 127.0.0.1: every case runs over HTTP/1.1 and over h2c.
 */
import { create } from "@bufbuild/protobuf";
import { EventEmitter, once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import zlib from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SYNC_GUNZIP_BYTES } from "../../common/gzip.js";
import { silentLogger } from "../../common/logger.js";
import { HostInfoSchema } from "../../gen/spectra/v1/agent_service_pb.js";
import { CommandState, CommandType, ListMountsParamsSchema } from "../../gen/spectra/v1/diagnostics_pb.js";
import { createServices, type Services } from "../services.js";
import { TsdbEngine } from "../tsdb/engine.js";
import { openSqliteStore } from "../store/sqlite/sqlite-store.js";
import { startTestApp } from "../testing/app.js";
import { createLegacyRoutes, type LegacyHandler } from "./legacy-routes.js";

const LONG_POLL_MS = 300;
const MAX_BODY = 256 * 1024;
const MAX_INFLATED = 1024 * 1024;

type Proto = "h1" | "h2";

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

interface RequestOptions {
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Send the body in pieces without a content-length. */
  chunked?: boolean;
}

/** A handler served over HTTP/1.1 and h2c, with a client for each. */
class Harness {
  readonly closes = new EventEmitter();
  /** Sent with every request (the credential), before the request's own headers. */
  headers: Record<string, string> = {};
  private h1!: http.Server;
  private h2!: http2.Http2Server;
  private session!: http2.ClientHttp2Session;
  private h1Port = 0;
  private h2Port = 0;

  async start(handler: LegacyHandler) {
    // Report each response's "close" by URL, so a test can wait until the server has seen a client go.
    const wrapped: LegacyHandler = (req, res) => {
      res.once("close", () => this.closes.emit("close", req.url));
      handler(req, res);
    };
    this.h1 = http.createServer((req, res) => wrapped(req, res));
    this.h2 = http2.createServer(wrapped);
    this.h1.listen(0, "127.0.0.1");
    this.h2.listen(0, "127.0.0.1");
    await Promise.all([once(this.h1, "listening"), once(this.h2, "listening")]);
    this.h1Port = (this.h1.address() as AddressInfo).port;
    this.h2Port = (this.h2.address() as AddressInfo).port;
    this.session = http2.connect(`http://127.0.0.1:${this.h2Port}`);
    await once(this.session, "connect");
  }

  /** Uses a server that is already listening (the one-port app) for both protocols. */
  async attach(port: number) {
    this.h1Port = this.h2Port = port;
    this.session = http2.connect(`http://127.0.0.1:${port}`);
    await once(this.session, "connect");
  }

  async stop() {
    this.session.close();
    if (!this.h1) return;
    this.h1.closeAllConnections();
    await Promise.all([
      new Promise((r) => this.h1.close(r)),
      new Promise((r) => this.h2.close(r)),
    ]);
  }

  /** Starts a request; `cancel()` drops it from the client side (socket destroyed / stream reset). */
  start_(proto: Proto, method: string, path: string, opts: RequestOptions = {}): { reply: Promise<Reply>; cancel(): void } {
    return proto === "h1" ? this.h1Request(method, path, opts) : this.h2Request(method, path, opts);
  }

  request(proto: Proto, method: string, path: string, opts: RequestOptions = {}): Promise<Reply> {
    return this.start_(proto, method, path, opts).reply;
  }

  private writeBody(w: { write(b: Buffer): unknown; end(b?: Buffer): unknown }, opts: RequestOptions) {
    const body = opts.body === undefined ? undefined : Buffer.from(opts.body);
    if (!body) return void w.end();
    if (!opts.chunked) return void w.end(body);
    for (let i = 0; i < body.length; i += 16 * 1024) w.write(body.subarray(i, i + 16 * 1024));
    w.end();
  }

  private h1Request(method: string, path: string, opts: RequestOptions) {
    let cancel = () => {};
    const reply = new Promise<Reply>((resolve, reject) => {
      let responded = false;
      const headers: Record<string, string> = { ...this.headers, ...opts.headers };
      if (opts.body !== undefined && !opts.chunked) headers["content-length"] = String(Buffer.byteLength(opts.body));
      const req = http.request({ host: "127.0.0.1", port: this.h1Port, method, path, headers, agent: false }, (res) => {
        responded = true;
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString("utf8") }),
        );
      });
      // The server may close while a refused body is still being sent; the response already arrived then.
      req.on("error", (err) => {
        if (!responded) reject(err);
      });
      cancel = () => req.destroy();
      this.writeBody(req, opts);
    });
    return { reply, cancel: () => cancel() };
  }

  private h2Request(method: string, path: string, opts: RequestOptions) {
    const stream = this.session.request({ ":method": method, ":path": path, ...this.headers, ...opts.headers });
    const reply = new Promise<Reply>((resolve, reject) => {
      let status = 0;
      let headers: Reply["headers"] = {};
      const chunks: Buffer[] = [];
      stream.on("response", (h) => {
        status = Number(h[":status"]);
        headers = h;
      });
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => resolve({ status, headers, text: Buffer.concat(chunks).toString("utf8") }));
      stream.on("error", (err) => {
        if (status === 0) reject(err);
      });
      stream.on("close", () => {
        if (status !== 0) resolve({ status, headers, text: Buffer.concat(chunks).toString("utf8") });
      });
    });
    this.writeBody(stream, opts);
    return { reply, cancel: () => stream.close(http2.constants.NGHTTP2_CANCEL) };
  }
}

const gzip = (v: unknown) => zlib.gzipSync(typeof v === "string" ? v : JSON.stringify(v));
const GZIP = { "content-type": "application/json", "content-encoding": "gzip" };
const JSON_HEADERS = { "content-type": "application/json" };

function expectPlainError(r: Reply, status: number, message: string | RegExp) {
  expect(r.status).toBe(status);
  expect(r.headers["content-type"]).toBe("text/plain; charset=utf-8");
  expect(r.headers["x-content-type-options"]).toBe("nosniff");
  if (typeof message === "string") expect(r.text).toBe(message + "\n");
  else {
    expect(r.text).toMatch(message);
    expect(r.text.endsWith("\n")).toBe(true);
  }
}

const cpuEnvelope = (hostname: string, over: Record<string, unknown> = {}) => ({
  type: "cpu",
  timestamp: "2026-02-02T07:48:40.123456789-05:00",
  hostname,
  data: { usage: 12.5, cores: [10, 15], load_1m: 0.5, load_5m: 0.25, load_15m: 0.125, iowait: 1.5 },
  ...over,
});

let dir: string;
let s: Services;
/** An admin token (role admin): accepted on the agent routes and the /admin routes alike. */
let adminAuth: Record<string, string>;
const harness = new Harness();
let hostCounter = 0;
const newHost = (proto: Proto) => `host-${proto}-${++hostCounter}`;

async function registered(proto: Proto): Promise<string> {
  const hostname = newHost(proto);
  await s.agents.register(create(HostInfoSchema, { hostname, os: "linux" }), []);
  return hostname;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "spectra-rest-"));
  const store = openSqliteStore(join(dir, "spectra.db"));
  s = createServices({
    store,
    tsdb: TsdbEngine.fresh(store, silentLogger()),
    logger: silentLogger(),
    commandOptions: { maxQueued: 10, ttlMs: 3_600_000, expireEveryMs: 60_000 },
  });
  adminAuth = { authorization: `Bearer ${(await s.adminTokens.create("legacy-test", "admin", "test")).token}` };
  harness.headers = adminAuth;
  await harness.start(
    createLegacyRoutes(s, {
      longPollMs: LONG_POLL_MS,
      maxBodyBytes: MAX_BODY,
      maxInflatedBytes: MAX_INFLATED,
      shutdownSignal: new AbortController().signal,
    }),
  );
});

afterAll(async () => {
  await harness.stop();
  s.commands.stop();
  await s.store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe.each<Proto>(["h1", "h2"])("legacy REST over %s", (proto) => {
  const req = (method: string, path: string, opts?: RequestOptions) => harness.request(proto, method, path, opts);
  const poll = (hostname: string) => req("GET", `/api/v1/agent/command?hostname=${hostname}`);
  const decodeCommand = (r: Reply) => {
    const cmd = JSON.parse(r.text) as { id: string; type: string; payload: string | null };
    return { ...cmd, decoded: cmd.payload === null ? null : Buffer.from(cmd.payload, "base64").toString("utf8") };
  };
  /** Asserts that a refused request stored nothing at all. */
  const storesNothing = async (hostname: string, send: () => Promise<void>) => {
    const before = await s.store.countEnvelopes();
    await send();
    expect(await s.store.countEnvelopes(hostname)).toBe(0);
    expect(await s.store.countEnvelopes()).toBe(before);
  };

  describe("POST /api/v1/metrics", () => {
    it("202 for a gzip batch, stored exactly (timestamp to the nanosecond)", async () => {
      const hostname = newHost(proto);
      const body = gzip([
        cpuEnvelope(hostname),
        {
          type: "disk",
          timestamp: "2026-02-02T12:48:41Z",
          hostname,
          data: { device: "/dev/sda1", mountpoint: "/", filesystem: "ext4", disk_type: "ssd", disk_total: 512110190592, disk_used: 1, disk_available: 2, disk_used_pct: 0.5, inodes_total: 1000 },
        },
      ]);
      const r = await req("POST", `/api/v1/metrics?hostname=${hostname}`, { headers: GZIP, body });
      expect(r.status).toBe(202);
      expect(r.text).toBe("");

      expect(await s.store.countEnvelopes(hostname)).toBe(2);
      const [cpu, disk] = await s.tsdb.latest(hostname);
      expect(cpu?.type).toBe("cpu");
      expect(cpu?.hostname).toBe(hostname);
      expect(cpu?.timestampMs).toBe(1770036520123);
      expect(cpu?.envelope.timestamp?.seconds).toBe(1770036520n);
      expect(cpu?.envelope.timestamp?.nanos).toBe(123456789);
      const p = cpu?.envelope.payload;
      if (p?.case !== "cpu") throw new Error(`cpu payload expected, got ${p?.case}`);
      expect([p.value.usage, p.value.cores, p.value.load1m, p.value.load5m, p.value.load15m, p.value.iowait]).toEqual([
        12.5, [10, 15], 0.5, 0.25, 0.125, 1.5,
      ]);
      expect(disk?.type).toBe("disk");
      expect(disk?.key).toBe("/");
      const d = disk?.envelope.payload;
      if (d?.case !== "disk") throw new Error("disk payload expected");
      expect(d.value.diskTotal).toBe(512110190592n);
      expect(d.value.inodesTotal).toBe(1000n);
      expect(d.value.inodesUsed).toBeUndefined();
      // and as series: every number a sample at the envelope's time
      const latest = s.history.latest({ hostname, matchers: [] });
      const byName = Object.fromEntries(latest.map((l) => [`${l.metric}{${l.labels.map(([k, v]) => `${k}=${v}`).join(",")}}`, [l.t, l.v]]));
      expect(byName["cpu.usage{}"]).toEqual([1770036520123, 12.5]);
      expect(byName["cpu.cores{core=1}"]).toEqual([1770036520123, 15]);
      expect(byName["disk.disk_total{mountpoint=/}"]).toEqual([1770036521000, 512110190592]);
      expect(byName["disk.inodes_used{mountpoint=/}"]).toBeUndefined();
    });

    it("202 for a plain JSON batch (no Content-Encoding)", async () => {
      const hostname = newHost(proto);
      const body = JSON.stringify([cpuEnvelope(hostname), { type: "updates", timestamp: "2026-02-02T12:00:00Z", hostname, data: { pending_count: 2 } }]);
      const r = await req("POST", `/api/v1/metrics?hostname=${hostname}`, { headers: JSON_HEADERS, body });
      expect(r.status).toBe(202);
      const rows = await s.tsdb.latest(hostname);
      expect(rows.map((e) => e.type).sort()).toEqual(["cpu", "update_status"]);
      expect((await s.store.listEnvelopes({ hostname, limit: 10 })).map((e) => e.type)).toEqual(["update_status"]);
    });

    it("ignores unknown types and stores the rest", async () => {
      const hostname = newHost(proto);
      const body = gzip([{ type: "quantum_flux", timestamp: "2026-02-02T12:00:00Z", hostname, data: { x: 1 } }, cpuEnvelope(hostname)]);
      const r = await req("POST", `/api/v1/metrics?hostname=${hostname}`, { headers: GZIP, body });
      expect(r.status).toBe(202);
      expect(await s.store.countEnvelopes(hostname)).toBe(1);
    });

    it("stores envelopes naming another host under the query hostname", async () => {
      const hostname = newHost(proto);
      const body = gzip([cpuEnvelope("someone-else")]);
      expect((await req("POST", `/api/v1/metrics?hostname=${hostname}`, { headers: GZIP, body })).status).toBe(202);
      expect(await s.store.countEnvelopes("someone-else")).toBe(0);
      expect((await s.tsdb.latest(hostname))[0]?.envelope.hostname).toBe(hostname);
    });

    it("400 Missing hostname", async () => {
      await storesNothing("", async () => {
        const r = await req("POST", "/api/v1/metrics", { headers: GZIP, body: gzip([cpuEnvelope("x")]) });
        expectPlainError(r, 400, "Missing hostname");
        expectPlainError(await req("POST", "/api/v1/metrics?hostname=", { headers: GZIP, body: gzip([]) }), 400, "Missing hostname");
      });
    });

    it("400 bad gzip body", async () => {
      const hostname = newHost(proto);
      await storesNothing(hostname, async () => {
        const r = await req("POST", `/api/v1/metrics?hostname=${hostname}`, { headers: GZIP, body: "[not gzip]" });
        expectPlainError(r, 400, /^bad gzip body: /);
        const truncated = gzip([cpuEnvelope(hostname)]).subarray(0, 20);
        expectPlainError(await req("POST", `/api/v1/metrics?hostname=${hostname}`, { headers: GZIP, body: truncated }), 400, /^bad gzip body: /);
        expectPlainError(await req("POST", `/api/v1/metrics?hostname=${hostname}`, { headers: GZIP }), 400, "bad gzip body: EOF");
      });
    });

    it("gunzips only when Content-Encoding is exactly gzip", async () => {
      const hostname = newHost(proto);
      await storesNothing(hostname, async () => {
        const headers = { ...JSON_HEADERS, "content-encoding": "GZIP" };
        const r = await req("POST", `/api/v1/metrics?hostname=${hostname}`, { headers, body: gzip([cpuEnvelope(hostname)]) });
        expectPlainError(r, 400, /^invalid json: /);
      });
    });

    it("400 invalid json", async () => {
      const hostname = newHost(proto);
      await storesNothing(hostname, async () => {
        const path = `/api/v1/metrics?hostname=${hostname}`;
        expectPlainError(await req("POST", path, { headers: GZIP, body: gzip('[{"type":"cpu",') }), 400, /^invalid json: /);
        expectPlainError(await req("POST", path, { headers: JSON_HEADERS, body: "{}" }), 400, "invalid json: expected an array of envelopes, got object");
        expectPlainError(await req("POST", path, { headers: JSON_HEADERS }), 400, "invalid json: EOF");
      });
    });

    it("400 invalid json for wrong field types, and the whole batch is refused", async () => {
      const hostname = newHost(proto);
      await storesNothing(hostname, async () => {
        const bad = cpuEnvelope(hostname, { data: { usage: "12.5" } });
        const r = await req("POST", `/api/v1/metrics?hostname=${hostname}`, { headers: GZIP, body: gzip([cpuEnvelope(hostname), bad]) });
        expectPlainError(r, 400, 'invalid json: envelope 1 (cpu): data.usage: expected number, got string "12.5"');
        const ts = cpuEnvelope(hostname, { timestamp: "2026-02-02 07:48:40" });
        expectPlainError(await req("POST", `/api/v1/metrics?hostname=${hostname}`, { headers: GZIP, body: gzip([ts]) }), 400, /^invalid json: envelope 0: timestamp: /);
        const range = { type: "memory", hostname, data: { ram_total: -5 } };
        expectPlainError(await req("POST", `/api/v1/metrics?hostname=${hostname}`, { headers: GZIP, body: gzip([range]) }), 400, /^invalid json: .*ram_total/);
      });
    });

    it("413 for a body over the cap (declared or streamed), and keeps serving", async () => {
      const hostname = newHost(proto);
      const big = JSON.stringify([cpuEnvelope(hostname, { pad: "x".repeat(MAX_BODY) })]);
      await storesNothing(hostname, async () => {
        const path = `/api/v1/metrics?hostname=${hostname}`;
        expectPlainError(await req("POST", path, { headers: JSON_HEADERS, body: big }), 413, /^request body too large: more than 262144 bytes/);
        expectPlainError(await req("POST", path, { headers: JSON_HEADERS, body: big, chunked: true }), 413, /^request body too large/);
      });
      const ok = await req("POST", `/api/v1/metrics?hostname=${hostname}`, { headers: GZIP, body: gzip([cpuEnvelope(hostname)]) });
      expect(ok.status).toBe(202);
    });

    it("refuses gzip bombs with 413: 50 MB of zeros in ~50 KB (thread pool) and 5 MB in ~5 KB (inflated in place)", async () => {
      for (const mb of [50, 5]) {
        const hostname = newHost(proto);
        const bomb = zlib.gzipSync(Buffer.alloc(mb * 1024 * 1024), { level: 9 });
        expect(bomb.length).toBeLessThan(MAX_BODY);
        if (mb === 5) expect(bomb.length).toBeLessThanOrEqual(SYNC_GUNZIP_BYTES);
        await storesNothing(hostname, async () => {
          const r = await req("POST", `/api/v1/metrics?hostname=${hostname}`, { headers: GZIP, body: bomb });
          expectPlainError(r, 413, `request body too large: more than ${MAX_INFLATED} bytes after gunzip`);
        });
      }
    });

    it("405 for another method", async () => {
      const hostname = newHost(proto);
      const r = await req("GET", `/api/v1/metrics?hostname=${hostname}`);
      expectPlainError(r, 405, "Method not allowed");
    });

    it("400 for a malformed hostname", async () => {
      const r = await req("POST", "/api/v1/metrics?hostname=bad%20host", { headers: GZIP, body: gzip([]) });
      expectPlainError(r, 400, 'invalid hostname "bad host"');
    });
  });

  describe("POST /api/v1/agent/register", () => {
    const info = (hostname: string) => ({
      hostname,
      os: "linux",
      platform: "debian",
      platform_ver: "12",
      kernel: "6.1.0-18-amd64",
      arch: "amd64",
      cpu_model: "Intel(R) Xeon(R)",
      cpu_cores: 8,
      ram_total: 16777216000,
      agent_version: "0.1.0",
      boot_time: 1769990000,
      ips: ["192.168.1.10"],
    });

    it("200 with an empty body; the agent is registered", async () => {
      const hostname = newHost(proto);
      const r = await req("POST", "/api/v1/agent/register", { headers: JSON_HEADERS, body: JSON.stringify(info(hostname)) });
      expect(r.status).toBe(200);
      expect(r.text).toBe("");
      const a = await s.store.getAgent(hostname);
      expect(a?.host.ramTotal).toBe(16777216000n);
      expect(a?.host.cpuCores).toBe(8);
      expect(a?.host.ips).toEqual(["192.168.1.10"]);
    });

    it("405 Method not allowed for GET", async () => {
      expectPlainError(await req("GET", "/api/v1/agent/register"), 405, "Method not allowed");
    });

    it("400 for bad JSON, wrong types or no hostname", async () => {
      expectPlainError(await req("POST", "/api/v1/agent/register", { headers: JSON_HEADERS, body: "{" }), 400, /^invalid json: /);
      const wrong = { ...info(newHost(proto)), cpu_cores: "8" };
      expectPlainError(
        await req("POST", "/api/v1/agent/register", { headers: JSON_HEADERS, body: JSON.stringify(wrong) }),
        400,
        "invalid json: cpu_cores: expected number, got string \"8\"",
      );
      expect(await s.agents.isRegistered(wrong.hostname)).toBe(false);
      expectPlainError(
        await req("POST", "/api/v1/agent/register", { headers: JSON_HEADERS, body: JSON.stringify({ os: "linux" }) }),
        400,
        "Missing hostname",
      );
    });
  });

  describe("GET /api/v1/agent/command (long poll)", () => {
    it("204 when nothing came within the poll time", async () => {
      const hostname = await registered(proto);
      const t0 = Date.now();
      const r = await poll(hostname);
      expect(r.status).toBe(204);
      expect(r.text).toBe("");
      expect(Date.now() - t0).toBeGreaterThanOrEqual(LONG_POLL_MS - 20);
    });

    it("200 at once with a command queued before the poll", async () => {
      const hostname = await registered(proto);
      const rec = await s.commands.enqueue(hostname, { case: "listMounts", value: create(ListMountsParamsSchema) }, "test");
      const r = await poll(hostname);
      expect(r.status).toBe(200);
      expect(r.headers["content-type"]).toBe("application/json");
      expect(r.text).toBe(`{"id":"${rec.command.id}","type":"LIST_MOUNTS","payload":null}\n`);
      expect((await s.commands.get(rec.command.id)).state).toBe(CommandState.DELIVERED);
    });

    it("200 with a command queued during the poll", async () => {
      const hostname = await registered(proto);
      const pending = poll(hostname);
      await new Promise((r) => setTimeout(r, 50));
      const trig = await req("POST", `/admin/trigger_disk?hostname=${hostname}&path=/var/log&top_n=10`);
      expect(trig.text).toBe("Queued Disk Scan (Top 10)\n");
      const r = await pending;
      expect(r.status).toBe(200);
      const cmd = decodeCommand(r);
      expect(cmd.type).toBe("DISK_USAGE");
      expect(cmd.payload).toBe("eyJwYXRoIjoiL3Zhci9sb2ciLCJ0b3BfbiI6MTB9");
      expect(cmd.decoded).toBe('{"path":"/var/log","top_n":10}');
    });

    it("a client that leaves mid-poll does not consume a command", async () => {
      const hostname = await registered(proto);
      const path = `/api/v1/agent/command?hostname=${hostname}`;
      const p = harness.start_(proto, "GET", path);
      p.reply.catch(() => {});
      await new Promise((r) => setTimeout(r, 50));
      const serverSawClose = new Promise<void>((resolve) => {
        const on = (url: string) => {
          if (url === path) {
            harness.closes.off("close", on);
            resolve();
          }
        };
        harness.closes.on("close", on);
      });
      p.cancel();
      await serverSawClose;
      const rec = await s.commands.enqueue(hostname, { case: "listMounts", value: create(ListMountsParamsSchema) }, "test");
      await new Promise((r) => setTimeout(r, 20));
      expect((await s.commands.get(rec.command.id)).state).toBe(CommandState.QUEUED);
      const next = await poll(hostname);
      expect(next.status).toBe(200);
      expect(decodeCommand(next).id).toBe(rec.command.id);
    });

    it("400 Missing hostname", async () => {
      expectPlainError(await req("GET", "/api/v1/agent/command"), 400, "Missing hostname");
    });

    it("405 for POST", async () => {
      expectPlainError(await req("POST", `/api/v1/agent/command?hostname=${newHost(proto)}`), 405, "Method not allowed");
    });
  });

  describe("admin triggers", () => {
    it("trigger_logs queues FETCH_LOGS with min_level ERROR", async () => {
      const hostname = await registered(proto);
      const r = await req("POST", `/admin/trigger_logs?hostname=${hostname}`);
      expect(r.status).toBe(200);
      expect(r.headers["content-type"]).toBe("text/plain; charset=utf-8");
      expect(r.text).toBe("Queued FetchLogs\n");
      const cmd = decodeCommand(await poll(hostname));
      expect(cmd.type).toBe("FETCH_LOGS");
      expect(cmd.decoded).toBe('{"min_level":"ERROR"}');
    });

    it.each([
      ["", 20],
      ["&top_n=abc", 20],
      ["&top_n=-5", 20],
      ["&top_n=0", 20],
      ["&top_n=7", 7],
      ["&top_n=%2B9", 9],
    ])("trigger_disk%s queues top_n %i", async (query, topN) => {
      const hostname = await registered(proto);
      const r = await req("POST", `/admin/trigger_disk?hostname=${hostname}${query}`);
      expect(r.status).toBe(200);
      expect(r.text).toBe(`Queued Disk Scan (Top ${topN})\n`);
      const cmd = decodeCommand(await poll(hostname));
      expect(cmd.decoded).toBe(`{"path":"","top_n":${topN}}`);
    });

    it("trigger_network queues NETWORK_DIAG", async () => {
      const hostname = await registered(proto);
      const r = await req("POST", `/admin/trigger_network?hostname=${hostname}&action=ping&target=example.org`);
      expect(r.status).toBe(200);
      expect(r.text).toBe("Queued Network Diag: ping\n");
      const cmd = decodeCommand(await poll(hostname));
      expect(cmd.type).toBe("NETWORK_DIAG");
      expect(cmd.decoded).toBe('{"action":"ping","target":"example.org","count":0}');
    });

    it("trigger_network: 400 Action required, 400 for an unknown action", async () => {
      const hostname = await registered(proto);
      expectPlainError(await req("POST", `/admin/trigger_network?hostname=${hostname}&target=x`), 400, "Action required");
      expectPlainError(
        await req("POST", `/admin/trigger_network?hostname=${hostname}&action=dig&target=x`),
        400,
        "Unknown action: dig (ping, connect, netstat, traceroute)",
      );
      expectPlainError(await req("POST", "/admin/trigger_network?action=ping"), 400, "Missing hostname");
    });

    it("trigger_mounts queues LIST_MOUNTS", async () => {
      const hostname = await registered(proto);
      const r = await req("POST", `/admin/trigger_mounts?hostname=${hostname}`);
      expect(r.text).toBe("Queued ListMounts\n");
      const cmd = decodeCommand(await poll(hostname));
      expect(cmd.type).toBe("LIST_MOUNTS");
      expect(cmd.payload).toBeNull();
    });

    it.each(["trigger_logs", "trigger_disk", "trigger_network", "trigger_mounts"])(
      "%s: 400 not registered, 400 Missing hostname, 405 for GET",
      async (route) => {
        const hostname = newHost(proto);
        const extra = route === "trigger_network" ? "&action=netstat" : "";
        expectPlainError(await req("POST", `/admin/${route}?hostname=${hostname}${extra}`), 400, `Agent '${hostname}' is not registered`);
        expectPlainError(await req("POST", `/admin/${route}`), 400, "Missing hostname");
        expectPlainError(await req("GET", `/admin/${route}?hostname=${hostname}`), 405, "Method not allowed");
      },
    );

    it("503 when the host already has 10 queued commands", async () => {
      const hostname = await registered(proto);
      for (let i = 0; i < 10; i++) {
        expect((await req("POST", `/admin/trigger_logs?hostname=${hostname}`)).status).toBe(200);
      }
      expectPlainError(await req("POST", `/admin/trigger_disk?hostname=${hostname}`), 503, "Queue full or agent not found");
    });
  });

  describe("POST /api/v1/agent/command_result and GET /admin/command", () => {
    const post = (hostname: string, result: unknown) =>
      req("POST", `/api/v1/agent/command_result?hostname=${hostname}`, { headers: GZIP, body: gzip(result) });
    const getCommand = async (id: string) => {
      const r = await req("GET", `/admin/command?id=${id}`);
      expect(r.status).toBe(200);
      expect(r.headers["content-type"]).toBe("application/json");
      expect(r.text.endsWith("\n")).toBe(true);
      return JSON.parse(r.text) as Record<string, unknown>;
    };
    const delivered = async (hostname: string, trigger: string) => {
      expect((await req("POST", `/admin/${trigger}?hostname=${hostname}`)).status).toBe(200);
      return decodeCommand(await poll(hostname)).id;
    };

    it("200 for a success result; GET /admin/command returns it in the legacy shape", async () => {
      const hostname = await registered(proto);
      const id = await delivered(hostname, "trigger_disk");
      const before = await getCommand(id);
      expect(before).toMatchObject({ id, hostname, type: "DISK_USAGE", state: "delivered", payload: null });
      expect(before["delivered_at"]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
      expect(before["finished_at"]).toBeUndefined();

      const payload = {
        root: "/",
        top_dirs: [{ path: "/var", size: 5368709120, count: 1200 }],
        top_files: [{ path: "/var/big.img", size: 4294967296 }],
        scanned_dirs: 100,
        scanned_files: 2000,
        error_count: 0,
        partial: false,
        duration_ms: 1500,
        scanned_at: "2026-02-02T07:48:40.123456789-05:00",
      };
      const r = await post(hostname, { id, type: "DISK_USAGE", payload });
      expect(r.status).toBe(200);
      expect(r.text).toBe("");

      const after = await getCommand(id);
      expect(after).toMatchObject({ id, hostname, type: "DISK_USAGE", state: "completed" });
      expect(after["error"]).toBeUndefined();
      expect(after["finished_at"]).toMatch(/Z$/);
      expect(after["created_at"]).toMatch(/Z$/);
      expect(after["payload"]).toEqual({ ...payload, scanned_at: "2026-02-02T12:48:40.123456789Z" });
      const rec = await s.commands.get(id);
      expect(rec.outcome?.result.case).toBe("diskUsage");
      expect(rec.outcome?.type).toBe(CommandType.DISK_USAGE);
    });

    it("200 for an error result; the command is failed with the error", async () => {
      const hostname = await registered(proto);
      const id = await delivered(hostname, "trigger_logs");
      const r = await post(hostname, { id, type: "FETCH_LOGS", payload: null, error: "journalctl: permission denied" });
      expect(r.status).toBe(200);
      expect(await getCommand(id)).toMatchObject({ state: "failed", error: "journalctl: permission denied", payload: null });
    });

    it("NETWORK_DIAG ping result: rtt in nanoseconds survives as a plain number", async () => {
      const hostname = await registered(proto);
      expect((await req("POST", `/admin/trigger_network?hostname=${hostname}&action=ping&target=127.0.0.1`)).status).toBe(200);
      const id = decodeCommand(await poll(hostname)).id;
      const payload = { action: "ping", target: "127.0.0.1", ping_results: [{ seq: 1, success: true, rtt: 48123, response: "reply", peer: "127.0.0.1" }] };
      expect((await post(hostname, { id, type: "NETWORK_DIAG", payload })).status).toBe(200);
      expect((await getCommand(id))["payload"]).toEqual(payload);
    });

    it("200 for an unknown command or another host's command, which stays untouched", async () => {
      const hostname = await registered(proto);
      expect((await post(hostname, { id: "no-such-command", type: "LIST_MOUNTS", payload: [] })).status).toBe(200);
      const id = await delivered(hostname, "trigger_mounts");
      expect((await post(newHost(proto), { id, type: "LIST_MOUNTS", payload: [] })).status).toBe(200);
      expect((await getCommand(id))["state"]).toBe("delivered");
    });

    it("400 for bad gzip, bad JSON, a payload of the wrong shape or no hostname; nothing changes", async () => {
      const hostname = await registered(proto);
      const id = await delivered(hostname, "trigger_mounts");
      const path = `/api/v1/agent/command_result?hostname=${hostname}`;
      expectPlainError(await req("POST", path, { headers: GZIP, body: "nope" }), 400, /^bad gzip body: /);
      expectPlainError(await req("POST", path, { headers: GZIP, body: gzip("{") }), 400, /^invalid json: /);
      expectPlainError(await post(hostname, { id, type: "LIST_MOUNTS", payload: { mountpoint: "/" } }), 400, "invalid json: payload.mounts: expected array, got object");
      expectPlainError(await req("POST", "/api/v1/agent/command_result", { headers: GZIP, body: gzip({ id }) }), 400, "Missing hostname");
      expect((await getCommand(id))["state"]).toBe("delivered");
    });

    it("GET /admin/command: 400 Missing id, 404 unknown id, 405 for POST", async () => {
      expectPlainError(await req("GET", "/admin/command"), 400, "Missing id");
      expectPlainError(await req("GET", "/admin/command?id=nope"), 404, "command nope not found");
      expectPlainError(await req("POST", "/admin/command?id=nope"), 405, "Method not allowed");
    });
  });

  describe("GET /admin/agents", () => {
    it("lists agents in the legacy host-info shape with last_seen", async () => {
      const hostname = newHost(proto);
      const body = JSON.stringify({ hostname, os: "linux", arch: "arm64", cpu_cores: 4, ram_total: 8589934592, boot_time: 1769990000, ips: [] });
      expect((await req("POST", "/api/v1/agent/register", { headers: JSON_HEADERS, body })).status).toBe(200);
      const r = await req("GET", "/admin/agents");
      expect(r.status).toBe(200);
      expect(r.headers["content-type"]).toBe("application/json");
      const agents = JSON.parse(r.text) as Record<string, unknown>[];
      const mine = agents.find((a) => a["hostname"] === hostname);
      expect(mine).toMatchObject({ hostname, os: "linux", arch: "arm64", cpu_cores: 4, ram_total: 8589934592, boot_time: 1769990000, ips: [], pending_commands: 0 });
      expect(mine?.["last_seen"]).toMatch(/^\d{4}-\d\d-\d\dT.*Z$/);
      expect(r.text).toContain('"ram_total":8589934592,');
    });
  });

  describe("unknown routes", () => {
    it.each(["/", "/api/v1/metrics/", "/api/v1/unknown", "/admin"])("404 page not found for %s", async (path) => {
      expectPlainError(await req("POST", path), 404, "404 page not found");
    });
  });
});

describe("shutdown", () => {
  it("ends a pending long poll with 204 at once", async () => {
    const local = new Harness();
    local.headers = adminAuth;
    const shutdown = new AbortController();
    await local.start(
      createLegacyRoutes(s, { longPollMs: 30_000, maxBodyBytes: MAX_BODY, maxInflatedBytes: MAX_INFLATED, shutdownSignal: shutdown.signal }),
    );
    try {
      const hostname = await registered("h1");
      const polls = [local.request("h1", "GET", `/api/v1/agent/command?hostname=${hostname}`), local.request("h2", "GET", `/api/v1/agent/command?hostname=${hostname}`)];
      await new Promise((r) => setTimeout(r, 50));
      const t0 = Date.now();
      shutdown.abort();
      const replies = await Promise.all(polls);
      expect(replies.map((r) => r.status)).toEqual([204, 204]);
      expect(Date.now() - t0).toBeLessThan(1_000);
    } finally {
      await local.stop();
    }
  });
});

describe.each<Proto>(["h1", "h2"])("through the one-port app (Connect fallback) over %s", (proto) => {
  it("serves the legacy routes next to Connect", async () => {
    const app = await startTestApp({ longPollMs: LONG_POLL_MS });
    const client = new Harness();
    client.headers = { authorization: `Bearer ${app.adminToken}` };
    try {
      await client.attach(app.listener.port);
      const req = (method: string, path: string, opts?: RequestOptions) => client.request(proto, method, path, opts);
      const hostname = `app-${proto}`;
      const body = JSON.stringify({ hostname, os: "linux", ram_total: 8589934592 });
      expect((await req("POST", "/api/v1/agent/register", { headers: JSON_HEADERS, body })).status).toBe(200);
      const metrics = await req("POST", `/api/v1/metrics?hostname=${hostname}`, { headers: GZIP, body: gzip([cpuEnvelope(hostname)]) });
      expect(metrics.status).toBe(202);
      expect(await app.services.store.countEnvelopes(hostname)).toBe(1);
      expect((await req("GET", `/api/v1/agent/command?hostname=${hostname}`)).status).toBe(204);
      expect((await req("POST", `/admin/trigger_logs?hostname=${hostname}`)).text).toBe("Queued FetchLogs\n");
      const cmd = JSON.parse((await req("GET", `/api/v1/agent/command?hostname=${hostname}`)).text) as { id: string };
      const result = gzip({ id: cmd.id, type: "FETCH_LOGS", payload: [{ timestamp: 1, source: "kernel", level: "ERROR", message: "m" }] });
      expect((await req("POST", `/api/v1/agent/command_result?hostname=${hostname}`, { headers: GZIP, body: result })).status).toBe(200);
      const got = JSON.parse((await req("GET", `/admin/command?id=${cmd.id}`)).text) as Record<string, unknown>;
      expect(got).toMatchObject({ state: "completed", payload: [{ timestamp: 1, source: "kernel", level: "ERROR", message: "m" }] });
      expectPlainError(await req("GET", "/nope"), 404, "404 page not found");
      const bomb = zlib.gzipSync(Buffer.alloc(16 * 1024 * 1024));
      expectPlainError(await req("POST", `/api/v1/metrics?hostname=${hostname}`, { headers: GZIP, body: bomb }), 413, /after gunzip/);
    } finally {
      await client.stop();
      await app.close(500);
      app.removeDataDir();
    }
  });
});
