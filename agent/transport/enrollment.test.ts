import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EnrollmentState } from "../../gen/spectra/v1/access_service_pb.js";
import { AgentService, HostInfoSchema, type EnrollRequest, type EnrollResponseSchema } from "../../gen/spectra/v1/agent_service_pb.js";
import { createBackoff } from "./backoff.js";
import { createAgentConnection } from "./client.js";
import { ENROLLMENT_FILE, enrollWithRetry, type EnrollOptions } from "./enrollment.js";
import { serveAgentService } from "../testing/agent-service.js";

type Answer = MessageInitShape<typeof EnrollResponseSchema> | ConnectError;

/** A real AgentService on 127.0.0.1 whose Enroll answers from a script (the last answer repeats). */
async function startServer(script: Answer[]) {
  const requests: EnrollRequest[] = [];
  const impl: Partial<ServiceImpl<typeof AgentService>> = {
    async enroll(req) {
      requests.push(req);
      const answer = script[Math.min(requests.length, script.length) - 1]!;
      if (answer instanceof ConnectError) throw answer;
      return answer;
    },
  };
  const served = await serveAgentService(impl);
  return {
    url: served.url,
    requests,
    close: served.close,
  };
}

function captureLogger() {
  const lines: { level: number; msg: string; [k: string]: unknown }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l) as (typeof lines)[number]);
      cb();
    },
  });
  return { logger: pino({ level: "debug" }, stream), lines, text: () => lines.map((l) => JSON.stringify(l)).join("\n") };
}

let dir: string;
const cleanups: (() => unknown)[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "spectra-enroll-unit-"));
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

const TOKEN = "spe_abc_tokensecret";

/**
 * Runs enrollWithRetry with a fake clock: every wait is recorded and returns at once, and the run is stopped after
 * `maxCalls` Enroll calls, so a whole day of retries takes milliseconds.
 */
async function run(script: Answer[], opts: Partial<EnrollOptions> & { maxCalls?: number } = {}) {
  const server = await startServer(script);
  cleanups.push(() => server.close());
  const log = captureLogger();
  const connection = createAgentConnection({ baseUrl: server.url, logger: log.logger });
  cleanups.push(() => connection.close());
  const stored: string[] = [];
  const waits: number[] = [];
  const stopper = new AbortController();
  const maxCalls = opts.maxCalls ?? 6;
  const outcome = await enrollWithRetry({
    connection,
    credential: { store: async (key) => void stored.push(key) },
    dataDir: dir,
    token: { value: TOKEN, setting: "--enroll-token" },
    info: { host: create(HostInfoSchema, { hostname: "web-01" }), collectors: ["cpu"], reportIntervalMs: 5_000 },
    logger: log.logger,
    signal: stopper.signal,
    backoff: createBackoff({ initialMs: 1_000, maxMs: 60_000, random: () => 0.5 }),
    random: () => 0.5,
    sleep: async (ms) => {
      waits.push(ms);
      if (server.requests.length >= maxCalls) stopper.abort();
      return !stopper.signal.aborted;
    },
    ...opts,
  });
  return { outcome, server, waits, stored, log };
}

