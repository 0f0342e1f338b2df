import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Logger } from "../../common/logger.js";
import { AgentSummarySchema, type AgentSummary } from "../../gen/spectra/v1/admin_service_pb.js";
import type { HostInfo } from "../../gen/spectra/v1/agent_service_pb.js";
import type { Store } from "../store/store.js";
import { checkHostname } from "./hostname.js";

/** Known agents: registration, contact, listing. */
export interface AgentRegistry {
  /** Registers (or re-registers) an agent; throws InvalidInputError on a bad hostname. */
  register(host: HostInfo, collectors: string[]): Promise<void>;
  isRegistered(hostname: string): Promise<boolean>;
  /** Records contact from an agent over any channel. */
  touch(hostname: string): Promise<void>;
  list(): Promise<AgentSummary[]>;
}

/** Creates the agent registry over the store. */
export function createAgentRegistry(deps: { store: Store; logger: Logger; clock: () => number }): AgentRegistry {
  const { store, logger, clock } = deps;
  return {
    async register(host, collectors) {
      checkHostname(host.hostname);
      const known = await store.getAgent(host.hostname);
      await store.upsertAgent(host, collectors, clock());
      if (!known) logger.info({ agent: host.hostname, os: host.os, version: host.agentVersion }, "agent registered");
    },
    async isRegistered(hostname) {
      return (await store.getAgent(hostname)) !== undefined;
    },
    async touch(hostname) {
      await store.touchAgent(hostname, clock());
    },
    async list() {
      const agents = await store.listAgents();
      return Promise.all(
        agents.map(async (a) =>
          create(AgentSummarySchema, {
            host: a.host,
            registeredAt: timestampFromMs(a.registeredAtMs),
            lastSeen: timestampFromMs(a.lastSeenMs),
            pendingCommands: await store.countPendingCommands(a.host.hostname),
            collectors: a.collectors,
            collectorStatus: a.collectorStatus,
          }),
        ),
      );
    },
  };
}
