import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../../common/logger.js";
import { startApp, type App, type AppOptions } from "../app.js";
import { openSqliteStore } from "../store/sqlite/sqlite-store.js";

/** A real server on 127.0.0.1 port 0 over a real SQLite file, for tests. */
export async function startTestApp(
  opts: Partial<AppOptions> & { dataDir?: string } = {},
): Promise<App & { dataDir: string; baseUrl: string; removeDataDir(): void }> {
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
  return {
    ...app,
    dataDir,
    baseUrl: app.listener.url,
    removeDataDir: () => rmSync(dataDir, { recursive: true, force: true }),
  };
}
