// Every diagnostic through a real server and a real agent process (dist/agent/main.js), loopback only: triggered
// over Connect (and the legacy routes), run by the agent, answered and stored; plus offline delivery and expiry.
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../gen/spectra/v1/admin_service_pb.js";
import { CommandState, LogLevel, NetworkAction, type CommandInfo } from "../gen/spectra/v1/diagnostics_pb.js";
import { startTestApp } from "../server/testing/app.js";
import { authHeader, bearer, writeAgentKeyFile } from "../server/testing/credentials.js";

const AGENT = join(import.meta.dirname, "..", "dist", "agent", "main.js");
const HOST = "e2e-diag";
let app: Awaited<ReturnType<typeof startTestApp>>;
let agent: ChildProcess;
let work: string;
let listener: Server;
let openPort = 0;
let admin: ReturnType<typeof createClient<typeof AdminService>>;

function startAgent(): ChildProcess {
  const config = join(work, "agent.yaml");
  // Only one cheap collector: this test is about commands.
  writeFileSync(config, "collectors:\n  system: { enabled: true, interval: 60s }\n");
  return spawn(
    process.execPath,
    [AGENT, "--server", app.baseUrl, "--hostname", HOST, "--data-dir", join(work, "agent"), "--config", config, "--collectors", "system"],
    { stdio: "ignore", env: { PATH: process.env["PATH"] ?? "" } },
  );
}

async function finished(info: CommandInfo | undefined): Promise<CommandInfo> {
  let last: CommandInfo | undefined;
  for await (const m of admin.watchCommand({ commandId: info!.command!.id }, { timeoutMs: 60_000 })) last = m.command;
  return last!;
}

async function waitRegistered(): Promise<void> {
  for (let i = 0; i < 80; i++) {
    const list = await admin.listAgents({});
    if (list.agents.some((a) => a.host?.hostname === HOST && a.registeredAt !== undefined)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error("agent did not register");
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "spectra-diag-"));
  app = await startTestApp();
  admin = createClient(AdminService, createConnectTransport({ baseUrl: app.baseUrl, httpVersion: "2", interceptors: [bearer(app.adminToken)] }));
  // The agent's key where it looks first (<data-dir>/agent.key): no enrollment round trip in this test.
  writeAgentKeyFile(join(work, "agent"), await app.agentKey(HOST));
  listener = createServer((s) => s.end());
  await new Promise<void>((r) => listener.listen(0, "127.0.0.1", r));
  openPort = (listener.address() as { port: number }).port;
  agent = startAgent();
  await waitRegistered();
}, 60_000);

afterAll(async () => {
  agent?.kill("SIGKILL");
  listener?.close();
  await app?.close(500);
  app?.removeDataDir();
  rmSync(work, { recursive: true, force: true });
});

