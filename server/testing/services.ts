import { create } from "@bufbuild/protobuf";
import { silentLogger } from "../../common/logger.js";
import { HostInfoSchema } from "../../gen/spectra/v1/agent_service_pb.js";
import { createServices, type Services } from "../services.js";
import { openSqliteStore } from "../store/sqlite/sqlite-store.js";
import { TsdbEngine } from "../tsdb/engine.js";
import type { AccessOptions } from "../agents/access.js";
import type { RoleName } from "../auth/credentials.js";

/** Services over a real in-memory SQLite store, for tests; `register` adds a known agent. */
export function testServices(opts: { ttlMs?: number; clock?: () => number; access?: Partial<AccessOptions> } = {}): Services & {
  register(hostname: string): Promise<void>;
  /** A fresh admin token with this role. */
  token(role: RoleName): Promise<string>;
  /** An approved agent key for `hostname`. */
  agentKey(hostname: string): Promise<string>;
} {
  const store = openSqliteStore(":memory:");
  const s = createServices({
    store,
    tsdb: TsdbEngine.fresh(store, silentLogger(), opts.clock ? { clock: opts.clock } : {}),
    logger: silentLogger(),
    ...(opts.clock ? { clock: opts.clock } : {}),
    commandOptions: { maxQueued: 10, ttlMs: opts.ttlMs ?? 3_600_000, expireEveryMs: 60_000 },
    ...(opts.access ? { accessOptions: opts.access } : {}),
  });
  let n = 0;
  return {
    ...s,
    register: (hostname) => s.agents.register(create(HostInfoSchema, { hostname, os: "linux" }), ["cpu"]),
    token: async (role) => (await s.adminTokens.create(`test-${role}-${++n}`, role, "test")).token,
    agentKey: (hostname) => s.access.provision(hostname),
  };
}
