// Mutual TLS end to end, with certificates made by the openssl command at test time: a real server on 127.0.0.1
// port 0 serving TLS with a client CA, and the agent's real transport (agent/transport/client.ts) presenting
// client certificates. Accepted with the right certificate; refused without one (require), with one from another
// CA, and with another agent's certificate once the key is pinned; an admin clears a pin; optional mode lets
// certificate-less admin tools and agents in but still holds a pinned agent to its certificate (on REST too: 403).
import { mkdtempSync, rmSync } from "node:fs";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createAgentConnection, type AgentConnection, type HttpMode } from "../agent/transport/client.js";
import { silentLogger } from "../common/logger.js";
import { AccessService } from "../gen/spectra/v1/access_service_pb.js";
import { AdminService } from "../gen/spectra/v1/admin_service_pb.js";
import { HostInfoSchema } from "../gen/spectra/v1/agent_service_pb.js";
import type { ListenOptions } from "../server/http/listener.js";
import { hasOpenssl, makeTestPki, type TestCert, type TestPki } from "../server/http/testing/certs.js";
import { startTestApp, type TestApp } from "../server/testing/app.js";
import { bearer } from "../server/testing/credentials.js";

let dir = "";
let pki: TestPki;
const apps: TestApp[] = [];
const connections: AgentConnection[] = [];

beforeAll(() => {
  if (!hasOpenssl) return;
  dir = mkdtempSync(join(tmpdir(), "spectra-mtls-e2e-"));
  pki = makeTestPki(dir, ["agent-a", "agent-b"]);
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});
afterEach(async () => {
  for (const c of connections.splice(0)) c.close();
  for (const a of apps.splice(0)) {
    await a.close(500);
    a.removeDataDir();
  }
});

async function start(clientAuth: "require" | "optional"): Promise<TestApp> {
  // A variable, not a literal: AppOptions.tls hands the listener's TLS settings through as they are.
  const tls: NonNullable<ListenOptions["tls"]> = { cert: pki.server.cert, key: pki.server.key, clientCa: pki.ca.cert, clientAuth };
  const app = await startTestApp({ tls });
  apps.push(app);
  return app;
}

/** The agent's transport with its key and, when given, a client certificate; it verifies the server with the test CA. */
function agent(app: TestApp, key: string, cert?: TestCert, mode: HttpMode = "h2"): AgentConnection {
  const conn = createAgentConnection({
    baseUrl: app.baseUrl,
    logger: silentLogger(),
    initialMode: mode,
    credential: { current: () => key, refused: () => {}, accepted: () => {} },
    tls: { ca: pki.ca.cert, ...(cert ? { cert: cert.cert, key: cert.key } : {}) },
  });
  connections.push(conn);
  return conn;
}

/** Registers `hostname` over `conn`: "ok", or the code it was refused with (a failed handshake: "tls"). */
async function register(conn: AgentConnection, hostname: string): Promise<Code | "ok" | "tls"> {
  try {
    await conn.client().register({ host: create(HostInfoSchema, { hostname, os: "linux" }) }, { timeoutMs: 10_000 });
    return "ok";
  } catch (err) {
    const failure = conn.reportFailure(err);
    // No certificate, or one from another CA: the TLS handshake fails (alert), before any request is read.
    if (/certificate|alert|ECONNRESET|socket hang up|closed/i.test(`${failure.reason} ${String((err as Error).cause ?? "")}`)) {
      if (failure.code !== Code.PermissionDenied && failure.code !== Code.Unauthenticated) return "tls";
    }
    return ConnectError.from(err).code;
  }
}

/** An admin client over h2, optionally with a client certificate. */
function admin<S extends typeof AccessService | typeof AdminService>(service: S, app: TestApp, cert?: TestCert) {
  return createClient(
    service,
    createConnectTransport({
      baseUrl: app.baseUrl,
      httpVersion: "2",
      interceptors: [bearer(app.adminToken)],
      nodeOptions: { ca: pki.ca.cert, ...(cert ? { cert: cert.cert, key: cert.key } : {}) },
    }),
  );
}

const registered = async (app: TestApp) => (await app.services.store.listAgents()).map((a) => a.host.hostname).sort();
const pinOf = async (app: TestApp, hostname: string) => (await app.services.access.get(hostname))?.certFingerprint;

