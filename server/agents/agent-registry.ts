import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { EnrollmentState } from "../../gen/spectra/v1/access_service_pb.js";
import type { Logger } from "../../common/logger.js";
import { AgentStatus, AgentSummarySchema, type AgentSummary } from "../../gen/spectra/v1/admin_service_pb.js";
import type { HostInfo } from "../../gen/spectra/v1/agent_service_pb.js";
import type { AgentAccessRecord, AgentStatusChange, AgentStatusName, EnrollmentStateName, Store } from "../store/store.js";
import { checkHostname } from "./hostname.js";
import type { Presence } from "./presence.js";

/** Known agents: registration, contact, listing. */
export interface AgentRegistry {
  /** Registers (or re-registers) an agent; throws InvalidInputError on a bad hostname. */
  register(host: HostInfo, collectors: string[], reportIntervalMs?: number): Promise<void>;
  isRegistered(hostname: string): Promise<boolean>;
  /** Records contact from an agent over any channel (in memory; see presence.ts). */
  touch(hostname: string): void;
  /**
   * Every known agent by hostname: registered ones with their status (online / stale / offline, since when), and
   * those that enrolled but never registered yet (pending approval), with their enrollment state, labels, report
   * interval and diagnostics.
   */
  list(): Promise<AgentSummary[]>;
}

const STATUS: Record<AgentStatusName, AgentStatus> = {
  online: AgentStatus.ONLINE,
  stale: AgentStatus.STALE,
  offline: AgentStatus.OFFLINE,
};

/** The status as the API names it. */
export function agentStatusOf(name: AgentStatusName | undefined): AgentStatus {
  return name === undefined ? AgentStatus.UNSPECIFIED : STATUS[name];
}

/** Creates the agent registry over the store and the presence tracker. */
export function createAgentRegistry(deps: { store: Store; logger: Logger; clock: () => number; presence: Presence }): AgentRegistry {
  const { store, logger, clock, presence } = deps;
  return {
    async register(host, collectors, reportIntervalMs) {
      checkHostname(host.hostname);
      const known = await store.getAgent(host.hostname);
      await store.upsertAgent(host, collectors, clock());
      presence.registered(host.hostname, reportIntervalMs);
      if (!known) logger.info({ agent: host.hostname, os: host.os, version: host.agentVersion }, "agent registered");
    },
    async isRegistered(hostname) {
      return (await store.getAgent(hostname)) !== undefined;
    },
    touch(hostname) {
      presence.contact(hostname);
    },
    async list() {
      const [agents, access, statuses] = await Promise.all([store.listAgents(), store.listAgentAccess(), store.latestAgentStatuses()]);
      const accessByHost = new Map(access.map((a) => [a.hostname, a]));
      const storedStatus = new Map<string, AgentStatusChange>(statuses.map((s) => [s.hostname, s]));
      const summaries = await Promise.all(
        agents.map(async (a) => {
          const hostname = a.host.hostname;
          const live = presence.view(hostname);
          const summary = create(AgentSummarySchema, {
            host: a.host,
            registeredAt: timestampFromMs(a.registeredAtMs),
            lastSeen: timestampFromMs(Math.max(a.lastSeenMs, live?.lastContactMs ?? -Infinity)),
            pendingCommands: await store.countPendingCommands(hostname),
            collectors: a.collectors,
            collectorStatus: live?.collectorStatus ?? a.collectorStatus,
          });
          // This server's view, or the stored one when it is newer (another server noticed a change first).
          const stored = storedStatus.get(hostname);
          const useStored = stored && (live?.status === undefined || stored.atMs > (live.sinceMs ?? -Infinity));
          const status = useStored ? stored.status : live?.status;
          const since = useStored ? stored.atMs : live?.sinceMs;
          if (status !== undefined && since !== undefined) {
            summary.status = STATUS[status];
            summary.statusSince = timestampFromMs(since);
          }
          const acc = accessByHost.get(hostname);
          if (acc) addAccess(summary, acc);
          return summary;
        }),
      );
      const registered = new Set(agents.map((a) => a.host.hostname));
      for (const acc of access) {
        if (registered.has(acc.hostname)) continue;
        const summary = create(AgentSummarySchema, { host: acc.requestedHost ?? { hostname: acc.hostname } });
        addAccess(summary, acc);
        summaries.push(summary);
      }
      return summaries.sort((a, b) => (a.host!.hostname < b.host!.hostname ? -1 : a.host!.hostname > b.host!.hostname ? 1 : 0));
    },
  };
}

const STATES: Record<EnrollmentStateName, EnrollmentState> = {
  pending: EnrollmentState.PENDING,
  approved: EnrollmentState.APPROVED,
  denied: EnrollmentState.DENIED,
  revoked: EnrollmentState.REVOKED,
};

/** The enrollment state as the API names it. */
export function enrollmentStateOf(name: EnrollmentStateName): EnrollmentState {
  return STATES[name];
}

function addAccess(summary: AgentSummary, acc: AgentAccessRecord): void {
  summary.enrollmentState = STATES[acc.state];
  summary.labels = { ...acc.labels };
  summary.diagnostics = [...acc.diagnostics];
  if (acc.reportIntervalMs !== undefined) summary.reportInterval = durationFromMs(acc.reportIntervalMs);
}
