// Enrollment with real agent processes (dist/agent/main.js) against a real server on 127.0.0.1: an agent started
// with an enrollment token waits as pending until an admin approves it, then stores its own key (mode 0600) and
// streams with it; a denied agent, and agents with an expired or an already used single-use token, get no key and
// store nothing.
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AccessService, EnrollmentState } from "../gen/spectra/v1/access_service_pb.js";
import { AdminService } from "../gen/spectra/v1/admin_service_pb.js";
import { startTestApp, type TestApp } from "../server/testing/app.js";
import { bearer } from "../server/testing/credentials.js";

const AGENT = join(import.meta.dirname, "..", "dist", "agent", "main.js");
let work = "";
let app: TestApp;
const agents: ChildProcess[] = [];

beforeAll(async () => {
  if (!existsSync(AGENT)) throw new Error(`${AGENT} is missing: run \`npm run build\` (npm test does)`);
  work = mkdtempSync(join(tmpdir(), "spectra-enroll-"));
  app = await startTestApp({ access: { pendingRetryMs: 1_000 } });
});
afterEach(() => {
  for (const a of agents.splice(0)) if (a.exitCode === null && a.signalCode === null) a.kill("SIGKILL");
});
afterAll(async () => {
  await app.close(500);
  app.removeDataDir();
  rmSync(work, { recursive: true, force: true });
});

/** Starts a real agent for `name` with `token` in SPECTRA_ENROLL_TOKEN (not on its command line). */
function startAgent(name: string, token: string): ChildProcess & { output(): string; dataDir: string } {
  const dataDir = join(work, name);
  const config = join(work, `${name}.yaml`);
  writeFileSync(config, "collectors:\n  cpu: { enabled: true, interval: 1s }\n  memory: { enabled: true, interval: 1s }\n");
  const child = spawn(
    process.execPath,
    [AGENT, "--server", app.baseUrl, "--hostname", name, "--data-dir", dataDir, "--config", config, "--collectors", "cpu,memory"],
    { stdio: ["ignore", "pipe", "pipe"], env: { PATH: process.env["PATH"] ?? "", SPECTRA_ENROLL_TOKEN: token, SPECTRA_LOG_LEVEL: "info" } },
  );
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  agents.push(child);
  return Object.assign(child, { output: () => out, dataDir });
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const clients = () => {
  const t = createConnectTransport({ baseUrl: app.baseUrl, httpVersion: "2", interceptors: [bearer(app.adminToken)] });
  return { access: createClient(AccessService, t), admin: createClient(AdminService, t) };
};
const stateOf = async (host: string) =>
  (await clients().admin.listAgents({})).agents.find((a) => a.host?.hostname === host)?.enrollmentState;

describe("enrollment with real agents", () => {
  it("pending → approved: the agent stores its own key (0600) and streams with it", async () => {
    const { access } = clients();
    const { token } = await access.createEnrollmentToken({ name: "e2e", singleUse: true, labels: { env: "e2e" } });
    const agent = startAgent("enroll-ok", token);
    await waitFor("the agent pending", async () => (await stateOf("enroll-ok")) === EnrollmentState.PENDING);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(existsSync(join(agent.dataDir, "agent.key"))).toBe(false);
    expect(await app.services.store.countEnvelopes("enroll-ok")).toBe(0);
    await access.approveAgent({ hostname: "enroll-ok" });
    const keyFile = join(agent.dataDir, "agent.key");
    await waitFor("the key file", () => existsSync(keyFile));
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    await waitFor("metrics under the agent's own key", async () => (await app.services.store.countEnvelopes("enroll-ok")) > 0 || undefined);
    await waitFor("the key used", async () => (await app.services.access.get("enroll-ok"))?.keyUsed === true);
    const summary = (await clients().admin.listAgents({})).agents.find((a) => a.host?.hostname === "enroll-ok");
    expect(summary).toMatchObject({ enrollmentState: EnrollmentState.APPROVED, labels: { env: "e2e" } });
    expect(summary?.registeredAt).toBeDefined();
    expect(agent.output()).not.toContain(token);

    // The spent single-use token gets another agent nowhere.
    const late = startAgent("enroll-reused", token);
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await app.services.access.get("enroll-reused")).toBeUndefined();
    expect(existsSync(join(late.dataDir, "agent.key"))).toBe(false);
    expect(late.exitCode).toBeNull(); // it waits for a new token, it does not crash
  }, 60_000);

  it("a denied agent and an agent with an expired token get no key and store nothing", async () => {
    const { access } = clients();
    const multi = (await access.createEnrollmentToken({ name: "e2e-multi", singleUse: false })).token;
    const denied = startAgent("enroll-denied", multi);
    await waitFor("the agent pending", async () => (await stateOf("enroll-denied")) === EnrollmentState.PENDING);
    await access.denyAgent({ hostname: "enroll-denied" });
    await new Promise((r) => setTimeout(r, 2_500));
    expect(await stateOf("enroll-denied")).toBe(EnrollmentState.DENIED);
    expect(existsSync(join(denied.dataDir, "agent.key"))).toBe(false);

    const expired = (await access.createEnrollmentToken({ name: "e2e-expired", ttl: durationFromMs(1) })).token;
    await new Promise((r) => setTimeout(r, 20));
    const late = startAgent("enroll-expired", expired);
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await app.services.access.get("enroll-expired")).toBeUndefined();
    expect(existsSync(join(late.dataDir, "agent.key"))).toBe(false);
    expect(await app.services.store.countEnvelopes("enroll-denied")).toBe(0);
    expect(await app.services.store.countEnvelopes("enroll-expired")).toBe(0);
  }, 60_000);
});
