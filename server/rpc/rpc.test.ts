import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../common/logger.js";
import { AdminService } from "../../gen/spectra/v1/admin_service_pb.js";
import { AgentService, HostInfoSchema } from "../../gen/spectra/v1/agent_service_pb.js";
import { CommandState, CommandType, NetworkAction } from "../../gen/spectra/v1/diagnostics_pb.js";
import { MetricBatchSchema, MetricEnvelopeSchema, type MetricBatch } from "../../gen/spectra/v1/metrics_pb.js";
import { testServices } from "../testing/services.js";
import { createAdminServiceImpl } from "./admin-service.js";
import { createAgentServiceImpl } from "./agent-service.js";
import { errorInterceptor } from "./errors.js";
import { authInterceptor } from "./auth.js";
import { bearer } from "../testing/credentials.js";

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup) await c();
  cleanup = [];
});

/** In-memory services with the auth interceptor; `admin` has an admin token, `agent` the key of web-01. */
async function setup() {
  const s = testServices();
  const transport = (token: string) =>
    createRouterTransport(
      (router) => {
        router.service(AgentService, createAgentServiceImpl(s));
        router.service(AdminService, createAdminServiceImpl(s));
      },
      {
        router: { interceptors: [errorInterceptor(silentLogger()), authInterceptor(s.auth, silentLogger())] },
        transport: { interceptors: [bearer(token)] },
      },
    );
  cleanup.push(async () => {
    s.commands.stop();
    s.access.stop();
    await s.store.close();
  });
  const agentFor = async (host: string) => createClient(AgentService, transport(await s.agentKey(host)));
  return {
    s,
    agent: await agentFor("web-01"),
    agentFor,
    admin: createClient(AdminService, transport(await s.token("admin"))),
  };
}

function batch(seq: bigint, hostname = "web-01"): MetricBatch {
  return create(MetricBatchSchema, {
    hostname,
    sessionId: "sess-1",
    sequence: seq,
    envelopes: [
      create(MetricEnvelopeSchema, {
        timestamp: timestampFromMs(1_700_000_000_000 + Number(seq)),
        payload: { case: "memory", value: { ramTotal: 100n, ramUsed: 40n, ramUsedPct: 40 } },
      }),
    ],
  });
}

async function codeOf(p: Promise<unknown>): Promise<Code | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

