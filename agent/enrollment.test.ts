// The whole agent (runCli, in process) against a real Connect server on 127.0.0.1 that fakes the server's side of
// enrollment and key checks: pending → approved, restart during a pending enrollment, denial, a refused token, key
// rotation over CommandPoll, a revoked key, and no credential at all.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EnrollmentState } from "../gen/spectra/v1/access_service_pb.js";
import { AgentService, type EnrollRequest, type EnrollResponseSchema, type RegisterRequest } from "../gen/spectra/v1/agent_service_pb.js";
import { MemoryMetricsSchema, type MetricBatch } from "../gen/spectra/v1/metrics_pb.js";
import type { AgentTuning } from "./agent.js";
import type { CollectorDefinition } from "./collectors/types.js";
import type { HostAccess } from "./host/host-access.js";
import { runCli } from "./main.js";
import { createBackoff } from "./transport/backoff.js";
import { serveAgentService } from "./testing/agent-service.js";

const TOKEN = "spe_tok_0123456789abcdef";
const KEY = "spa_a1_firstsecretfirstsecret";
const NEW_KEY = "spa_a1_rotatedsecretrotated";

function sink() {
  const stream = new PassThrough();
  let text = "";
  stream.on("data", (c) => (text += String(c)));
  return { stream, text: () => text };
}

const memoryOnly = {
  collectorNames: ["memory"],
  loadCollector: async (): Promise<CollectorDefinition> => ({
    name: "memory",
    defaultIntervalMs: 100,
    platforms: ["linux", "windows"],
    create: () => ({ collect: async () => [{ case: "memory", value: create(MemoryMetricsSchema, { ramTotal: 1024n }) }] }),
  }),
};

const testHost: HostAccess = {
  platform: "linux",
  paths: { procRoot: "/nonexistent", sysRoot: "/nonexistent", rootfs: "/nonexistent" },
  exec: { run: () => Promise.reject(new Error("no exec in tests")) },
};

const fastTuning: AgentTuning = {
  flushIntervalMs: 100,
  windowMs: 300,
  maxJitterMs: 10,
  backoff: () => createBackoff({ initialMs: 20, maxMs: 200, minMs: 5 }),
  enrollment: { minPollMs: 10 },
};

type EnrollInit = MessageInitShape<typeof EnrollResponseSchema>;
type EnrollBehaviour = (req: EnrollRequest, call: number) => EnrollInit | Promise<EnrollInit>;

interface Call {
  rpc: string;
  auth: string | null;
  at: number;
}

/** A fake server: Enroll per `behaviour`, every call recorded with its Authorization header. */
async function startServer(opts: { enroll?: EnrollBehaviour; acceptKey?: (auth: string | null) => boolean; rotateTo?: string } = {}) {
  const calls: Call[] = [];
  const enrolls: EnrollRequest[] = [];
  const registers: RegisterRequest[] = [];
  const batches: MetricBatch[] = [];
  let rotated = false;
  const check = (rpc: string, auth: string | null): void => {
    calls.push({ rpc, auth, at: Date.now() });
    if (opts.acceptKey && !opts.acceptKey(auth)) throw new ConnectError("agent key revoked", Code.Unauthenticated);
  };
  const impl: ServiceImpl<typeof AgentService> = {
    async enroll(req, ctx) {
      calls.push({ rpc: "Enroll", auth: ctx.requestHeader.get("authorization"), at: Date.now() });
      enrolls.push(req);
      if (!opts.enroll) throw new ConnectError("no enrollment here", Code.Unimplemented);
      const res: EnrollInit = { enrollmentId: "enr-1", ...(await opts.enroll(req, enrolls.length)) };
      return res;
    },
    async register(req, ctx) {
      check("Register", ctx.requestHeader.get("authorization"));
      registers.push(req);
      return {};
    },
    async streamMetrics(reqs, ctx) {
      check("StreamMetrics", ctx.requestHeader.get("authorization"));
      const acked: bigint[] = [];
      for await (const r of reqs) {
        if (r.batch) {
          batches.push(r.batch);
          acked.push(r.batch.sequence);
        }
      }
      return { ackedSequences: acked };
    },
    async pushMetrics(req, ctx) {
      check("PushMetrics", ctx.requestHeader.get("authorization"));
      if (req.batch) batches.push(req.batch);
      return { ackedSequence: req.batch?.sequence ?? 0n };
    },
    async *commandPoll(_req, ctx) {
      check("CommandPoll", ctx.requestHeader.get("authorization"));
      if (opts.rotateTo && !rotated) {
        rotated = true;
        yield { newAgentKey: opts.rotateTo };
        // End the stream soon so the next one shows the header in use.
        await new Promise((r) => setTimeout(r, 50));
        return;
      }
      await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
    },
    async commandResult(_req, ctx) {
      check("CommandResult", ctx.requestHeader.get("authorization"));
      return {};
    },
  };
  const served = await serveAgentService(impl);
  return {
    url: served.url,
    calls,
    enrolls,
    registers,
    batches,
    close: served.close,
  };
}

