import type { Logger } from "../common/logger.js";
import { createAgentAccess, type AccessOptions, type AgentAccess } from "./agents/access.js";
import { createAgentRegistry, type AgentRegistry } from "./agents/agent-registry.js";
import { createPresence, type Presence, type PresenceOptions } from "./agents/presence.js";
import { createAgentRemover, type AgentRemover } from "./agents/removal.js";
import { createAbuseLimits, type AbuseLimits, type RateLimitOptions } from "./auth/rate-limit.js";
import { createAdminTokens, type AdminTokens } from "./auth/admin-tokens.js";
import { createAuthorizer, type Authorizer } from "./auth/authorizer.js";
import { createCommandQueue, type CommandQueue, type CommandQueueOptions } from "./commands/command-queue.js";
import { createIngestService, type IngestService } from "./ingest/ingest-service.js";
import type { Store } from "./store/store.js";
import { createHistoryService, type HistoryService } from "./history/history-service.js";
import type { TsdbEngine } from "./tsdb/engine.js";

/** The one set of services the RPC and REST layers sit on. */
export interface Services {
  store: Store;
  ingest: IngestService;
  agents: AgentRegistry;
  commands: CommandQueue;
  tsdb: TsdbEngine;
  history: HistoryService;
  /** Enrollment, agent keys, rotation, revocation and the agents' open streams. */
  access: AgentAccess;
  adminTokens: AdminTokens;
  /** Turns an Authorization header into a principal and applies the abuse limits (both transports). */
  auth: Authorizer;
  /** Rate limits and the failed-authentication slowdown (in memory). */
  limits: AbuseLimits;
  /** Each agent's last contact and online / stale / offline status with its timeline. */
  presence: Presence;
  /** Deregistration (RemoveAgent, automatic cleanup). */
  removal: AgentRemover;
  clock: () => number;
  logger: Logger;
}

/** Builds the services over a store. */
export function createServices(deps: {
  store: Store;
  tsdb: TsdbEngine;
  logger: Logger;
  clock?: () => number;
  commandOptions: CommandQueueOptions;
  accessOptions?: Partial<AccessOptions>;
  presenceOptions?: Partial<PresenceOptions>;
  rateLimits?: Partial<RateLimitOptions>;
}): Services {
  const clock = deps.clock ?? Date.now;
  const base = { store: deps.store, logger: deps.logger, clock };
  const access = createAgentAccess({ ...base, ...(deps.accessOptions ? { options: deps.accessOptions } : {}) });
  const adminTokens = createAdminTokens(base);
  const limits = createAbuseLimits(deps.rateLimits, clock);
  const presence = createPresence({ ...base, ...(deps.presenceOptions ? { options: deps.presenceOptions } : {}) });
  const commands = createCommandQueue({ ...base, options: deps.commandOptions });
  const removal = createAgentRemover({ ...base, tsdb: deps.tsdb, access, commands, presence });
  // Another server sharing the database removed a host with its data: this server's head forgets it too.
  deps.store.subscribe?.("host_data_deleted", (hostname) => {
    if (hostname === null) return; // missed notifications: the host's series stay listed here until a restart
    deps.tsdb.forgetHost(hostname).catch((err: unknown) => deps.logger.warn({ err, agent: hostname }, "cannot forget a removed host"));
  });
  presence.setCleanup(async (hostname) => {
    await removal.remove(hostname, { deleteData: false, by: "cleanup (--agent-cleanup-after)" });
  });
  return {
    ...base,
    tsdb: deps.tsdb,
    history: createHistoryService({ store: deps.store, tsdb: deps.tsdb, clock }),
    ingest: createIngestService({ ...base, tsdb: deps.tsdb, presence }),
    agents: createAgentRegistry({ ...base, presence }),
    commands,
    access,
    adminTokens,
    auth: createAuthorizer({ adminTokens, access, limits, logger: deps.logger, store: deps.store, clock }),
    limits,
    presence,
    removal,
  };
}