describe("AgentService and AdminService (in memory)", () => {
  it("registers, streams batches, acknowledges them and drops replays", async () => {
    const { s, agent, admin } = await setup();
    await agent.register({ host: create(HostInfoSchema, { hostname: "web-01", os: "linux" }), collectors: ["memory"] });
    async function* batches() {
      yield { batch: batch(1n) };
      yield { batch: batch(2n) };
      yield { batch: batch(1n) }; // replay
      yield { batch: create(MetricBatchSchema, { hostname: "", sessionId: "x", sequence: 4n }) };
    }
    const res = await agent.streamMetrics(batches());
    expect(res.ackedSequences).toEqual([1n, 2n, 1n]);
    expect(res.duplicateBatches).toBe(1);
    expect(res.storedEnvelopes).toBe(2);
    expect(res.rejectedSequences).toEqual([4n]);
    expect(res.rejectedReason).toBe("Missing hostname");
    expect(await s.store.countEnvelopes("web-01")).toBe(2);
    const [ram] = s.tsdb.select({ hostname: "web-01", metric: "memory.ram_total" });
    expect((await s.tsdb.samples(ram!, 0, Number.MAX_SAFE_INTEGER)).t).toHaveLength(2);
    const agents = await admin.listAgents({});
    expect(agents.agents.map((a) => a.host?.hostname)).toEqual(["web-01"]);
    const latest = await admin.getLatestMetrics({ hostname: "web-01" });
    expect(latest.envelopes.map((e) => [e.type, e.timestamp?.nanos])).toEqual([["memory", 2_000_000]]);
    expect(await codeOf(admin.getLatestMetrics({ hostname: "nobody" }))).toBe(Code.NotFound);
  });

  it("pushes a batch unary and refuses invalid ones with InvalidArgument", async () => {
    const { s, agent } = await setup();
    expect((await agent.pushMetrics({ batch: batch(9n) })).storedEnvelopes).toBe(1);
    expect((await agent.pushMetrics({ batch: batch(9n) })).duplicate).toBe(true);
    const wrongHost = batch(10n);
    wrongHost.envelopes[0]!.hostname = "other";
    expect(await codeOf(agent.pushMetrics({ batch: wrongHost }))).toBe(Code.InvalidArgument);
    const wrongType = batch(11n);
    wrongType.envelopes[0]!.type = "cpu";
    expect(await codeOf(agent.pushMetrics({ batch: wrongType }))).toBe(Code.InvalidArgument);
    expect(await codeOf(agent.pushMetrics({}))).toBe(Code.InvalidArgument);
    expect(await s.store.countEnvelopes()).toBe(1);
  });

  it("ignores envelopes without a known payload", async () => {
    const { s, agent } = await setup();
    const b = batch(1n);
    b.envelopes.push(create(MetricEnvelopeSchema, { type: "gpu_temp_future" }));
    const r = await agent.pushMetrics({ batch: b });
    expect(r.storedEnvelopes).toBe(1);
    expect(await s.store.countEnvelopes()).toBe(1);
  });

  it("pushes a command over CommandPoll the moment it is queued and stores the result", async () => {
    const { agent, admin, agentFor } = await setup();
    await agent.register({ host: create(HostInfoSchema, { hostname: "web-01" }) });
    const ac = new AbortController();
    const stream = agent.commandPoll({ hostname: "web-01" }, { signal: ac.signal })[Symbol.asyncIterator]();
    const first = stream.next();
    const trig = await admin.triggerNetwork({
      hostname: "web-01",
      params: { action: NetworkAction.CONNECT, target: "127.0.0.1:22" },
    });
    const got = await first;
    expect(got.value?.command?.id).toBe(trig.command?.command?.id);
    expect(got.value?.command?.type).toBe(CommandType.NETWORK_DIAG);
    ac.abort();
    const id = trig.command!.command!.id;
    const watch = (async () => {
      const states: CommandState[] = [];
      for await (const m of admin.watchCommand({ commandId: id })) states.push(m.command!.state);
      return states;
    })();
    await agent.commandResult({
      hostname: "web-01",
      outcome: {
        commandId: id,
        type: CommandType.NETWORK_DIAG,
        result: {
          case: "networkDiag",
          value: { action: "connect", target: "127.0.0.1:22", pingResults: [{ seq: 1, success: true, rtt: 1500n, response: "OK" }] },
        },
      },
    });
    expect((await watch).at(-1)).toBe(CommandState.COMPLETED);
    const cmd = await admin.getCommand({ commandId: id });
    expect(cmd.command?.state).toBe(CommandState.COMPLETED);
    expect(cmd.command?.outcome?.result.case).toBe("networkDiag");
  });

  it("maps domain errors to codes", async () => {
    const { agent, admin, agentFor } = await setup();
    expect(await codeOf(admin.triggerListMounts({ hostname: "ghost" }))).toBe(Code.NotFound);
    expect(await codeOf(admin.triggerListMounts({ hostname: "" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(admin.getCommand({ commandId: "nope" }))).toBe(Code.NotFound);
    await agent.register({ host: create(HostInfoSchema, { hostname: "web-01" }) });
    for (let i = 0; i < 10; i++) await admin.triggerListMounts({ hostname: "web-01" });
    expect(await codeOf(admin.triggerListMounts({ hostname: "web-01" }))).toBe(Code.ResourceExhausted);
    expect(await codeOf(admin.triggerNetwork({ hostname: "web-01" }))).toBe(Code.InvalidArgument);
    const poll = (await agentFor("ghost")).commandPoll({ hostname: "ghost" });
    expect(await codeOf((async () => { for await (const _ of poll) break; })())).toBe(Code.FailedPrecondition);
    expect(await codeOf(agent.commandResult({ hostname: "web-01", outcome: { commandId: "nope" } }))).toBe(Code.NotFound);
  });
});

describe("audit trail", () => {
  it("lists commands newest first with who asked, per host or for all", async () => {
    const { agent, admin, agentFor } = await setup();
    for (const h of ["a-01", "b-01"]) await (await agentFor(h)).register({ host: create(HostInfoSchema, { hostname: h }) });
    await admin.triggerListMounts({ hostname: "a-01" });
    await admin.triggerDisk({ hostname: "b-01", params: { path: "/srv" } });
    await admin.triggerNetwork({ hostname: "a-01", params: { action: NetworkAction.NETSTAT } });
    const all = await admin.listCommands({});
    expect(all.commands.map((c) => [c.hostname, c.command?.type, c.requestedBy])).toEqual([
      ["a-01", CommandType.NETWORK_DIAG, "test-admin-1"],
      ["b-01", CommandType.DISK_USAGE, "test-admin-1"],
      ["a-01", CommandType.LIST_MOUNTS, "test-admin-1"],
    ]);
    const one = await admin.listCommands({ hostname: "b-01", limit: 5 });
    expect(one.commands.map((c) => c.command?.params.case)).toEqual(["diskUsage"]);
    expect(await codeOf(admin.listCommands({ hostname: "bad host" }))).toBe(Code.InvalidArgument);
  });
});
