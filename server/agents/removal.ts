/**
 * Deregistration (AccessService.RemoveAgent, and the automatic cleanup of long-offline agents).
 *
 * Decisions (see README "Security"):
 * - The access record is deleted, which revokes the agent's keys: its open CommandPoll and StreamMetrics streams end
 *   with Unauthenticated at once, here and (PostgreSQL NOTIFY) on every server sharing the database, and every later
 *   call is refused as an unknown key. To come back the host must enroll again.
 * - Its queued and delivered commands become expired, their outcome's error saying "agent removed by <who>"; the
 *   commands stay in the audit trail (also with delete_data: the trail records what admins did).
 * - Without delete_data the host's metrics, snapshots and status timeline stay queryable; the timeline ends with
 *   "offline" at the removal (unless it already was). With delete_data they are
 *   deleted too (series, chunks, rollups, snapshots, latest envelopes, replay keys, WAL rows, timeline), while no
 *   flush of the time-series head runs, and the head forgets the host.
 * - Removal and deletion are one store transaction. A batch already past authentication when the key goes may still
 *   land after it (it was sent with a valid key); remove agents that are stopped when their data must be gone.
 */
import type { Logger } from "../../common/logger.js";
import type { CommandQueue } from "../commands/command-queue.js";
import { NotFoundError } from "../errors.js";
import type { AgentRemoval as StoreRemoval, Store } from "../store/store.js";
import type { TsdbEngine } from "../tsdb/engine.js";
import type { AgentAccess } from "./access.js";
import { checkHostname } from "./hostname.js";
import type { Presence } from "./presence.js";

/** Removes agents. */
export interface AgentRemover {
  /** Removes `hostname` (NotFoundError when there is nothing to remove); `by` goes to the log and the commands. */
  remove(hostname: string, opts: { deleteData: boolean; by: string }): Promise<StoreRemoval>;
}

/** Creates the remover over the services it touches. */
export function createAgentRemover(deps: {
  store: Store;
  tsdb: TsdbEngine;
  access: AgentAccess;
  commands: CommandQueue;
  presence: Presence;
  logger: Logger;
  clock: () => number;
}): AgentRemover {
  const { store, tsdb, access, commands, presence, clock } = deps;
  const logger = deps.logger.child({ component: "removal" });
  return {
    async remove(hostname, { deleteData, by }) {
      checkHostname(hostname);
      if (!deleteData) await presence.flush(); // the timeline is kept: with every change noticed so far
      presence.forget(hostname);
      const atMs = clock();
      const run = () => store.removeAgent(hostname, { atMs, reason: `agent removed by ${by}`, deleteData });
      const r = deleteData ? await tsdb.forgetHost(hostname, run) : await run();
      presence.forget(hostname); // a contact that arrived meanwhile
      // A kept timeline ends with the removal: from then on the agent is offline (not "no data").
      if (!deleteData && r.agent) await store.recordAgentStatuses([{ hostname, status: "offline", atMs }]);
      access.streams.changed(hostname); // open streams look again: no record, so they end (Unauthenticated)
      commands.changed(r.expiredCommands);
      const nothing = !r.agent && !r.access && r.expiredCommands.length === 0 && r.series + r.snapshots + r.timeline === 0;
      if (nothing) {
        throw new NotFoundError(
          deleteData ? `no agent or data for host "${hostname}"` : `no agent "${hostname}" (to delete a host's data, set delete_data)`,
        );
      }
      logger.info(
        {
          agent: hostname,
          by,
          deleteData,
          expiredCommands: r.expiredCommands.length,
          ...(deleteData ? { series: r.series, snapshots: r.snapshots, timeline: r.timeline } : {}),
        },
        deleteData ? "agent removed with its data" : "agent removed (data kept)",
      );
      return r;
    },
  };
}