describe("diagnostics through a real server and agent", () => {
  it("TCP connect to an open and a closed loopback port", async () => {
    const open = await finished((await admin.triggerNetwork({ hostname: HOST, params: { action: NetworkAction.CONNECT, target: `127.0.0.1:${openPort}` } })).command);
    expect(open.state).toBe(CommandState.COMPLETED);
    const r = open.outcome?.result;
    expect(r?.case === "networkDiag" && r.value.pingResults[0]).toMatchObject({ success: true, response: "OK" });
    // A port that was just free: bind, read the number, close.
    const tmp = createServer();
    await new Promise<void>((res) => tmp.listen(0, "127.0.0.1", res));
    const closedPort = (tmp.address() as { port: number }).port;
    await new Promise((res) => tmp.close(res));
    const closed = await finished((await admin.triggerNetwork({ hostname: HOST, params: { action: NetworkAction.CONNECT, target: `127.0.0.1:${closedPort}` } })).command);
    const c = closed.outcome?.result;
    expect(c?.case === "networkDiag" && c.value.pingResults[0]?.success).toBe(false);
    expect(c?.case === "networkDiag" && c.value.pingResults[0]?.response).toMatch(/^failed: .*refused/i);
  });

  it("ping and traceroute to 127.0.0.1", async () => {
    const ping = await finished((await admin.triggerNetwork({ hostname: HOST, params: { action: NetworkAction.PING, target: "127.0.0.1", count: 2 } })).command);
    if (ping.state === CommandState.FAILED) {
      // Without the privilege to open ICMP sockets the agent must say so clearly.
      expect(ping.outcome?.error).toMatch(/privilege|permitted|cap_net_raw|ping_group_range|not found|no ping program/i);
    } else {
      const p = ping.outcome?.result;
      expect(p?.case === "networkDiag" && p.value.pingSummary?.received).toBe(2);
    }
    const trace = await finished((await admin.triggerNetwork({ hostname: HOST, params: { action: NetworkAction.TRACEROUTE, target: "127.0.0.1", maxHops: 3 } })).command);
    if (trace.state === CommandState.COMPLETED) {
      const t = trace.outcome?.result;
      expect(t?.case === "networkDiag" && t.value.hops[0]?.probes.some((p) => p.address === "127.0.0.1")).toBe(true);
      expect(t?.case === "networkDiag" && t.value.rawOutput).not.toBe("");
    } else {
      expect(trace.outcome?.error).toMatch(/not found|no traceroute|not installed|none of traceroute/i);
    }
  });

  it("netstat sees the socket this test listens on", async () => {
    const info = await finished((await admin.triggerNetwork({ hostname: HOST, params: { action: NetworkAction.NETSTAT } })).command);
    const r = info.outcome?.result;
    const mine = r?.case === "networkDiag" ? r.value.netstat.find((e) => e.localPort === openPort && e.state === "LISTEN") : undefined;
    expect(mine).toMatchObject({ proto: "tcp", localAddr: "127.0.0.1", pid: process.pid });
  });

  it("disk usage of a tree the test builds, also read back over the legacy route", async () => {
    const root = join(work, "tree");
    mkdirSync(join(root, "big"), { recursive: true });
    mkdirSync(join(root, "small"));
    writeFileSync(join(root, "big", "a.bin"), Buffer.alloc(1024 * 1024, 1));
    writeFileSync(join(root, "small", "b.txt"), "hello");
    const info = await finished((await admin.triggerDisk({ hostname: HOST, params: { path: root, topN: 5 } })).command);
    expect(info.state).toBe(CommandState.COMPLETED);
    const r = info.outcome?.result;
    expect(r?.case === "diskUsage" && r.value.topFiles[0]?.path).toBe(join(root, "big", "a.bin"));
    expect(r?.case === "diskUsage" && r.value.partial).toBe(false);
    const legacy = await fetch(`${app.baseUrl}/admin/command?id=${info.command!.id}`, { headers: authHeader(app.adminToken) });
    const body = (await legacy.json()) as { type: string; state: string; payload: { root: string; top_files: { path: string }[] } };
    expect(body).toMatchObject({ type: "DISK_USAGE", state: "completed", payload: { root } });
    expect(body.payload.top_files[0]?.path).toBe(join(root, "big", "a.bin"));
  });

  it("list mounts, and logs at or above a level", async () => {
    const mounts = await finished((await admin.triggerListMounts({ hostname: HOST })).command);
    const m = mounts.outcome?.result;
    expect(m?.case === "listMounts" && m.value.mounts.some((x) => x.mountpoint === "/")).toBe(true);
    const logs = await finished((await admin.triggerLogs({ hostname: HOST, params: { minLevel: LogLevel.WARNING, limit: 50 } })).command);
    // A machine may have no readable system log at all; then the agent says why instead of answering nothing.
    if (logs.state === CommandState.COMPLETED) {
      const l = logs.outcome?.result;
      expect(l?.case).toBe("fetchLogs");
      expect(l?.case === "fetchLogs" && l.value.entries.length).toBeLessThanOrEqual(50);
    } else {
      expect(logs.outcome?.error).not.toBe("");
    }
  });

  it("refuses injection attempts on the server before anything is queued", async () => {
    for (const target of ["127.0.0.1; reboot", "$(id)", "`id`", "-f", "a\nb", "host name"]) {
      await expect(admin.triggerNetwork({ hostname: HOST, params: { action: NetworkAction.PING, target } })).rejects.toThrow(/invalid|must be/i);
    }
    await expect(admin.triggerDisk({ hostname: HOST, params: { path: "relative/../x" } })).rejects.toThrow(/absolute/);
    const audit = await admin.listCommands({ hostname: HOST, limit: 100 });
    expect(audit.commands.every((c) => !/reboot|id\)|`/.test(JSON.stringify(c.command?.params.value ?? {})))).toBe(true);
  });
});

describe("offline agents", () => {
  it("delivers a command queued while the agent was offline when it connects", async () => {
    agent.kill("SIGTERM");
    await new Promise((r) => agent.once("exit", r));
    const queued = (await admin.triggerListMounts({ hostname: HOST })).command;
    expect(queued?.state).toBe(CommandState.QUEUED);
    agent = startAgent();
    const done = await finished(queued);
    expect(done.state).toBe(CommandState.COMPLETED);
  });
});
