// Two real server processes (dist/server/main.js) on one fresh PostgreSQL database behave as one server: a command
// triggered on either reaches an agent's CommandPoll stream (or legacy long poll) on the other within a second,
// exactly once, and results posted on one are visible on the other. Without PostgreSQL: skipped with a message,
// or failed under CI=true.
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService, AgentStatus } from "../gen/spectra/v1/admin_service_pb.js";
import { AgentService, HostInfoSchema } from "../gen/spectra/v1/agent_service_pb.js";
import { CommandOutcomeSchema, CommandState, CommandType } from "../gen/spectra/v1/diagnostics_pb.js";
import { Aggregation, HistoryService } from "../gen/spectra/v1/history_service_pb.js";
import { MetricBatchSchema, MetricEnvelopeSchema } from "../gen/spectra/v1/metrics_pb.js";
import { createTestDatabase, dropTestDatabases, itPostgresMissing, postgresProblem } from "../server/testing/postgres.js";
import { AccessService } from "../gen/spectra/v1/access_service_pb.js";
import { openPostgresStore } from "../server/store/postgres/postgres-store.js";
import { authHeader, bearer, createTestAgentKey } from "../server/testing/credentials.js";

const SERVER = join(import.meta.dirname, "..", "dist", "server", "main.js");
const problem = await postgresProblem();

interface RunningServer {
  url: string;
  log(): string;
  stop(): Promise<number | null>;
}

