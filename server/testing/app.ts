import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../../common/logger.js";
import { startApp, type App, type AppOptions } from "../app.js";
import { openSqliteStore } from "../store/sqlite/sqlite-store.js";
import type { RoleName } from "../auth/credentials.js";

/** What {@link startTestApp} returns: the app, its address, and credentials. */
export interface TestApp extends App {
  dataDir: string;
  baseUrl: string;
  /** An admin token (role admin) made at start. */
  adminToken: string;
  /** Makes another admin token with this role. */
  token(role: RoleName): Promise<string>;
  /** Gives `hostname` an approved access record and returns its agent key. */
  agentKey(hostname: string): Promise<string>;
  removeDataDir(): void;
}

/** A real server on 127.0.0.1 port 0 over a real SQLite file, for tests, with an admin token ready. */
export async function startTestApp(opts: Partial<AppOptions> & { dataDir?: string } = {}): Promise<TestApp> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "spectra-app-"));
  const app = await startApp(openSqliteStore(join(dataDir, "spectra.db")), silentLogger(), {
    host: "127.0.0.1",
    port: 0,
    longPollMs: 1_000,
    maxBodyBytes: 1024 * 1024,
    maxInflatedBytes: 8 * 1024 * 1024,
    commandTtlMs: 3_600_000,
    maxQueuedCommands: 10,
    ...opts,
  });
  // Names go on from the tokens already there (a test app reopened on the same data directory).
  let n = await app.services.store.countAdminTokens();
  const token = async (role: RoleName) => (await app.services.adminTokens.create(`test-${role}-${++n}`, role, "test")).token;
  return {
    ...app,
    dataDir,
    baseUrl: app.listener.url,
    adminToken: await token("admin"),
    token,
    agentKey: (hostname) => app.services.access.provision(hostname),
    removeDataDir: () => rmSync(dataDir, { recursive: true, force: true }),
  };
}
