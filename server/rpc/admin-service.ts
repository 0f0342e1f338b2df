import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  AdminService,
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
import { toCommandInfo } from "../commands/command-queue.js";
import type { CommandParams } from "../commands/command-params.js";
import { NotFoundError } from "../errors.js";
import type { Services } from "../services.js";

/** AdminService over the shared services. */
export function createAdminServiceImpl(s: Services): ServiceImpl<typeof AdminService> {
  const trigger = async (hostname: string, params: CommandParams) => {
    checkHostname(hostname);
    return toCommandInfo(await s.commands.enqueue(hostname, params, "connect"));
  };
  return {
    async triggerLogs(req) {
      const value = req.params ?? create(FetchLogsParamsSchema);
      return create(TriggerLogsResponseSchema, { command: await trigger(req.hostname, { case: "fetchLogs", value }) });
    },
    async triggerDisk(req) {
      const value = req.params ?? create(DiskUsageParamsSchema);
      return create(TriggerDiskResponseSchema, { command: await trigger(req.hostname, { case: "diskUsage", value }) });
    },
    async triggerNetwork(req) {
      const value = req.params ?? create(NetworkDiagParamsSchema);
      return create(TriggerNetworkResponseSchema, { command: await trigger(req.hostname, { case: "networkDiag", value }) });
    },
    async triggerListMounts(req) {
      const value = create(ListMountsParamsSchema);
      return create(TriggerListMountsResponseSchema, {
        command: await trigger(req.hostname, { case: "listMounts", value }),
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
    async getAgentTimeline() {
      // Issue 7 in progress: the status timeline lands with heartbeats.
      throw new ConnectError("the agent status timeline is not available on this server yet", Code.Unimplemented);
    },
    async *watchCommand(req, ctx) {
      for await (const rec of s.commands.watch(req.commandId, ctx.signal)) {
        yield create(WatchCommandResponseSchema, { command: toCommandInfo(rec) });
      }
    },
  };
}