/** Starts the compiled server on a random loopback port against `store`; resolves with its URL once it listens. */
async function startServer(store: string, instanceId: string, dataDir: string): Promise<RunningServer> {
  const child: ChildProcess = spawn(
    process.execPath,
    [SERVER, "--listen", "127.0.0.1:0", "--store", store, "--instance-id", instanceId, "--data-dir", dataDir, "--flush-interval", "500ms"],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let log = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${instanceId}: no listening line in: ${log}`)), 20_000);
    child.stderr!.on("data", (d: Buffer) => {
      log += d.toString();
      const m = /"url":"(http:\/\/[^"]+)"/.exec(log);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    });
    void exited.then((code) => {
      clearTimeout(t);
      reject(new Error(`${instanceId} exited with ${code}: ${log}`));
    });
  });
  return {
    url,
    log: () => log,
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      const code = await exited;
      clearTimeout(killer);
      return code;
    },
  };
}

/** An agent's CommandPoll stream: every command it receives, with the time it arrived. */
function pollCommands(agent: Client<typeof AgentService>, hostname: string) {
  const received: { id: string; at: number }[] = [];
  const ac = new AbortController();
  const done = (async () => {
    try {
      for await (const r of agent.commandPoll({ hostname }, { signal: ac.signal })) {
        received.push({ id: r.command!.id, at: Date.now() });
      }
    } catch (err) {
      if (!ac.signal.aborted) throw err;
    }
  })();
  return {
    received,
    async stop() {
      ac.abort();
      await done;
    },
  };
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await sleep(20);
}

/** Waits until `cond` resolves true; fails naming `what` after `ms`. */
async function eventually(what: string, cond: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(50);
  }
}

describe("two servers on one PostgreSQL database", () => {
  if (problem !== undefined) {
    itPostgresMissing(problem, "scale-out.test.ts");
    return;
  }

  const dir = mkdtempSync(join(tmpdir(), "spectra-scale-"));
  const servers: RunningServer[] = [];
  let a: RunningServer;
  let b: RunningServer;
  let password = "";
  let adminToken = "";
  const keys = new Map<string, string>();
  const HOSTS = ["scale-01", "scale-legacy", "scale-history", "scale-two-streams", "scale-revoked", "scale-removed"];
  /** Clients of one server: the agent with `host`'s key, admin and access with the admin token. */
  const clients = (s: RunningServer, host = "scale-01") => {
    const t = (token: string) => createConnectTransport({ baseUrl: s.url, httpVersion: "2", interceptors: [bearer(token)] });
    return {
      agent: createClient(AgentService, t(keys.get(host)!)),
      admin: createClient(AdminService, t(adminToken)),
      access: createClient(AccessService, t(adminToken)),
    };
  };

  beforeAll(async () => {
    expect(existsSync(SERVER), "run `npm run build` (npm test does)").toBe(true);
    const url = new URL(await createTestDatabase());
    // A password the logs must never show (trust authentication ignores it).
    if (url.password === "") url.password = "never-logged-7f3a";
    password = decodeURIComponent(url.password);
    // Both start at once: the migration lock lets one migrate while the other waits.
    [a, b] = await Promise.all([
      startServer(url.toString(), "scale-a", join(dir, "a")),
      startServer(url.toString(), "scale-b", join(dir, "b")),
    ]);
    servers.push(a, b);
    // Both found no admin token; exactly one created "initial-admin" and printed it.
    const printed = [a, b].map((s) => /^spectra-server: (spt_\S+)$/m.exec(s.log())?.[1]).filter((t) => t !== undefined);
    expect(printed).toHaveLength(1);
    adminToken = printed[0]!;
    const store = await openPostgresStore(url.toString(), { instanceId: "scale-test" });
    try {
      for (const h of HOSTS) keys.set(h, await createTestAgentKey(store, h));
    } finally {
      await store.close();
    }
  });

  afterAll(async () => {
    const codes = await Promise.all(servers.map((s) => s.stop()));
    await dropTestDatabases();
    rmSync(dir, { recursive: true, force: true });
    expect(codes.every((c) => c === 0)).toBe(true);
  });

  it("delivers commands triggered on either server to A's stream within a second, once each; results show on B", async () => {
    const A = clients(a);
    const B = clients(b);
    const host = "scale-01";
    await A.agent.register({ host: create(HostInfoSchema, { hostname: host, os: "linux" }) });
    const stream = pollCommands(A.agent, host);
    await sleep(300); // the stream is open and its poller waits

    const triggered: { id: string; at: number; via: string }[] = [];
    for (let i = 0; i < 16; i++) {
      const via = i % 4 === 3 ? "A" : "B";
      const admin = via === "A" ? A.admin : B.admin;
      const at = Date.now();
      const r = await admin.triggerListMounts({ hostname: host });
      triggered.push({ id: r.command!.command!.id, at, via });
      await sleep(30 + (i % 3) * 40);
    }
    await until(() => stream.received.length >= triggered.length, 5_000);
    await sleep(300); // room for a duplicate to show up
    await stream.stop();

    const got = stream.received.map((r) => r.id);
    expect(new Set(got).size).toBe(got.length); // never twice
    expect([...got].sort()).toEqual(triggered.map((t) => t.id).sort());
    for (const t of triggered) {
      const r = stream.received.find((x) => x.id === t.id)!;
      expect(r.at - t.at, `command ${t.id} triggered on ${t.via}`).toBeLessThan(1_000);
    }

    // A result posted on A is what B reports; a watcher on B sees it finish.
    const watched = triggered.find((t) => t.via === "B")!.id;
    const watchStates: CommandState[] = [];
    const watching = (async () => {
      for await (const w of B.admin.watchCommand({ commandId: watched })) watchStates.push(w.command!.state);
    })();
    await sleep(200);
    const postedAt = Date.now();
    for (const id of got) {
      await A.agent.commandResult({
        hostname: host,
        outcome: create(CommandOutcomeSchema, {
          commandId: id,
          type: CommandType.LIST_MOUNTS,
          result: { case: "listMounts", value: { mounts: [{ mountpoint: "/", device: "/dev/vda1", fstype: "ext4" }] } },
        }),
      });
    }
    await watching;
    expect(Date.now() - postedAt).toBeLessThan(2_000);
    expect(watchStates.at(-1)).toBe(CommandState.COMPLETED);
    for (const id of got) {
      const info = (await B.admin.getCommand({ commandId: id })).command!;
      expect(info.state).toBe(CommandState.COMPLETED);
      expect(info.hostname).toBe(host);
      expect(info.outcome?.result).toMatchObject({ case: "listMounts", value: { mounts: [{ mountpoint: "/" }] } });
    }
  });

  it("answers a legacy long poll on B with a command triggered on A within a second", async () => {
    const host = "scale-legacy";
    const A = clients(a, host);
    await A.agent.register({ host: create(HostInfoSchema, { hostname: host, os: "linux" }) });
    const poll = fetch(`${b.url}/api/v1/agent/command?hostname=${host}`, { headers: authHeader(keys.get(host)!) }).then(async (res) => ({
      status: res.status,
      body: await res.text(),
      at: Date.now(),
    }));
    await sleep(300);
    const at = Date.now();
    const id = (await A.admin.triggerListMounts({ hostname: host })).command!.command!.id;
    const res = await poll;
    expect(res.status).toBe(200);
    expect((JSON.parse(res.body) as { id: string }).id).toBe(id);
    expect(res.at - at).toBeLessThan(1_000);
  });

  it("shows metrics an agent sent to A in B's history once A flushed them", async () => {
    const host = "scale-history";
    const A = clients(a, host);
    const history = createClient(HistoryService, createConnectTransport({ baseUrl: b.url, httpVersion: "2", interceptors: [bearer(adminToken)] }));
    const t = Date.now();
    await A.agent.pushMetrics({
      batch: create(MetricBatchSchema, {
        hostname: host,
        sessionId: "s",
        sequence: 1n,
        envelopes: [
          create(MetricEnvelopeSchema, { timestamp: timestampFromMs(t), payload: { case: "cpu", value: { usage: 42.5 } } }),
          create(MetricEnvelopeSchema, { timestamp: timestampFromMs(t + 5_000), payload: { case: "cpu", value: { usage: 43.5 } } }),
        ],
      }),
    });
    let latest: number | undefined;
    const deadline = Date.now() + 5_000;
    while (latest === undefined && Date.now() < deadline) {
      const r = await history.getLatest({ hostname: host, metric: "cpu.usage" });
      latest = r.values[0]?.value;
      if (latest === undefined) await sleep(100);
    }
    expect(latest).toBe(43.5);
    const range = await history.queryRange({
      metric: "cpu.usage",
      hostname: host,
      start: timestampFromMs(t - 1_000),
      end: timestampFromMs(t + 10_000),
      step: { seconds: 1n },
      aggregation: Aggregation.LAST,
    });
    expect(range.series[0]?.values).toEqual([42.5, 43.5]);
  });

  it("hands each command to exactly one of two streams held on different servers", async () => {
    const host = "scale-two-streams";
    const A = clients(a, host);
    const B = clients(b, host);
    await B.agent.register({ host: create(HostInfoSchema, { hostname: host, os: "linux" }) });
    const onA = pollCommands(A.agent, host);
    const onB = pollCommands(B.agent, host);
    await sleep(300);
    const ids: string[] = [];
    for (let i = 0; i < 24; i++) {
      const admin = i % 2 === 0 ? A.admin : B.admin;
      ids.push((await admin.triggerListMounts({ hostname: host })).command!.command!.id);
      await sleep(15);
    }
    await until(() => onA.received.length + onB.received.length >= ids.length, 5_000);
    await sleep(300);
    await Promise.all([onA.stop(), onB.stop()]);
    const all = [...onA.received, ...onB.received].map((r) => r.id);
    expect(new Set(all).size).toBe(all.length);
    expect([...all].sort()).toEqual([...ids].sort());
    // Neither server logged the database password.
    for (const s of [a, b]) expect(s.log()).not.toContain(password);
    expect(a.log()).toContain('"backend":"postgres"');
  });

  it("ends an agent's stream on A at once when B revokes its key", async () => {
    const host = "scale-revoked";
    const A = clients(a, host);
    const B = clients(b, host);
    await A.agent.register({ host: create(HostInfoSchema, { hostname: host, os: "linux" }) });
    const ended = (async () => {
      try {
        for await (const _ of A.agent.commandPoll({ hostname: host })) {
          // no command in this test
        }
        return { code: "ended" as const, at: Date.now() };
      } catch (err) {
        return { code: ConnectError.from(err).code, at: Date.now() };
      }
    })();
    await sleep(300);
    const at = Date.now();
    await B.access.revokeAgent({ hostname: host });
    const r = await ended;
    expect(r.code).toBe(Code.Unauthenticated);
    expect(r.at - at).toBeLessThan(1_000);
    await expect(A.agent.register({ host: create(HostInfoSchema, { hostname: host }) })).rejects.toThrow(/revoked/);
  });

  it("shows on B the status of an agent connected to A; removing it with its data on B clears A too", async () => {
    const host = "scale-removed";
    const A = clients(a, host);
    const B = clients(b, host);
    const historyOf = (s: RunningServer) =>
      createClient(HistoryService, createConnectTransport({ baseUrl: s.url, httpVersion: "2", interceptors: [bearer(adminToken)] }));
    await A.agent.register({ host: create(HostInfoSchema, { hostname: host, os: "linux" }) });
    await A.agent.pushMetrics({
      batch: create(MetricBatchSchema, {
        hostname: host,
        sessionId: "s",
        sequence: 1n,
        envelopes: [create(MetricEnvelopeSchema, { timestamp: timestampFromMs(Date.now()), payload: { case: "cpu", value: { usage: 7 } } })],
      }),
    });
    // B lists it online (A wrote the change) and, once A flushed, has its series.
    const onB = async () => (await B.admin.listAgents({})).agents.find((x) => x.host?.hostname === host);
    await eventually("B lists it online", async () => (await onB())?.status === AgentStatus.ONLINE, 5_000);
    await eventually("B has its series", async () => (await historyOf(b).listHosts({})).hosts.some((h) => h.hostname === host), 5_000);
    expect((await historyOf(a).listHosts({})).hosts.map((h) => h.hostname)).toContain(host);

    await B.access.removeAgent({ hostname: host, deleteData: true });
    await eventually("A forgot it", async () => !(await historyOf(a).listHosts({})).hosts.some((h) => h.hostname === host), 2_000);
    expect((await historyOf(b).listHosts({})).hosts.map((h) => h.hostname)).not.toContain(host);
    expect((await A.admin.listAgents({})).agents.map((x) => x.host?.hostname)).not.toContain(host);
    await expect(A.agent.register({ host: create(HostInfoSchema, { hostname: host }) })).rejects.toThrow(/unknown agent key/);
  });
});