describe.skipIf(!hasOpenssl)(`mutual TLS${hasOpenssl ? "" : " — skipped: the openssl CLI is not installed"}`, () => {
  it("require: the right certificate gets in and is pinned; none, another CA's, or another agent's is refused", async () => {
    const app = await start("require");
    const keyA = await app.agentKey("agent-a");
    const keyB = await app.agentKey("agent-b");
    const [certA, certB] = [pki.clients["agent-a"]!, pki.clients["agent-b"]!];

    // Refused before the key is ever used: no certificate, one from another CA (the handshake fails).
    expect(await register(agent(app, keyA), "agent-a")).toBe("tls");
    expect(await register(agent(app, keyA, pki.foreignClient), "agent-a")).toBe("tls");
    expect(await registered(app)).toEqual([]);
    expect(await pinOf(app, "agent-a")).toBeUndefined();

    // The first certificate the key is used with is pinned.
    expect(await register(agent(app, keyA, certA), "agent-a")).toBe("ok");
    expect(await pinOf(app, "agent-a")).toBe(certA.fingerprint);
    // The HTTP/1.1 fallback presents the certificate too.
    expect(await register(agent(app, keyA, certA, "http1"), "agent-a")).toBe("ok");
    expect(await register(agent(app, keyA, undefined, "http1"), "agent-a")).toBe("tls");
    expect(await register(agent(app, keyB, certB), "agent-b")).toBe("ok");
    expect(await pinOf(app, "agent-b")).toBe(certB.fingerprint);

    // A's key with B's certificate (valid, same CA) is refused: the key is pinned to A's certificate.
    expect(await register(agent(app, keyA, certB), "agent-a")).toBe(Code.PermissionDenied);
    expect(await pinOf(app, "agent-a")).toBe(certA.fingerprint);
    // And B's key with A's certificate.
    expect(await register(agent(app, keyB, certA), "agent-b")).toBe(Code.PermissionDenied);
    expect(await register(agent(app, keyA, certA), "agent-a")).toBe("ok");

    // Admins need a certificate too with require; with one, they clear A's pin: the next certificate is pinned.
    expect(await register(agent(app, keyA, pki.foreignClient), "agent-a")).toBe("tls");
    const access = admin(AccessService, app, certB);
    expect((await access.clearAgentCertificatePin({ hostname: "agent-a" })).previousFingerprint).toBe(certA.fingerprint);
    expect((await access.clearAgentCertificatePin({ hostname: "agent-a" })).previousFingerprint).toBe("");
    expect(await register(agent(app, keyA, certB), "agent-a")).toBe("ok");
    expect(await pinOf(app, "agent-a")).toBe(certB.fingerprint);
    expect(await register(agent(app, keyA, certA), "agent-a")).toBe(Code.PermissionDenied);
    await expect(access.clearAgentCertificatePin({ hostname: "nobody" })).rejects.toMatchObject({ code: Code.NotFound });
    await expect(admin(AccessService, app).listAdminTokens({})).rejects.toThrow();
  });

  it("optional: agents and admin tools without a certificate get in; a pinned key still needs its certificate (REST: 403)", async () => {
    const app = await start("optional");
    const keyA = await app.agentKey("agent-a");
    const keyC = await app.agentKey("agent-c");
    const certA = pki.clients["agent-a"]!;

    // Without a certificate: served, not pinned.
    expect(await register(agent(app, keyC), "agent-c")).toBe("ok");
    expect(await pinOf(app, "agent-c")).toBeUndefined();
    expect((await admin(AdminService, app).listAgents({})).agents.map((a) => a.host?.hostname)).toContain("agent-c");
    // A certificate from another CA is refused even here (the connection is closed).
    expect(await register(agent(app, keyC, pki.foreignClient), "agent-c")).toBe("tls");

    // A with its certificate: pinned. Then A's key without it is refused, over Connect and REST.
    expect(await register(agent(app, keyA, certA), "agent-a")).toBe("ok");
    expect(await pinOf(app, "agent-a")).toBe(certA.fingerprint);
    expect(await register(agent(app, keyA), "agent-a")).toBe(Code.PermissionDenied);
    expect(await register(agent(app, keyA, pki.clients["agent-b"]!), "agent-a")).toBe(Code.PermissionDenied);
    const rest = await post(app, "/api/v1/metrics?hostname=agent-a", keyA);
    expect(rest.status).toBe(403);
    expect(rest.text).toMatch(/pinned to a client certificate/);
    expect(await registered(app)).toEqual(["agent-a", "agent-c"]);
  });
});

/** POST over HTTPS/1.1 with an agent key and no client certificate. */
function post(app: TestApp, path: string, key: string): Promise<{ status: number; text: string }> {
  const url = new URL(app.baseUrl);
  const body = JSON.stringify([{ type: "cpu", hostname: "agent-a", timestamp: new Date().toISOString(), data: { usage: 1 } }]);
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: url.hostname,
        port: url.port,
        path,
        method: "POST",
        ca: pki.ca.cert,
        agent: false,
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      },
      (res) => {
        let text = "";
        res.on("data", (d: Buffer) => (text += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}
