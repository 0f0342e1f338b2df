// A real agent process (the compiled dist/agent/main.js) against a real server on 127.0.0.1: metrics of every core
// collector arrive, a list_mounts command comes back, and batches survive a server outage and an agent kill
// exactly once. `npm test` builds dist/ first.
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import Database from "better-sqlite3";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../gen/spectra/v1/admin_service_pb.js";
import { CommandState } from "../gen/spectra/v1/diagnostics_pb.js";
import { CollectorHealth } from "../gen/spectra/v1/metrics_pb.js";
import { startTestApp } from "../server/testing/app.js";
import { bearer, writeAgentKeyFile } from "../server/testing/credentials.js";

const AGENT = join(import.meta.dirname, "..", "dist", "agent", "main.js");
const CORE = ["cpu", "memory", "disk", "disk_io", "network", "system"];

type TestApp = Awaited<ReturnType<typeof startTestApp>>;
let workDir = "";
const agents: ChildProcess[] = [];
const apps: TestApp[] = [];

beforeAll(() => {
  if (!existsSync(AGENT)) throw new Error(`${AGENT} is missing: run \`npm run build\` (npm test does)`);
  workDir = mkdtempSync(join(tmpdir(), "spectra-e2e-"));
});
afterEach(async () => {
  for (const a of agents.splice(0)) if (a.exitCode === null && a.signalCode === null) a.kill("SIGKILL");
  for (const app of apps.splice(0)) await app.close(500);
});
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

/** Starts the real agent with 1 s intervals for every core collector (with `key` in its data dir, when given). */
function startAgent(name: string, server: string, key?: string): ChildProcess & { output: () => string } {
  if (key) writeAgentKeyFile(join(workDir, name), key);
  const config = join(workDir, `${name}.yaml`);
  writeFileSync(
    config,
    `collectors:\n${CORE.map((c) => `  ${c}: { enabled: true, interval: 1s }`).join("\n")}\n`,
  );
  const child = spawn(
    process.execPath,
    [AGENT, "--server", server, "--hostname", name, "--data-dir", join(workDir, name), "--config", config, "--collectors", CORE.join(",")],
    { stdio: ["ignore", "pipe", "pipe"], env: { PATH: process.env["PATH"] ?? "", SPECTRA_LOG_LEVEL: "info" } },
  );
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  agents.push(child);
  return Object.assign(child, { output: () => out });
}

