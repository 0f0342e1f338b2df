// Who may do what, over a real server on 127.0.0.1 (both Connect handlers: the raw-batch ingest route too): a table
// of forbidden actions with the exact refusal and proof that nothing was stored or queued; enrollment through the
// RPCs; rotation and revocation with streams open.
import { create, toJson } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { AccessService, EnrollmentState, ListAdminTokensResponseSchema, Role } from "../../gen/spectra/v1/access_service_pb.js";
import { AdminService } from "../../gen/spectra/v1/admin_service_pb.js";
import { AgentService, HostInfoSchema, type CommandPollResponse } from "../../gen/spectra/v1/agent_service_pb.js";
import { CommandState, CommandType } from "../../gen/spectra/v1/diagnostics_pb.js";
import { HistoryService } from "../../gen/spectra/v1/history_service_pb.js";
import { MetricBatchSchema, MetricEnvelopeSchema } from "../../gen/spectra/v1/metrics_pb.js";
import { startTestApp, type TestApp } from "../testing/app.js";
import { bearer } from "../testing/credentials.js";
import { methodPolicy, SERVED_SERVICES } from "./auth.js";

let apps: TestApp[] = [];
afterEach(async () => {
  for (const a of apps.splice(0)) {
    await a.close(500);
    a.removeDataDir();
  }
});

async function start(opts: Parameters<typeof startTestApp>[0] = {}) {
  const app = await startTestApp({ access: { pendingRetryMs: 2_000, deniedRetryMs: 3_600_000 }, ...opts });
  apps.push(app);
  return app;
}

type Wire = "json" | "binary" | "grpc";
function transport(app: TestApp, token?: string, wire: Wire = "binary") {
  const interceptors: Interceptor[] = token ? [bearer(token)] : [];
  return wire === "grpc"
    ? createGrpcTransport({ baseUrl: app.baseUrl, interceptors })
    : createConnectTransport({ baseUrl: app.baseUrl, httpVersion: "2", useBinaryFormat: wire === "binary", interceptors });
}
const agentClient = (app: TestApp, token?: string, wire?: Wire) => createClient(AgentService, transport(app, token, wire));
const adminClient = (app: TestApp, token?: string) => createClient(AdminService, transport(app, token));
const accessClient = (app: TestApp, token?: string) => createClient(AccessService, transport(app, token));

function batch(hostname: string, seq: bigint) {
  return create(MetricBatchSchema, {
    hostname,
    sessionId: "s",
    sequence: seq,
    envelopes: [
      create(MetricEnvelopeSchema, { timestamp: timestampFromMs(1_700_000_000_000), payload: { case: "cpu", value: { usage: 1 } } }),
    ],
  });
}
const host = (hostname: string) => create(HostInfoSchema, { hostname, os: "linux" });

