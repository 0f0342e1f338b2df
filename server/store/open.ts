import type { Logger } from "../../common/logger.js";
import type { StoreSetting } from "../config.js";
import { openPostgresStore } from "./postgres/postgres-store.js";
import { openThreadedSqliteStore } from "./sqlite/threaded-store.js";
import type { Store } from "./store.js";

/**
 * The server's SQLite batch commits are at least this far apart: at most 100 transactions (fsyncs) a second however
 * many agents send, each batch acknowledged at most this much later (docs/benchmarks.md, "Fleet scale").
 */
export const SQLITE_GROUP_COMMIT_MS = 10;

/** Opens (creating and migrating) the configured store. */
export async function openStore(setting: StoreSetting, opts: { instanceId: string; logger: Logger }): Promise<Store> {
  return setting.kind === "postgres"
    ? openPostgresStore(setting.url, { instanceId: opts.instanceId, logger: opts.logger })
    : openThreadedSqliteStore(setting.path, { groupCommitMs: SQLITE_GROUP_COMMIT_MS });
}