async function startServer(opts: { dataDir?: string; port?: number } = {}) {
  const app = await startTestApp(opts);
  apps.push(app);
  return app;
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The batches the server stored for a host, read straight from its SQLite file. */
function storedBatches(dataDir: string, hostname: string): { session_id: string; sequence: number }[] {
  const db = new Database(join(dataDir, "spectra.db"), { readonly: true, fileMustExist: true });
  try {
    return db
      .prepare("SELECT session_id, sequence FROM metric_batches WHERE hostname = ? ORDER BY session_id, sequence")
      .all(hostname) as { session_id: string; sequence: number }[];
  } finally {
    db.close();
  }
}

function expectContiguous(batches: { session_id: string; sequence: number }[]): void {
  const sessions = new Set(batches.map((b) => b.session_id));
  expect(sessions.size).toBe(1);
  expect(batches.map((b) => b.sequence)).toEqual(batches.map((_, i) => i + 1));
}

describe("agent ↔ server end to end", () => {
  it("stores every core collector's metrics and answers list_mounts", async () => {
    const app = await startServer();
    const agent = startAgent("e2e-core", app.baseUrl, await app.agentKey("e2e-core"));
    const types = await waitFor(
      "every core collector",
      async () => {
        const seen = new Set((await app.services.tsdb.latest("e2e-core")).map((l) => l.type));
        return CORE.every((c) => seen.has(c)) ? seen : undefined;
      },
      40_000,
    );
    expect([...types].sort()).toEqual([...CORE].sort());

    const admin = createClient(AdminService, createConnectTransport({ baseUrl: app.baseUrl, httpVersion: "2", interceptors: [bearer(app.adminToken)] }));
    // Registered with host info, and reporting each collector's health with its batches.
    const summary = await waitFor("registration and collector status", async () => {
      const list = await admin.listAgents({});
      const a = list.agents.find((x) => x.host?.hostname === "e2e-core");
      return a && a.collectorStatus.length >= CORE.length ? a : undefined;
    });
    expect(summary.host?.os).toBe("linux");
    expect(summary.host?.cpuCores).toBeGreaterThan(0);
    const cpuStatus = summary.collectorStatus.find((c) => c.name === "cpu");
    expect(cpuStatus?.health).toBe(CollectorHealth.OK);
    expect(cpuStatus?.intervalMs).toBe(1_000);
    const t = await admin.triggerListMounts({ hostname: "e2e-core" });
    let final;
    for await (const m of admin.watchCommand({ commandId: t.command!.command!.id }, { timeoutMs: 20_000 })) final = m.command;
    expect(final?.state).toBe(CommandState.COMPLETED);
    const r = final?.outcome?.result;
    expect(r?.case).toBe("listMounts");
    expect(r?.case === "listMounts" && r.value.mounts.some((m) => m.mountpoint === "/")).toBe(true);
    agent.kill("SIGTERM");
    await new Promise((res) => agent.once("exit", res));
    expect(agent.exitCode).toBe(0);
  });

  it("delivers every batch exactly once across a server outage and an agent kill", async () => {
    let app = await startServer();
    const { port } = app.listener;
    const dataDir = app.dataDir;
    let agent = startAgent("e2e-outage", app.baseUrl, await app.agentKey("e2e-outage"));
    await waitFor("first batch", () => (storedBatches(dataDir, "e2e-outage").length > 0 ? true : undefined));

    // Outage 1: the server goes away while the agent keeps collecting.
    await app.close(500);
    await new Promise((r) => setTimeout(r, 7_000));
    app = await startServer({ dataDir, port });
    await waitFor("replay after the outage", () => {
      const b = storedBatches(dataDir, "e2e-outage");
      return b.length >= 3 && b.at(-1)!.sequence === b.length ? true : undefined;
    });

    // Outage 2: the server goes away, then the agent is killed with batches in its spool and started again.
    await app.close(500);
    await new Promise((r) => setTimeout(r, 7_000));
    agent.kill("SIGKILL");
    await new Promise((res) => agent.once("exit", res));
    const beforeRestart = storedBatches(dataDir, "e2e-outage").length;
    agent = startAgent("e2e-outage", `http://127.0.0.1:${port}`);
    app = await startServer({ dataDir, port });
    await waitFor(
      "replay of the killed agent's spool",
      () => {
        const b = storedBatches(dataDir, "e2e-outage");
        return b.length >= beforeRestart + 2 ? b : undefined;
      },
      40_000,
    );
    // Give in-flight windows time to settle, then check there is no gap and no repeat.
    await new Promise((r) => setTimeout(r, 1_000));
    expectContiguous(storedBatches(dataDir, "e2e-outage"));
    // No sample twice in any series (replays stored once), and the series cover the whole run.
    const series = app.services.tsdb.select({ hostname: "e2e-outage" });
    expect(series.length).toBeGreaterThan(10);
    for (const s of series) {
      const { t } = await app.services.tsdb.samples(s, 0, Number.MAX_SAFE_INTEGER);
      for (let i = 1; i < t.length; i++) expect(t[i]!, `${s.metric}{${s.labelsText}}`).toBeGreaterThan(t[i - 1]!);
    }
    const [usage] = app.services.tsdb.select({ hostname: "e2e-outage", metric: "cpu.usage" });
    expect((await app.services.tsdb.samples(usage!, 0, Number.MAX_SAFE_INTEGER)).t.length).toBeGreaterThan(8);
    expect(agent.output()).not.toMatch(/\n\s+at /); // no stack traces in the agent's log
  }, 90_000);
});