/** The code a call ends with ("ok" when it succeeds), and its message. */
async function outcome(p: Promise<unknown> | (() => Promise<unknown>)): Promise<Code | "ok"> {
  try {
    await (typeof p === "function" ? p() : p);
    return "ok";
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

/** Consumes a server stream until its first message (or its end / error). */
async function firstMessage<T>(stream: AsyncIterable<T>): Promise<T | undefined> {
  for await (const m of stream) return m;
  return undefined;
}

const SECRET = "0123456789abcdef-enrollment-secret";

describe("access policy table", () => {
  it("names every method of every served service", () => {
    const missing = SERVED_SERVICES.flatMap((svc) => svc.methods.map((m) => `${svc.typeName}/${m.name}`)).filter(
      (m) => methodPolicy(m) === undefined,
    );
    expect(missing).toEqual([]);
    expect(methodPolicy("spectra.v1.AgentService/Enroll")).toEqual({ kind: "public" });
    expect(methodPolicy("spectra.v1.AccessService/ListEnrollmentTokens")).toEqual({ kind: "role", role: "operator" });
    expect(methodPolicy("spectra.v1.AdminService/TriggerDisk")).toEqual({ kind: "role", role: "operator" });
    expect(methodPolicy("spectra.v1.HistoryService/QueryRange")).toEqual({ kind: "role", role: "viewer" });
  });
});

describe("forbidden actions over Connect and gRPC", () => {
  it("refuses each with its exact code, and stores or queues nothing", async () => {
    const app = await start();
    const s = app.services;
    const keyA = await app.agentKey("agent-a");
    const keyB = await app.agentKey("agent-b");
    const revokedKey = await app.agentKey("agent-r");
    await s.access.revoke("agent-r", "test");
    const viewer = await app.token("viewer");
    const operator = await app.token("operator");
    const revokedAdmin = await app.token("admin");
    const revokedAdminName = (await s.adminTokens.list()).find((t) => t.role === "admin" && t.name !== "test-admin-1")!.name;
    await s.adminTokens.revoke(revokedAdminName, "test");
    // B is registered and has a queued command, so stealing it would show.
    await agentClient(app, keyB).register({ host: host("agent-b") });
    const queued = await adminClient(app, app.adminToken).triggerListMounts({ hostname: "agent-b" });
    const commandId = queued.command!.command!.id;
    const enrollToken = (await accessClient(app, app.adminToken).createEnrollmentToken({ name: "t" })).token;
    const tokensBefore = (await s.adminTokens.list()).length;
    const enrollBefore = (await s.access.listEnrollmentTokens()).length;
    const wrongKey = keyA.slice(0, -4) + (keyA.endsWith("AAAA") ? "BBBB" : "AAAA");

    const cases: [string, () => Promise<unknown>, Code][] = [
      ["no credential: PushMetrics", () => agentClient(app).pushMetrics({ batch: batch("agent-a", 1n) }), Code.Unauthenticated],
      ["no credential: PushMetrics (JSON)", () => agentClient(app, undefined, "json").pushMetrics({ batch: batch("agent-a", 1n) }), Code.Unauthenticated],
      ["no credential: Register", () => agentClient(app).register({ host: host("agent-a") }), Code.Unauthenticated],
      ["no credential: ListAgents", () => adminClient(app).listAgents({}), Code.Unauthenticated],
      ["no credential: History", () => createClient(HistoryService, transport(app)).listHosts({}), Code.Unauthenticated],
      ["wrong key secret", () => agentClient(app, wrongKey).pushMetrics({ batch: batch("agent-a", 1n) }), Code.Unauthenticated],
      ["garbage credential", () => agentClient(app, "not-a-token").pushMetrics({ batch: batch("agent-a", 1n) }), Code.Unauthenticated],
      ["enrollment token as bearer", () => agentClient(app, enrollToken).pushMetrics({ batch: batch("agent-a", 1n) }), Code.Unauthenticated],
      ["revoked agent key", () => agentClient(app, revokedKey).pushMetrics({ batch: batch("agent-r", 1n) }), Code.Unauthenticated],
      ["revoked admin token", () => adminClient(app, revokedAdmin).listAgents({}), Code.Unauthenticated],
      ["A posts as B (binary)", () => agentClient(app, keyA).pushMetrics({ batch: batch("agent-b", 1n) }), Code.PermissionDenied],
      ["A posts as B (JSON)", () => agentClient(app, keyA, "json").pushMetrics({ batch: batch("agent-b", 1n) }), Code.PermissionDenied],
      ["A posts as B (gRPC)", () => agentClient(app, keyA, "grpc").pushMetrics({ batch: batch("agent-b", 1n) }), Code.PermissionDenied],
      [
        "A streams as B",
        () =>
          agentClient(app, keyA).streamMetrics(
            (async function* () {
              yield { batch: batch("agent-b", 2n) };
            })(),
          ),
        Code.PermissionDenied,
      ],
      ["A registers as B", () => agentClient(app, keyA).register({ host: host("agent-b") }), Code.PermissionDenied],
      ["A polls B's commands", () => firstMessage(agentClient(app, keyA).commandPoll({ hostname: "agent-b" })), Code.PermissionDenied],
      [
        "A answers B's command",
        () => agentClient(app, keyA).commandResult({ hostname: "agent-b", outcome: { commandId, type: CommandType.LIST_MOUNTS } }),
        Code.PermissionDenied,
      ],
      ["admin token on AgentService", () => agentClient(app, app.adminToken).pushMetrics({ batch: batch("agent-a", 1n) }), Code.PermissionDenied],
      ["agent key on AdminService", () => adminClient(app, keyA).listAgents({}), Code.PermissionDenied],
      ["viewer triggers a diagnostic", () => adminClient(app, viewer).triggerListMounts({ hostname: "agent-b" }), Code.PermissionDenied],
      ["operator creates an admin token", () => accessClient(app, operator).createAdminToken({ name: "x", role: Role.ADMIN }), Code.PermissionDenied],
      ["operator creates an enrollment token", () => accessClient(app, operator).createEnrollmentToken({ name: "x" }), Code.PermissionDenied],
      ["operator lists admin tokens", () => accessClient(app, operator).listAdminTokens({}), Code.PermissionDenied],
      ["operator revokes an agent", () => accessClient(app, operator).revokeAgent({ hostname: "agent-b" }), Code.PermissionDenied],
      ["viewer lists enrollment tokens", () => accessClient(app, viewer).listEnrollmentTokens({}), Code.PermissionDenied],
    ];
    const got = [];
    for (const [name, call, want] of cases) got.push([name, await outcome(call), want]);
    expect(got.filter(([, code, want]) => code !== want)).toEqual([]);

    // Nothing stored, registered, queued, claimed, answered or created.
    expect(await s.store.countEnvelopes()).toBe(0);
    expect((await s.store.listAgents()).map((a) => a.host.hostname)).toEqual(["agent-b"]);
    expect(await s.store.getCommand(commandId)).toMatchObject({ state: CommandState.QUEUED });
    expect((await s.store.listCommands({ limit: 10 })).length).toBe(1);
    expect((await s.adminTokens.list()).length).toBe(tokensBefore);
    expect((await s.access.listEnrollmentTokens()).length).toBe(enrollBefore);
    expect((await s.access.get("agent-b"))?.state).toBe("approved");

    // And what is allowed works: an operator triggers, a viewer reads, the audit trail names the tokens.
    await adminClient(app, operator).triggerDisk({ hostname: "agent-b", params: { path: "/var" } });
    expect((await adminClient(app, viewer).listCommands({})).commands.map((c) => c.requestedBy)).toEqual([
      (await s.adminTokens.list()).find((t) => t.role === "operator")!.name,
      "test-admin-1",
    ]);
    expect((await accessClient(app, operator).listEnrollmentTokens({})).tokens).toHaveLength(1);
    expect((await agentClient(app, keyA).pushMetrics({ batch: batch("agent-a", 1n) })).storedEnvelopes).toBe(1);
  });
});

describe("legacy REST", () => {
  async function post(app: TestApp, path: string, body: unknown, headers: Record<string, string> = {}) {
    const res = await fetch(`${app.baseUrl}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });
    return { status: res.status, text: await res.text(), auth: res.headers.get("www-authenticate") };
  }
  const metrics = [{ type: "cpu", timestamp: "2026-02-02T07:48:40Z", hostname: "old-01", data: { usage: 12.5, cores: [1] } }];
  const bearerOf = (t: string) => ({ authorization: `Bearer ${t}` });

  it("refuses unauthenticated ingest unless the address is listed, and binds keys to their host", async () => {
    const closed = await start();
    const refused = await post(closed, "/api/v1/metrics?hostname=old-01", metrics);
    expect(refused).toMatchObject({ status: 401, auth: 'Bearer realm="spectra"' });
    expect(refused.text).toMatch(/^Unauthorized: send an agent key .*not in --legacy-allow\n$/);
    expect((await post(closed, "/api/v1/agent/register", { hostname: "old-01" })).status).toBe(401);
    expect((await fetch(`${closed.baseUrl}/api/v1/agent/command?hostname=old-01`)).status).toBe(401);
    expect((await post(closed, "/api/v1/agent/command_result?hostname=old-01", { id: "x" })).status).toBe(401);
    expect((await post(closed, "/api/v1/metrics?hostname=old-01", metrics, bearerOf("spa_0000000000000000_" + "A".repeat(43)))).status).toBe(401);
    expect(await closed.services.store.countEnvelopes()).toBe(0);
    expect(await closed.services.store.listAgents()).toEqual([]);

    // With the agent's key: its own host only.
    const key = await closed.agentKey("old-01");
    expect((await post(closed, "/api/v1/metrics?hostname=old-01", metrics, bearerOf(key))).status).toBe(202);
    const other = await post(closed, "/api/v1/metrics?hostname=old-02", metrics, bearerOf(key));
    expect(other).toMatchObject({ status: 403, text: 'Forbidden: this key belongs to "old-01", not "old-02"\n' });
    expect((await post(closed, "/api/v1/agent/register", { hostname: "old-02" }, bearerOf(key))).status).toBe(403);
    expect((await post(closed, "/api/v1/agent/register", { hostname: "old-01" }, bearerOf(key))).status).toBe(200);
    expect(await closed.services.store.countEnvelopes()).toBe(1);
    expect((await closed.services.store.listAgents()).map((a) => a.host.hostname)).toEqual(["old-01"]);
    // An admin token with role admin may use the agent routes (scripts); a viewer may not.
    expect((await post(closed, "/api/v1/metrics?hostname=old-03", metrics, bearerOf(closed.adminToken))).status).toBe(202);
    expect((await post(closed, "/api/v1/metrics?hostname=old-03", metrics, bearerOf(await closed.token("viewer")))).status).toBe(403);

    // The same server with 127.0.0.0/8 listed: unauthenticated legacy ingest is let in, except as a host with a key.
    const { parseAddressList } = await import("../auth/address-matcher.js");
    const open = await start({ legacyAllow: parseAddressList("10.0.0.0/8, 127.0.0.0/8") });
    expect((await post(open, "/api/v1/agent/register", { hostname: "old-01" })).status).toBe(200);
    expect((await post(open, "/api/v1/metrics?hostname=old-01", metrics)).status).toBe(202);
    expect(await open.services.store.countEnvelopes("old-01")).toBe(1);
    await open.agentKey("new-01");
    const hijack = await post(open, "/api/v1/metrics?hostname=new-01", metrics);
    expect(hijack).toMatchObject({ status: 403, text: 'Forbidden: "new-01" has its own agent key; requests without it may not act as it\n' });
    expect(await open.services.store.countEnvelopes("new-01")).toBe(0);
    // A bad credential is refused even from a listed address (never silently downgraded).
    expect((await post(open, "/api/v1/metrics?hostname=old-01", metrics, bearerOf("garbage"))).status).toBe(401);
    // Only 10.0.0.0/8 listed: loopback is refused.
    const ten = await start({ legacyAllow: parseAddressList("10.0.0.0/8") });
    expect((await post(ten, "/api/v1/metrics?hostname=old-01", metrics)).status).toBe(401);
  });

  it("ends a long poll made with an agent key when the key is revoked", async () => {
    const app = await start({ longPollMs: 20_000 });
    const key = await app.agentKey("old-09");
    expect((await post(app, "/api/v1/agent/register", { hostname: "old-09" }, bearerOf(key))).status).toBe(200);
    const t0 = Date.now();
    const poll = fetch(`${app.baseUrl}/api/v1/agent/command?hostname=old-09`, { headers: bearerOf(key) }).then(async (r) => [r.status, await r.text()]);
    await new Promise((r) => setTimeout(r, 200));
    await app.services.access.revoke("old-09", "test");
    expect(await poll).toEqual([401, "Unauthorized: agent key revoked\n"]);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect((await fetch(`${app.baseUrl}/api/v1/agent/command?hostname=old-09`, { headers: bearerOf(key) })).status).toBe(401);
  });

  it("needs an admin token with the right role on /admin/*, and records its name", async () => {
    const { parseAddressList } = await import("../auth/address-matcher.js");
    const app = await start({ legacyAllow: parseAddressList("127.0.0.1") });
    expect((await post(app, "/api/v1/agent/register", { hostname: "old-01" })).status).toBe(200);
    const trigger = (headers: Record<string, string>) =>
      fetch(`${app.baseUrl}/admin/trigger_logs?hostname=old-01`, { method: "POST", headers }).then(async (r) => [r.status, await r.text()]);
    expect(await trigger({})).toEqual([401, "Unauthorized: send an admin token (Authorization: Bearer spt_...)\n"]);
    expect((await trigger(bearerOf(await app.agentKey("old-01"))))[0]).toBe(403);
    expect(await trigger(bearerOf(await app.token("viewer")))).toEqual([
      403,
      'Forbidden: admin token "test-viewer-2" has role viewer; this needs operator\n',
    ]);
    expect(await app.services.store.listCommands({ limit: 10 })).toEqual([]);
    expect(await trigger(bearerOf(await app.token("operator")))).toEqual([200, "Queued FetchLogs\n"]);
    const [cmd] = await app.services.store.listCommands({ limit: 10 });
    expect(cmd!.requestedBy).toBe("test-operator-3");
    const read = (path: string, headers: Record<string, string>) => fetch(`${app.baseUrl}${path}`, { headers }).then((r) => r.status);
    expect(await read("/admin/agents", {})).toBe(401);
    expect(await read("/admin/agents", bearerOf(await app.token("viewer")))).toBe(200);
    expect(await read(`/admin/command?id=${cmd!.command.id}`, bearerOf(await app.token("viewer")))).toBe(200);
  });
});

describe("enrollment through the RPCs", () => {
  it("pending → approve → the key works once collected; repeated first calls are answered, not refused", async () => {
    const app = await start();
    const access = accessClient(app, app.adminToken);
    const anon = agentClient(app);
    const { token, info } = await access.createEnrollmentToken({ name: "rack-7", singleUse: true, labels: { rack: "7" } });
    expect(token).toMatch(/^spe_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(info).toMatchObject({ singleUse: true, autoApprove: false, uses: 0, createdBy: "test-admin-1", labels: { rack: "7" } });
    const first = await anon.enroll({ enrollmentToken: token, host: host("web-09"), enrollmentSecret: SECRET, reportInterval: durationFromMs(5_000) });
    expect(first).toMatchObject({ state: EnrollmentState.PENDING, agentKey: "", retryAfter: { seconds: 2n } });
    expect(first.enrollmentId).not.toBe("");
    // The same first call again (its answer was lost): the same enrollment, the single-use token is not used twice.
    const again = await anon.enroll({ enrollmentToken: token, host: host("web-09"), enrollmentSecret: SECRET });
    expect(again.enrollmentId).toBe(first.enrollmentId);
    const pending = (await adminClient(app, app.adminToken).listAgents({})).agents.find((a) => a.host?.hostname === "web-09");
    expect(pending).toMatchObject({ enrollmentState: EnrollmentState.PENDING, labels: { rack: "7" }, reportInterval: { seconds: 5n } });
    const poll = (secret = SECRET) => anon.enroll({ enrollmentId: first.enrollmentId, enrollmentSecret: secret });
    expect((await poll()).state).toBe(EnrollmentState.PENDING);
    expect(await outcome(poll("another-secret-of-16+chars"))).toBe(Code.PermissionDenied);
    expect(await outcome(anon.enroll({ enrollmentId: "nope", enrollmentSecret: SECRET }))).toBe(Code.NotFound);
    expect(await outcome(anon.enroll({ enrollmentToken: token, host: host("web-09"), enrollmentSecret: "short" }))).toBe(Code.InvalidArgument);

    await access.approveAgent({ hostname: "web-09" });
    const a1 = await poll();
    expect(a1.state).toBe(EnrollmentState.APPROVED);
    expect(a1.agentKey).toMatch(/^spa_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    // Polled again before using it (the answer was lost): a fresh key replaces the first.
    const a2 = await poll();
    expect(a2.agentKey).not.toBe(a1.agentKey);
    expect(await outcome(agentClient(app, a1.agentKey).register({ host: host("web-09") }))).toBe(Code.Unauthenticated);
    const agent = agentClient(app, a2.agentKey);
    await agent.register({ host: host("web-09"), collectors: ["cpu"], diagnostics: ["list_mounts"], reportInterval: durationFromMs(10_000) });
    expect(await poll()).toMatchObject({ state: EnrollmentState.APPROVED, agentKey: "" });
    expect((await agent.pushMetrics({ batch: batch("web-09", 1n) })).storedEnvelopes).toBe(1);
    const listed = (await adminClient(app, app.adminToken).listAgents({})).agents.find((a) => a.host?.hostname === "web-09");
    expect(listed).toMatchObject({
      enrollmentState: EnrollmentState.APPROVED,
      labels: { rack: "7" },
      diagnostics: ["list_mounts"],
      reportInterval: { seconds: 10n },
      collectors: ["cpu"],
    });
    // The single-use token is spent.
    expect(await outcome(anon.enroll({ enrollmentToken: token, host: host("web-10"), enrollmentSecret: SECRET }))).toBe(Code.PermissionDenied);
    expect((await access.listEnrollmentTokens({})).tokens[0]).toMatchObject({ uses: 1 });
  });

  it("deny, expired, revoked, unknown and reused tokens, and a race for one single-use token", async () => {
    const app = await start();
    const access = accessClient(app, app.adminToken);
    const anon = agentClient(app);
    const multi = (await access.createEnrollmentToken({ name: "multi", singleUse: false })).token;
    const p = await anon.enroll({ enrollmentToken: multi, host: host("web-11"), enrollmentSecret: SECRET });
    await access.denyAgent({ hostname: "web-11" });
    const denied = await anon.enroll({ enrollmentId: p.enrollmentId, enrollmentSecret: SECRET });
    expect(denied).toMatchObject({ state: EnrollmentState.DENIED, agentKey: "", retryAfter: { seconds: 3600n } });
    expect(denied.message).toMatch(/denied/);
    expect(await outcome(access.denyAgent({ hostname: "nobody" }))).toBe(Code.NotFound);

    const expired = (await access.createEnrollmentToken({ name: "short", ttl: durationFromMs(1) })).token;
    await new Promise((r) => setTimeout(r, 20));
    const enrollWith = (t: string, h: string) => anon.enroll({ enrollmentToken: t, host: host(h), enrollmentSecret: SECRET });
    expect(await outcome(enrollWith(expired, "web-12"))).toBe(Code.PermissionDenied);
    const revoked = await access.createEnrollmentToken({ name: "gone" });
    await access.revokeEnrollmentToken({ id: revoked.info!.id });
    expect(await outcome(enrollWith(revoked.token, "web-12"))).toBe(Code.PermissionDenied);
    expect(await outcome(enrollWith(revoked.token.slice(0, -3) + "xyz", "web-12"))).toBe(Code.Unauthenticated);
    expect(await outcome(enrollWith("spe_0000000000000000_" + "A".repeat(43), "web-12"))).toBe(Code.Unauthenticated);
    expect(await outcome(enrollWith("", "web-12"))).toBe(Code.Unauthenticated);
    expect(await app.services.access.get("web-12")).toBeUndefined();

    // Eight agents race for one single-use token: exactly one gets in.
    const single = (await access.createEnrollmentToken({ name: "once", singleUse: true })).token;
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => outcome(enrollWith(single, `racer-${i}`))));
    expect(results.filter((r) => r === "ok")).toHaveLength(1);
    expect(results.filter((r) => r === Code.PermissionDenied)).toHaveLength(7);
    expect((await app.services.access.list()).filter((r) => r.hostname.startsWith("racer-"))).toHaveLength(1);
  });

  it("auto-approves a new host at once, but a known host enrolling again waits for approval", async () => {
    const app = await start();
    const access = accessClient(app, app.adminToken);
    const anon = agentClient(app);
    const auto = (await access.createEnrollmentToken({ name: "auto", autoApprove: true, singleUse: false })).token;
    const r = await anon.enroll({ enrollmentToken: auto, host: host("web-20"), enrollmentSecret: SECRET });
    expect(r.state).toBe(EnrollmentState.APPROVED);
    const oldKey = r.agentKey;
    await agentClient(app, oldKey).register({ host: host("web-20") });
    // Someone enrolls as web-20 again (a reinstall, or an impostor): pending, and the old key keeps working.
    const again = await anon.enroll({ enrollmentToken: auto, host: host("web-20"), enrollmentSecret: SECRET + "-new" });
    expect(again).toMatchObject({ state: EnrollmentState.PENDING, agentKey: "" });
    expect(await outcome(agentClient(app, oldKey).pushMetrics({ batch: batch("web-20", 1n) }))).toBe("ok");
    // Approved: the new enrollment collects a new key, which replaces the old one.
    await access.approveAgent({ hostname: "web-20" });
    const newKey = (await anon.enroll({ enrollmentId: again.enrollmentId, enrollmentSecret: SECRET + "-new" })).agentKey;
    expect(newKey).not.toBe("");
    expect(await outcome(agentClient(app, oldKey).pushMetrics({ batch: batch("web-20", 2n) }))).toBe(Code.Unauthenticated);
    expect(await outcome(agentClient(app, newKey).pushMetrics({ batch: batch("web-20", 3n) }))).toBe("ok");
  });
});

describe("rotation and revocation with streams open", () => {
  /** Opens CommandPoll and collects its messages; `ended` resolves with how it ended. */
  function openPoll(client: Client<typeof AgentService>, hostname: string) {
    const messages: CommandPollResponse[] = [];
    const waiters: (() => void)[] = [];
    const ac = new AbortController();
    const ended = (async () => {
      try {
        for await (const m of client.commandPoll({ hostname }, { signal: ac.signal })) {
          messages.push(m);
          for (const w of waiters.splice(0)) w();
        }
        return "ended" as const;
      } catch (err) {
        return ConnectError.from(err).code;
      } finally {
        for (const w of waiters.splice(0)) w();
      }
    })();
    const next = async (n: number, ms = 5_000) => {
      const until = Date.now() + ms;
      while (messages.length < n && Date.now() < until) await new Promise<void>((r) => (waiters.push(r), setTimeout(r, 100)));
      return messages[n - 1];
    };
    return { messages, ended, next, close: () => ac.abort() };
  }

  it("sends a rotated key on the open stream; the old key works until the new one is used", async () => {
    const app = await start();
    const access = accessClient(app, app.adminToken);
    const oldKey = await app.agentKey("web-30");
    const agent = agentClient(app, oldKey);
    await agent.register({ host: host("web-30") });
    const poll = openPoll(agent, "web-30");
    await new Promise((r) => setTimeout(r, 100));
    await access.rotateAgentKey({ hostname: "web-30" });
    const msg = await poll.next(1);
    expect(msg?.newAgentKey).toMatch(/^spa_/);
    expect(msg?.command).toBeUndefined();
    const newKey = msg!.newAgentKey;
    // Until the new key is used, both work.
    expect(await outcome(agent.pushMetrics({ batch: batch("web-30", 1n) }))).toBe("ok");
    const renewed = agentClient(app, newKey);
    expect(await outcome(renewed.pushMetrics({ batch: batch("web-30", 2n) }))).toBe("ok");
    // The new key was used: the old one is refused, and the stream opened with it ends quietly (the agent reconnects).
    expect(await outcome(agent.pushMetrics({ batch: batch("web-30", 3n) }))).toBe(Code.Unauthenticated);
    expect(await poll.ended).toBe("ended");
    // Commands reach the agent on a stream opened with the new key.
    const poll2 = openPoll(renewed, "web-30");
    await new Promise((r) => setTimeout(r, 100));
    const trig = await adminClient(app, app.adminToken).triggerListMounts({ hostname: "web-30" });
    expect((await poll2.next(1))?.command?.id).toBe(trig.command?.command?.id);
    poll2.close();
    await poll2.ended;
  });

  it("sends the rotated key on CommandPoll while a StreamMetrics stream of the same agent is open too", async () => {
    const app = await start();
    const oldKey = await app.agentKey("web-32");
    const agent = agentClient(app, oldKey);
    await agent.register({ host: host("web-32") });
    // the real agent keeps a StreamMetrics window open nearly all the time
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const stream = agent.streamMetrics(
      (async function* () {
        yield { batch: batch("web-32", 1n) };
        await gate;
      })(),
    );
    const poll = openPoll(agent, "web-32");
    await new Promise((r) => setTimeout(r, 150));
    await accessClient(app, app.adminToken).rotateAgentKey({ hostname: "web-32" });
    const msg = await poll.next(1);
    expect(msg?.newAgentKey).toMatch(/^spa_/);
    expect(await outcome(agentClient(app, msg!.newAgentKey).pushMetrics({ batch: batch("web-32", 2n) }))).toBe("ok");
    release();
    await stream.catch(() => undefined);
    poll.close();
    await poll.ended;
  });

  it("delivers a rotation requested while no stream was open at the next one, and ends the old key after the grace", async () => {
    let now = Date.now();
    const app = await start({ clock: () => now, access: { keyGraceMs: 60_000 } });
    const oldKey = await app.agentKey("web-31");
    const agent = agentClient(app, oldKey);
    await agent.register({ host: host("web-31") });
    await accessClient(app, app.adminToken).rotateAgentKey({ hostname: "web-31" });
    const poll = openPoll(agent, "web-31");
    const k1 = (await poll.next(1))!.newAgentKey;
    poll.close();
    await poll.ended;
    // The agent reconnected without using it (it crashed before storing it): a fresh key, the first is void.
    now += 1;
    const poll2 = openPoll(agent, "web-31");
    const k2 = (await poll2.next(1))!.newAgentKey;
    expect(k2).not.toBe(k1);
    poll2.close();
    await poll2.ended;
    expect(await outcome(agentClient(app, k1).pushMetrics({ batch: batch("web-31", 1n) }))).toBe(Code.Unauthenticated);
    // The grace ran out without the new key being used: the old key is refused, the new one still works.
    now += 61_000;
    expect(await outcome(agent.pushMetrics({ batch: batch("web-31", 2n) }))).toBe(Code.Unauthenticated);
    expect(await outcome(agentClient(app, k2).pushMetrics({ batch: batch("web-31", 3n) }))).toBe("ok");
  });

  it("revocation ends open CommandPoll and StreamMetrics streams at once; the next call is refused", async () => {
    const app = await start();
    const key = await app.agentKey("web-32");
    const agent = agentClient(app, key);
    await agent.register({ host: host("web-32") });
    const poll = openPoll(agent, "web-32");
    // A metrics stream that sends one batch and then waits (as the agent does between batches).
    let release!: () => void;
    const hold = new Promise<void>((r) => (release = r));
    const metrics = outcome(
      agent.streamMetrics(
        (async function* () {
          yield { batch: batch("web-32", 1n) };
          await hold;
        })(),
      ),
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(app.services.access.streams.count("web-32")).toBe(2);
    await accessClient(app, app.adminToken).revokeAgent({ hostname: "web-32" });
    expect(await poll.ended).toBe(Code.Unauthenticated);
    expect(await metrics).toBe(Code.Unauthenticated);
    release();
    expect(await app.services.store.countEnvelopes("web-32")).toBe(1); // the batch before the revocation stays
    expect(await outcome(agent.register({ host: host("web-32") }))).toBe(Code.Unauthenticated);
    expect(await outcome(firstMessage(agent.commandPoll({ hostname: "web-32" })))).toBe(Code.Unauthenticated);
    const listed = (await adminClient(app, app.adminToken).listAgents({})).agents.find((a) => a.host?.hostname === "web-32");
    expect(listed?.enrollmentState).toBe(EnrollmentState.REVOKED);
    await new Promise((r) => setTimeout(r, 50));
    expect(app.services.access.streams.count("web-32")).toBe(0);
  });
});

describe("admin tokens over AccessService", () => {
  it("creates (secret shown once), lists without secrets, revokes by name or id", async () => {
    const app = await start();
    const access = accessClient(app, app.adminToken);
    const created = await access.createAdminToken({ name: "grafana", role: Role.VIEWER });
    expect(created.token).toMatch(/^spt_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(created.info).toMatchObject({ name: "grafana", role: Role.VIEWER, revoked: false });
    expect(await outcome(access.createAdminToken({ name: "grafana", role: Role.ADMIN }))).toBe(Code.AlreadyExists);
    expect(await outcome(access.createAdminToken({ name: "x" }))).toBe(Code.InvalidArgument);
    expect(await outcome(access.createAdminToken({ name: "bad name!", role: Role.ADMIN }))).toBe(Code.InvalidArgument);
    const viewer = adminClient(app, created.token);
    await viewer.listAgents({});
    const list = await access.listAdminTokens({});
    expect(list.tokens.map((t) => [t.name, t.role, t.revoked])).toEqual([
      ["grafana", Role.VIEWER, false],
      ["test-admin-1", Role.ADMIN, false],
    ]);
    expect(list.tokens[0]!.lastUsed).toBeDefined();
    expect(JSON.stringify(toJson(ListAdminTokensResponseSchema, list))).not.toContain(created.token.slice("spt_0123456789abcdef_".length));
    await access.revokeAdminToken({ nameOrId: created.info!.id });
    expect(await outcome(viewer.listAgents({}))).toBe(Code.Unauthenticated);
    expect(await outcome(access.revokeAdminToken({ nameOrId: "nobody" }))).toBe(Code.NotFound);
    expect(await outcome(access.removeAgent({ hostname: "x" }))).toBe(Code.NotFound); // no such agent
  });
});

describe("admin token revocation with streams open", () => {
  /** How a server stream ends: "ended" or its error code. */
  const ending = (stream: AsyncIterable<unknown>) =>
    (async () => {
      try {
        for await (const _ of stream);
        return "ended";
      } catch (err) {
        return ConnectError.from(err).code;
      }
    })();

  it("ends WatchHost and WatchCommand streams opened with the token at once; another token's stream goes on", async () => {
    const app = await start();
    const key = await app.agentKey("web-40");
    const agent = agentClient(app, key);
    await agent.register({ host: host("web-40") });
    const doomed = await app.token("viewer");
    const other = await app.token("viewer");
    const history = (token: string) => createClient(HistoryService, transport(app, token));
    const commandId = (await adminClient(app, app.adminToken).triggerListMounts({ hostname: "web-40" })).command!.command!.id;

    // Open the streams and see a first message on each, so they are surely being served.
    const watchCommand = adminClient(app, doomed).watchCommand({ commandId })[Symbol.asyncIterator]();
    expect((await watchCommand.next()).done).toBe(false);
    const hosts = [history(doomed).watchHost({ hostname: "web-40" }), history(other).watchHost({ hostname: "web-40" })].map((s) =>
      s[Symbol.asyncIterator](),
    );
    const firsts = hosts.map((it) => it.next());
    let seq = 1n;
    let seen = false;
    void Promise.all(firsts).then(() => (seen = true));
    // A watch sees batches that arrive after it started: send until both have one (bounded).
    for (let i = 0; i < 100 && !seen; i++) {
      await agent.pushMetrics({ batch: batch("web-40", seq++) });
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const f of firsts) expect((await f).done).toBe(false);
    const doomedHost = ending({ [Symbol.asyncIterator]: () => hosts[0]! });
    const doomedCommand = ending({ [Symbol.asyncIterator]: () => watchCommand });

    await accessClient(app, app.adminToken).revokeAdminToken({ nameOrId: doomed.split("_")[1]! });
    // Nothing else happens on the streams: the revocation alone ends them.
    expect(await doomedHost).toBe(Code.Unauthenticated);
    expect(await doomedCommand).toBe(Code.Unauthenticated);
    expect(await outcome(history(doomed).watchHost({ hostname: "web-40" })[Symbol.asyncIterator]().next())).toBe(Code.Unauthenticated);

    // The other viewer's stream still delivers.
    const next = hosts[1]!.next();
    await agent.pushMetrics({ batch: batch("web-40", seq++) });
    expect((await next).done).toBe(false);
    await hosts[1]!.return?.();
  });
});

describe("CreateEnrollmentToken single_use", () => {
  it("is single use when the caller does not say, multi use only when asked", async () => {
    const app = await start();
    const access = accessClient(app, app.adminToken);
    const anon = agentClient(app);
    const unset = await access.createEnrollmentToken({ name: "default" });
    expect(unset.info).toMatchObject({ singleUse: true });
    expect((await anon.enroll({ enrollmentToken: unset.token, host: host("once-1"), enrollmentSecret: SECRET })).state).toBe(
      EnrollmentState.PENDING,
    );
    expect(await outcome(anon.enroll({ enrollmentToken: unset.token, host: host("once-2"), enrollmentSecret: SECRET }))).toBe(
      Code.PermissionDenied,
    );
    // Over JSON too (the field is absent from the request body).
    const json = createClient(AccessService, transport(app, app.adminToken, "json"));
    expect((await json.createEnrollmentToken({ name: "json-default" })).info).toMatchObject({ singleUse: true });
    const multi = await access.createEnrollmentToken({ name: "many", singleUse: false });
    expect(multi.info).toMatchObject({ singleUse: false });
    for (const h of ["many-1", "many-2"]) {
      expect((await anon.enroll({ enrollmentToken: multi.token, host: host(h), enrollmentSecret: SECRET })).state).toBe(EnrollmentState.PENDING);
    }
    expect((await access.createEnrollmentToken({ name: "explicit", singleUse: true })).info).toMatchObject({ singleUse: true });
  });
});