async function until(cond: () => boolean, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

let dir: string;
const cleanups: (() => unknown)[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "spectra-enroll-"));
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

/** Starts the agent in process; returns its log and a stop function resolving with the exit code. */
function runAgent(server: { url: string }, argv: string[] = [], env: Record<string, string> = {}, tuning: AgentTuning = fastTuning) {
  const shutdown = new AbortController();
  const err = sink();
  const run = runCli(["--server", server.url, "--data-dir", dir, "--hostname", "web-01", ...argv], {
    stderr: err.stream,
    env: { SPECTRA_COLLECTORS: "memory", ...env },
    shutdown: shutdown.signal,
    deps: { ...memoryOnly, host: testHost, tuning },
  });
  let stopped: Promise<number> | undefined;
  const stop = (): Promise<number> => {
    shutdown.abort();
    stopped ??= run;
    return stopped;
  };
  cleanups.push(stop);
  return { log: err.text, stop };
}

function expectNoSecrets(log: string, ...secrets: string[]): void {
  for (const s of secrets) expect(log).not.toContain(s);
}

const keyPath = (): string => join(dir, "agent.key");
const enrollmentPath = (): string => join(dir, "enrollment.json");

describe("enrollment", () => {
  it("waits while pending, stores the key (0600, atomically) on approval, then sends every call with it", async () => {
    const server = await startServer({
      enroll: (_req, n) =>
        n < 3
          ? { state: EnrollmentState.PENDING, retryAfter: durationFromMs(150) }
          : { state: EnrollmentState.APPROVED, agentKey: KEY },
    });
    cleanups.push(() => server.close());
    const agent = runAgent(server, ["--enroll-token", TOKEN]);

    await until(() => server.registers.length > 0, 10_000, "registration after approval");
    await until(() => server.calls.some((c) => c.rpc === "StreamMetrics") && server.calls.some((c) => c.rpc === "CommandPoll"), 10_000, "stream and poll");

    // First call: token and secret; the polls after it: id and the same secret, never the token again.
    expect(server.enrolls).toHaveLength(3);
    const [first, ...polls] = server.enrolls;
    expect(first).toMatchObject({ enrollmentToken: TOKEN, enrollmentId: "" });
    expect(first!.enrollmentSecret.length).toBeGreaterThanOrEqual(32);
    expect(first!.host?.hostname).toBe("web-01");
    expect(first!.collectors).toEqual(["memory"]);
    expect(Number(first!.reportInterval?.nanos ?? 0) / 1e6 + Number(first!.reportInterval?.seconds ?? 0n) * 1000).toBe(100);
    for (const p of polls) expect(p).toMatchObject({ enrollmentToken: "", enrollmentId: "enr-1", enrollmentSecret: first!.enrollmentSecret });
    // The server's retry_after was honoured (with at most 10 % jitter): no polling faster than asked.
    const enrollTimes = server.calls.filter((c) => c.rpc === "Enroll").map((c) => c.at);
    for (let i = 1; i < enrollTimes.length; i++) expect(enrollTimes[i]! - enrollTimes[i - 1]!).toBeGreaterThanOrEqual(130);

    // Nothing but Enroll before the approval, and no Authorization header on Enroll.
    const approvedAt = enrollTimes[2]!;
    expect(server.calls.filter((c) => c.rpc !== "Enroll").every((c) => c.at >= approvedAt)).toBe(true);
    expect(server.calls.filter((c) => c.rpc === "Enroll").every((c) => c.auth === null)).toBe(true);
    // Every other call carries the key.
    for (const c of server.calls.filter((c) => c.rpc !== "Enroll")) expect(c.auth).toBe(`Bearer ${KEY}`);

    // The key file: the key, mode 0600, no temporary file left, the enrollment state gone.
    expect(readFileSync(keyPath(), "utf8")).toBe(`${KEY}\n`);
    if (process.platform !== "win32") expect(statSync(keyPath()).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir).filter((f) => f.includes(".tmp"))).toEqual([]);
    expect(existsSync(enrollmentPath())).toBe(false);

    // Batches collected while pending were spooled and sent: the sequence starts at 1 with no gap.
    await until(() => server.batches.length >= 3, 10_000, "batches");
    const seqs = [...new Set(server.batches.map((b) => Number(b.sequence)))].sort((a, b) => a - b);
    expect(seqs[0]).toBe(1);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    const firstBatch = server.batches.find((b) => b.sequence === 1n)!;
    const ts = firstBatch.envelopes[0]?.timestamp;
    expect(ts && Number(ts.seconds) * 1000 + ts.nanos / 1e6).toBeLessThan(approvedAt);

    // Register carries the diagnostics allowed and the report interval.
    expect(server.registers[0]!.diagnostics).toEqual(["fetch_logs", "disk_usage", "list_mounts", "network_diag"]);

    expect(await agent.stop()).toBe(0);
    const log = agent.log();
    expect(log.match(/enrollment pending: waiting for an admin/g)).toHaveLength(1);
    expect(log).toContain("enrollment approved; agent key stored");
    expectNoSecrets(log, TOKEN, KEY, first!.enrollmentSecret);
  });

  it("continues a pending enrollment after a restart without using the token again", async () => {
    let approve = false;
    const server = await startServer({
      enroll: () => (approve ? { state: EnrollmentState.APPROVED, agentKey: KEY } : { state: EnrollmentState.PENDING, retryAfter: durationFromMs(5_000) }),
    });
    cleanups.push(() => server.close());
    const first = runAgent(server, [], { SPECTRA_ENROLL_TOKEN: TOKEN });
    await until(() => server.enrolls.length === 1 && existsSync(enrollmentPath()), 10_000, "first Enroll");
    await until(() => (JSON.parse(readFileSync(enrollmentPath(), "utf8")) as { enrollmentId: string }).enrollmentId === "enr-1", 5_000, "id saved");
    expect(await first.stop()).toBe(0);

    const state = JSON.parse(readFileSync(enrollmentPath(), "utf8")) as Record<string, unknown>;
    expect(Object.keys(state).sort()).toEqual(["enrollmentId", "secret", "version"]);
    expect(JSON.stringify(state)).not.toContain(TOKEN);
    if (process.platform !== "win32") expect(statSync(enrollmentPath()).mode & 0o777).toBe(0o600);
    expect(existsSync(keyPath())).toBe(false);

    approve = true;
    const second = runAgent(server, [], { SPECTRA_ENROLL_TOKEN: TOKEN });
    await until(() => server.registers.length > 0, 10_000, "registration");
    expect(server.enrolls).toHaveLength(2);
    expect(server.enrolls[1]).toMatchObject({ enrollmentToken: "", enrollmentId: "enr-1", enrollmentSecret: server.enrolls[0]!.enrollmentSecret });
    expect(server.enrolls.filter((r) => r.enrollmentToken !== "")).toHaveLength(1);
    expect(readFileSync(keyPath(), "utf8")).toBe(`${KEY}\n`);
    expect(await second.stop()).toBe(0);

    // A third start uses the stored key and does not enroll at all.
    const third = runAgent(server, [], { SPECTRA_ENROLL_TOKEN: TOKEN });
    await until(() => server.registers.length > 1, 10_000, "registration with the stored key");
    expect(server.enrolls).toHaveLength(2);
    expect(server.calls.at(-1)?.auth).toBe(`Bearer ${KEY}`);
    expect(await third.stop()).toBe(0);
  });

  it("logs a denial once and does not retry before the retry time", async () => {
    const server = await startServer({ enroll: () => ({ state: EnrollmentState.DENIED, message: "unknown host" }) });
    cleanups.push(() => server.close());
    const agent = runAgent(server, ["--enroll-token", TOKEN]);
    await until(() => server.enrolls.length === 1, 10_000, "Enroll");
    // Real timers: a second attempt would come within milliseconds if the agent spun.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(server.enrolls).toHaveLength(1);
    expect(server.calls.filter((c) => c.rpc !== "Enroll")).toEqual([]);
    expect(await agent.stop()).toBe(0);
    const log = agent.log();
    expect(log.match(/enrollment denied by the server: unknown host/g)).toHaveLength(1);
    expect(existsSync(keyPath())).toBe(false);
    expectNoSecrets(log, TOKEN);
  });

  it("names the setting when the server refuses the token, and retries rarely", async () => {
    const server = await startServer({
      enroll: () => {
        throw new ConnectError("enrollment token expired", Code.PermissionDenied);
      },
    });
    cleanups.push(() => server.close());
    const agent = runAgent(server, [], { SPECTRA_ENROLL_TOKEN: TOKEN });
    await until(() => server.enrolls.length === 1, 10_000, "Enroll");
    await new Promise((r) => setTimeout(r, 800));
    expect(server.enrolls).toHaveLength(1);
    expect(await agent.stop()).toBe(0);
    const log = agent.log();
    expect(log).toContain("the server refused the enrollment token from SPECTRA_ENROLL_TOKEN");
    expect(log).toContain("enrollment token expired");
    expectNoSecrets(log, TOKEN);
  });
});

