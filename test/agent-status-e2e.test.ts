// A real agent process (the compiled dist/agent/main.js, with a key written to its data directory) against a real
// server on 127.0.0.1 with short status thresholds: killed, it goes stale then offline at the configured times, the
// timeline records it, and it is online again when restarted. `npm test` builds dist/ first.
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService, AgentStatus } from "../gen/spectra/v1/admin_service_pb.js";
import { startTestApp, type TestApp } from "../server/testing/app.js";
import { bearer, writeAgentKeyFile } from "../server/testing/credentials.js";

const AGENT = join(import.meta.dirname, "..", "dist", "agent", "main.js");
const CORE = ["cpu", "memory", "system"];
/** The agent's report interval (its batch interval, sent at Register): 5 s. */
const INTERVAL_MS = 5_000;
/** Short thresholds: stale after 1.6 intervals (8 s), offline after 2.5 (12.5 s). */
const STALE_AFTER = 1.6;
const OFFLINE_AFTER = 2.5;

let workDir = "";
let app: TestApp | undefined;
const agents: ChildProcess[] = [];

beforeAll(() => {
  if (!existsSync(AGENT)) throw new Error(`${AGENT} is missing: run \`npm run build\` (npm test does)`);
  workDir = mkdtempSync(join(tmpdir(), "spectra-status-e2e-"));
});
afterAll(async () => {
  for (const a of agents) if (a.exitCode === null && a.signalCode === null) a.kill("SIGKILL");
  await app?.close(500);
  app?.removeDataDir();
  rmSync(workDir, { recursive: true, force: true });
});

function startAgent(name: string, server: string): ChildProcess {
  const config = join(workDir, `${name}.yaml`);
  writeFileSync(config, `collectors:\n${CORE.map((c) => `  ${c}: { enabled: true, interval: 1s }`).join("\n")}\n`);
  const child = spawn(
    process.execPath,
    [AGENT, "--server", server, "--hostname", name, "--data-dir", join(workDir, name), "--config", config, "--collectors", CORE.join(",")],
    { stdio: ["ignore", "ignore", "ignore"], env: { PATH: process.env["PATH"] ?? "", SPECTRA_LOG_LEVEL: "warn" } },
  );
  agents.push(child);
  return child;
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("agent status end to end", () => {
  it("a killed agent goes stale then offline at the configured times, and is online again when restarted", async () => {
    app = await startTestApp({ presence: { staleAfter: STALE_AFTER, offlineAfter: OFFLINE_AFTER, evaluateEveryMs: 100 } });
    const name = "status-e2e";
    writeAgentKeyFile(join(workDir, name), await app.agentKey(name));
    const admin = createClient(
      AdminService,
      createConnectTransport({ baseUrl: app.baseUrl, httpVersion: "2", interceptors: [bearer(app.adminToken)] }),
    );
    const summary = async () => (await admin.listAgents({})).agents.find((a) => a.host?.hostname === name);
    const started = Date.now();
    let agent = startAgent(name, app.baseUrl);

    // Online, with the interval it reported, once its first batch arrived.
    const first = await waitFor("the first batch", async () => ((await app!.services.tsdb.latest(name)).length > 0 ? true : undefined), 30_000);
    expect(first).toBe(true);
    const online = await summary();
    expect(online?.status).toBe(AgentStatus.ONLINE);
    expect(Number(online?.reportInterval?.seconds)).toBe(INTERVAL_MS / 1000);

    agent.kill("SIGKILL");
    await new Promise((res) => agent.once("exit", res));
    const killedAt = Date.now();
    const stale = await waitFor("stale", async () => ((await summary())?.status === AgentStatus.STALE ? Date.now() : undefined), 15_000);
    // Stale no earlier than 8 s after its last batch (at most one interval before the kill).
    expect(stale - killedAt).toBeGreaterThan(STALE_AFTER * INTERVAL_MS - INTERVAL_MS - 1_500);
    expect(stale - killedAt).toBeLessThan(STALE_AFTER * INTERVAL_MS + 1_000);
    await waitFor("offline", async () => ((await summary())?.status === AgentStatus.OFFLINE ? true : undefined), 15_000);

    // Restarted with the same data directory (and key): online again at its registration.
    agent = startAgent(name, app.baseUrl);
    const restarted = Date.now();
    await waitFor("online again", async () => ((await summary())?.status === AgentStatus.ONLINE ? true : undefined), 30_000);
    const back = await summary();
    expect(timestampMs(back!.statusSince!)).toBeGreaterThanOrEqual(restarted - 50);

    // The timeline: online, stale, offline, online; the degrades at their thresholds from the same last contact.
    const t = await admin.getAgentTimeline({ hostname: name, start: timestampFromMs(started - 1_000) });
    expect(t.initial).toBe(AgentStatus.UNSPECIFIED);
    expect(t.changes.map((c) => c.status)).toEqual([AgentStatus.ONLINE, AgentStatus.STALE, AgentStatus.OFFLINE, AgentStatus.ONLINE]);
    const at = t.changes.map((c) => timestampMs(c.time!));
    expect(at[2]! - at[1]!).toBe(Math.round(OFFLINE_AFTER * INTERVAL_MS) - Math.round(STALE_AFTER * INTERVAL_MS));
    expect(at[1]!).toBeLessThanOrEqual(killedAt + STALE_AFTER * INTERVAL_MS);
    expect(at[1]!).toBeGreaterThan(killedAt + STALE_AFTER * INTERVAL_MS - INTERVAL_MS - 1_500);
    expect(at[3]!).toBeGreaterThanOrEqual(restarted - 50);
    // "Was it offline?" has an answer for a moment in the outage: the status then was offline.
    const during = await admin.getAgentTimeline({ hostname: name, start: timestampFromMs(at[2]! + 1), end: timestampFromMs(at[3]! - 1) });
    expect(during).toMatchObject({ initial: AgentStatus.OFFLINE, changes: [] });
    agent.kill("SIGTERM");
    await new Promise((res) => agent.once("exit", res));
  }, 90_000);
});