describe("enrollWithRetry", () => {
  it("polls pending at the server's retry_after, bounded, then stores the key and deletes its state", async () => {
    const r = await run([
      { state: EnrollmentState.PENDING, enrollmentId: "e-1", retryAfter: durationFromMs(30_000) },
      { state: EnrollmentState.PENDING, enrollmentId: "e-1", retryAfter: durationFromMs(86_400_000) },
      { state: EnrollmentState.PENDING, enrollmentId: "e-1" },
      { state: EnrollmentState.PENDING, enrollmentId: "e-1", retryAfter: durationFromMs(10) },
      { state: EnrollmentState.APPROVED, enrollmentId: "e-1", agentKey: "spa_e1_key" },
    ]);
    expect(r.outcome).toBe("enrolled");
    expect(r.stored).toEqual(["spa_e1_key"]);
    // retry_after as given; capped at 5 min; the 10 s default; raised to the 1 s floor (random 0.5: no jitter).
    expect(r.waits).toEqual([30_000, 300_000, 10_000, 1_000]);
    expect(r.server.requests.map((q) => [q.enrollmentToken, q.enrollmentId])).toEqual([
      [TOKEN, ""],
      ["", "e-1"],
      ["", "e-1"],
      ["", "e-1"],
      ["", "e-1"],
    ]);
    expect(new Set(r.server.requests.map((q) => q.enrollmentSecret)).size).toBe(1);
    expect(r.server.requests[0]!.reportInterval).toMatchObject({ seconds: 5n });
    expect(existsSync(join(dir, ENROLLMENT_FILE))).toBe(false);
    expect(r.log.text()).not.toContain(TOKEN);
    expect(r.log.text()).not.toContain("spa_e1_key");
    expect(r.log.text()).not.toContain(r.server.requests[0]!.enrollmentSecret);
  });

  it("after a denial waits an hour (or the server's retry_after, at least a minute) and logs it once", async () => {
    const r = await run(
      [
        { state: EnrollmentState.DENIED, enrollmentId: "e-1", message: "not one of ours" },
        { state: EnrollmentState.DENIED, enrollmentId: "e-1", message: "not one of ours", retryAfter: durationFromMs(5_000) },
        { state: EnrollmentState.DENIED, enrollmentId: "e-1", message: "not one of ours", retryAfter: durationFromMs(7_200_000) },
      ],
      { maxCalls: 5 },
    );
    expect(r.outcome).toBe("stopped");
    expect(r.waits).toEqual([3_600_000, 60_000, 7_200_000, 7_200_000, 7_200_000]);
    const denied = r.log.lines.filter((l) => l.level >= 50 && l.msg.startsWith("enrollment denied by the server"));
    expect(denied.map((l) => l.msg)).toEqual(["enrollment denied by the server: not one of ours"]);
    // Still the same enrollment: kept for an admin who changes their mind.
    expect(JSON.parse(readFileSync(join(dir, ENROLLMENT_FILE), "utf8"))).toMatchObject({ enrollmentId: "e-1" });
  });

  it("after a refused token waits an hour and names the setting once", async () => {
    const r = await run([new ConnectError("token already used", Code.PermissionDenied)], { maxCalls: 3 });
    expect(r.waits).toEqual([3_600_000, 3_600_000, 3_600_000]);
    const errors = r.log.lines.filter((l) => l.level >= 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.msg).toContain("the server refused the enrollment token from --enroll-token");
    expect(errors[0]!["reason"]).toBe("token already used");
    // The token is sent each time (no id yet), with the same secret.
    expect(r.server.requests.every((q) => q.enrollmentToken === TOKEN)).toBe(true);
    expect(new Set(r.server.requests.map((q) => q.enrollmentSecret)).size).toBe(1);
  });

  it("backs off on server errors and treats a server without enrollment as a rare retry", async () => {
    const unavailable = await run([new ConnectError("overloaded", Code.Unavailable)], { maxCalls: 3 });
    expect(unavailable.waits.every((w) => w <= 60_000)).toBe(true);
    const old = await run([new ConnectError("not here", Code.Unimplemented)], { maxCalls: 2 });
    expect(old.waits).toEqual([3_600_000, 3_600_000]);
    expect(old.log.text()).toContain("this server does not support enrollment");
  });

  it("continues the enrollment saved in enrollment.json without the token", async () => {
    writeFileSync(join(dir, ENROLLMENT_FILE), JSON.stringify({ version: 1, enrollmentId: "e-9", secret: "s".repeat(43) }), { mode: 0o600 });
    const r = await run([{ state: EnrollmentState.APPROVED, enrollmentId: "e-9", agentKey: "spa_e9_key" }], { token: undefined });
    expect(r.outcome).toBe("enrolled");
    expect(r.server.requests).toHaveLength(1);
    expect(r.server.requests[0]).toMatchObject({ enrollmentToken: "", enrollmentId: "e-9", enrollmentSecret: "s".repeat(43) });
  });

  it("starts over with the token when the server no longer knows the saved enrollment", async () => {
    writeFileSync(join(dir, ENROLLMENT_FILE), JSON.stringify({ version: 1, enrollmentId: "e-old", secret: "s".repeat(43) }), { mode: 0o600 });
    const r = await run([
      new ConnectError("no such enrollment", Code.NotFound),
      { state: EnrollmentState.APPROVED, enrollmentId: "e-new", agentKey: "spa_new_key" },
    ]);
    expect(r.outcome).toBe("enrolled");
    expect(r.server.requests[1]).toMatchObject({ enrollmentToken: TOKEN, enrollmentId: "" });
    expect(r.server.requests[1]!.enrollmentSecret).not.toBe("s".repeat(43));
  });

  it("has nothing to do without a token or a saved enrollment", async () => {
    const r = await run([], { token: undefined });
    expect(r.outcome).toBe("no-credential");
    expect(r.server.requests).toEqual([]);
  });
});
