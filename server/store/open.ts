import type { Logger } from "../../common/logger.js";
import type { StoreSetting } from "../config.js";
import { openPostgresStore } from "./postgres/postgres-store.js";
import { openSqliteStore } from "./sqlite/sqlite-store.js";
import type { Store } from "./store.js";

/** Opens (creating and migrating) the configured store. */
export async function openStore(setting: StoreSetting, opts: { instanceId: string; logger: Logger }): Promise<Store> {
  return setting.kind === "postgres"
    ? openPostgresStore(setting.url, { instanceId: opts.instanceId, logger: opts.logger })
    : openSqliteStore(setting.path);
}
