import type { Logger } from "../common/logger.js";
import { createAgentRegistry, type AgentRegistry } from "./agents/agent-registry.js";
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
}): Services {
  const clock = deps.clock ?? Date.now;
  const base = { store: deps.store, logger: deps.logger, clock };
  return {
    ...base,
    tsdb: deps.tsdb,
    history: createHistoryService({ store: deps.store, tsdb: deps.tsdb, clock }),
    ingest: createIngestService({ ...base, tsdb: deps.tsdb }),
    agents: createAgentRegistry(base),
    commands: createCommandQueue({ ...base, options: deps.commandOptions }),
  };
}
