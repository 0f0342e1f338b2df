/**
 * Credentials for tests: admin tokens and approved agent keys made directly in a store (no enrollment round trip),
 * a client interceptor that sends one, and the key file a real agent process reads.
 */
import type { Interceptor } from "@connectrpc/connect";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { silentLogger } from "../../common/logger.js";
import { createAgentAccess } from "../agents/access.js";
import { createAdminTokens } from "../auth/admin-tokens.js";
import type { RoleName } from "../auth/credentials.js";
import type { Store } from "../store/store.js";

let counter = 0;

/** Creates an admin token with `role` (name: `test-<role>-<n>` unless given) and returns the token. */
export async function createTestAdminToken(store: Store, role: RoleName = "admin", name?: string): Promise<string> {
  const tokens = createAdminTokens({ store, logger: silentLogger(), clock: Date.now });
  return (await tokens.create(name ?? `test-${role}-${++counter}`, role, "test")).token;
}

/** Gives `hostname` an approved access record and returns its fresh agent key. */
export async function createTestAgentKey(store: Store, hostname: string, labels?: Record<string, string>): Promise<string> {
  const access = createAgentAccess({ store, logger: silentLogger(), clock: Date.now });
  try {
    return await access.provision(hostname, labels ? { labels } : {});
  } finally {
    access.stop();
  }
}

/** A Connect client interceptor sending `Authorization: Bearer <token>`. */
export function bearer(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

/** Client options sending `token` on every call: `createConnectTransport({ baseUrl, ...withToken(t) })`. */
export function withToken(token: string): { interceptors: Interceptor[] } {
  return { interceptors: [bearer(token)] };
}

/** Headers for fetch() with `token`. */
export function authHeader(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

/**
 * Writes an agent key where the agent looks for it before enrolling: `<agentDataDir>/agent.key`, mode 0600.
 */
export function writeAgentKeyFile(agentDataDir: string, key: string): string {
  mkdirSync(agentDataDir, { recursive: true });
  const path = join(agentDataDir, "agent.key");
  writeFileSync(path, `${key}\n`, { mode: 0o600 });
  return path;
}