describe("agent key", () => {
  it("switches to a key rotated over CommandPoll for the next calls and rewrites the key file", async () => {
    writeFileSync(keyPath(), `${KEY}\n`, { mode: 0o600 });
    const inodeBefore = statSync(keyPath()).ino;
    const server = await startServer({ rotateTo: NEW_KEY, acceptKey: (auth) => auth === `Bearer ${KEY}` || auth === `Bearer ${NEW_KEY}` });
    cleanups.push(() => server.close());
    const agent = runAgent(server);
    await until(() => server.calls.some((c) => c.rpc === "CommandPoll" && c.auth === `Bearer ${NEW_KEY}`), 10_000, "a CommandPoll with the new key");
    await until(() => server.calls.some((c) => c.rpc === "StreamMetrics" && c.auth === `Bearer ${NEW_KEY}`), 10_000, "a StreamMetrics with the new key");

    expect(server.enrolls).toEqual([]);
    const firstPoll = server.calls.find((c) => c.rpc === "CommandPoll")!;
    expect(firstPoll.auth).toBe(`Bearer ${KEY}`);
    // Once the new key was used, the old one never again.
    const firstNew = server.calls.findIndex((c) => c.auth === `Bearer ${NEW_KEY}`);
    expect(server.calls.slice(firstNew + 1).every((c) => c.auth === `Bearer ${NEW_KEY}`)).toBe(true);

    expect(readFileSync(keyPath(), "utf8")).toBe(`${NEW_KEY}\n`);
    expect(statSync(keyPath()).ino).not.toBe(inodeBefore); // replaced by rename, not rewritten in place
    if (process.platform !== "win32") expect(statSync(keyPath()).mode & 0o777).toBe(0o600);
    expect(await agent.stop()).toBe(0);
    const log = agent.log();
    expect(log.match(/"msg":"agent key rotated"/g)).toHaveLength(1);
    expectNoSecrets(log, KEY, NEW_KEY);
  });

  it("keeps a refused key, logs it once, keeps spooling and retries only after the long delay", async () => {
    writeFileSync(keyPath(), `${KEY}\n`, { mode: 0o600 });
    const server = await startServer({ acceptKey: () => false });
    cleanups.push(() => server.close());
    const agent = runAgent(server, [], {}, { ...fastTuning, authRetryMs: 60_000 });
    await until(() => server.calls.some((c) => c.rpc === "Register"), 10_000, "Register");
    await new Promise((r) => setTimeout(r, 1_000));
    // One Register attempt, and the stream and poll loops never start without registration... but the sender tries
    // once and then waits the long delay too.
    expect(server.calls.filter((c) => c.rpc === "Register")).toHaveLength(1);
    expect(server.calls.filter((c) => c.rpc === "StreamMetrics").length).toBeLessThanOrEqual(1);
    expect(server.calls.every((c) => c.auth === `Bearer ${KEY}`)).toBe(true);
    expect(await agent.stop()).toBe(0);
    const log = agent.log();
    expect(log.match(/the server refused this agent's key/g)).toHaveLength(1);
    expect(readFileSync(keyPath(), "utf8")).toBe(`${KEY}\n`);
    expectNoSecrets(log, KEY);
    // Batches stayed in the spool.
    const { openSpool } = await import("./transport/spool.js");
    const { pino } = await import("pino");
    const spool = openSpool({ dir, maxBytes: 1 << 20, maxAgeMs: 60_000, logger: pino({ level: "silent" }) });
    expect(spool.hasPending()).toBe(true);
    await spool.close();
  });

  it("without key or token, connects without a credential and says so once", async () => {
    const server = await startServer();
    cleanups.push(() => server.close());
    const agent = runAgent(server);
    await until(() => server.registers.length > 0 && server.batches.length > 0, 10_000, "registration and a batch");
    expect(server.calls.every((c) => c.auth === null)).toBe(true);
    expect(server.enrolls).toEqual([]);
    expect(await agent.stop()).toBe(0);
    expect(agent.log().match(/this agent has no key and no enrollment token/g)).toHaveLength(1);
  });

  it("refuses to start with an unusable key file", async () => {
    writeFileSync(keyPath(), "\n", { mode: 0o600 });
    const err = sink();
    const code = await runCli(["--server", "http://127.0.0.1:1", "--data-dir", dir], {
      stderr: err.stream,
      env: { SPECTRA_COLLECTORS: "memory" },
      deps: { ...memoryOnly, host: testHost, tuning: fastTuning },
    });
    expect(code).toBe(1);
    expect(err.text()).toContain("holds no usable agent key; delete it to enroll again");
  });
});
