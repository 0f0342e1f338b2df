import { create } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  AdminService,
  AgentStatusChangeSchema,
  GetAgentTimelineResponseSchema,
  GetCommandResponseSchema,
  GetLatestMetricsResponseSchema,
  ListCommandsResponseSchema,
  ListAgentsResponseSchema,
  TriggerDiskResponseSchema,
  TriggerListMountsResponseSchema,
  TriggerLogsResponseSchema,
  TriggerNetworkResponseSchema,
  WatchCommandResponseSchema,
} from "../../gen/spectra/v1/admin_service_pb.js";
import {
  DiskUsageParamsSchema,
  FetchLogsParamsSchema,
  ListMountsParamsSchema,
  NetworkDiagParamsSchema,
} from "../../gen/spectra/v1/diagnostics_pb.js";
import { checkHostname } from "../agents/hostname.js";
import { agentStatusOf } from "../agents/agent-registry.js";
import { toCommandInfo } from "../commands/command-queue.js";
import type { CommandParams } from "../commands/command-params.js";
import { InvalidInputError, NotFoundError } from "../errors.js";
import type { Services } from "../services.js";
import { auditName } from "../auth/principal.js";
import { principalOf } from "./auth.js";

const DAY_MS = 86_400_000;

/** AdminService over the shared services. */
export function createAdminServiceImpl(s: Services): ServiceImpl<typeof AdminService> {
  // The audit trail records the admin token's name.
  const trigger = async (ctx: HandlerContext, hostname: string, params: CommandParams) => {
    const by = auditName(principalOf(ctx), "connect");
    checkHostname(hostname);
    return toCommandInfo(await s.commands.enqueue(hostname, params, by));
  };
  return {
    async triggerLogs(req, ctx) {
      const value = req.params ?? create(FetchLogsParamsSchema);
      return create(TriggerLogsResponseSchema, { command: await trigger(ctx, req.hostname, { case: "fetchLogs", value }) });
    },
    async triggerDisk(req, ctx) {
      const value = req.params ?? create(DiskUsageParamsSchema);
      return create(TriggerDiskResponseSchema, { command: await trigger(ctx, req.hostname, { case: "diskUsage", value }) });
    },
    async triggerNetwork(req, ctx) {
      const value = req.params ?? create(NetworkDiagParamsSchema);
      return create(TriggerNetworkResponseSchema, { command: await trigger(ctx, req.hostname, { case: "networkDiag", value }) });
    },
    async triggerListMounts(req, ctx) {
      const value = create(ListMountsParamsSchema);
      return create(TriggerListMountsResponseSchema, {
        command: await trigger(ctx, req.hostname, { case: "listMounts", value }),
      });
    },
    async listAgents() {
      return create(ListAgentsResponseSchema, { agents: await s.agents.list() });
    },
    async getLatestMetrics(req) {
      checkHostname(req.hostname);
      const latest = await s.tsdb.latest(req.hostname);
      if (latest.length === 0 && !(await s.agents.isRegistered(req.hostname))) {
        throw new NotFoundError(`no agent or metrics for host '${req.hostname}'`);
      }
      return create(GetLatestMetricsResponseSchema, { envelopes: latest.map((l) => l.envelope) });
    },
    async getCommand(req) {
      return create(GetCommandResponseSchema, { command: toCommandInfo(await s.commands.get(req.commandId)) });
    },
    async listCommands(req) {
      if (req.hostname !== "") checkHostname(req.hostname);
      const limit = req.limit === 0 ? 100 : Math.min(req.limit, 1000);
      const list = await s.commands.list({ ...(req.hostname ? { hostname: req.hostname } : {}), limit });
      return create(ListCommandsResponseSchema, { commands: list.map(toCommandInfo) });
    },
    async getAgentTimeline(req) {
      checkHostname(req.hostname);
      const toMs = req.end ? timestampMs(req.end) : s.clock();
      const fromMs = req.start ? timestampMs(req.start) : toMs - DAY_MS;
      if (!Number.isFinite(fromMs) || !Number.isFinite(toMs) || toMs < fromMs) throw new InvalidInputError("end must not be before start");
      const limit = req.limit === 0 ? 1000 : Math.min(req.limit, 10_000);
      await s.presence.flush(); // changes noticed here but not written yet
      const t = await s.store.agentTimeline({ hostname: req.hostname, fromMs, toMs, limit });
      if (!t.initial && t.changes.length === 0 && !(await s.agents.isRegistered(req.hostname))) {
        throw new NotFoundError(`no agent or status timeline for host '${req.hostname}'`);
      }
      return create(GetAgentTimelineResponseSchema, {
        initial: agentStatusOf(t.initial?.status),
        changes: t.changes.map((c) => create(AgentStatusChangeSchema, { time: timestampFromMs(c.atMs), status: agentStatusOf(c.status) })),
      });
    },
    async *watchCommand(req, ctx) {
      for await (const rec of s.commands.watch(req.commandId, ctx.signal)) {
        yield create(WatchCommandResponseSchema, { command: toCommandInfo(rec) });
      }
    },
  };
}
