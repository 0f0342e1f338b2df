#!/usr/bin/env node
import { join } from "node:path";
import { createLogger } from "../common/logger.js";
import { startApp } from "./app.js";
import { ConfigError, loadServerConfig, readTls, serverHelp } from "./config.js";
import { openSqliteStore } from "./store/sqlite/sqlite-store.js";

/** Entry point of `spectra-server`: config → store → services → listen; graceful stop on SIGINT/SIGTERM. */
async function main(): Promise<number> {
  let cfg;
  let tls;
  try {
    cfg = loadServerConfig(process.argv.slice(2), process.env);
    if (cfg.help) {
      process.stdout.write(serverHelp);
      return 0;
    }
    tls = readTls(cfg);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`spectra-server: ${err.message}\nRun spectra-server --help for the flags.\n`);
      return 2;
    }
    throw err;
  }
  const logger = createLogger({ name: "spectra-server", level: cfg.logLevel });
  const dbPath = join(cfg.dataDir, "spectra.db");
  let store;
  try {
    store = openSqliteStore(dbPath);
  } catch (err) {
    logger.fatal({ err, path: dbPath }, "cannot open the database");
    return 1;
  }
  let app;
  try {
    app = await startApp(store, logger, {
      host: cfg.host,
      port: cfg.port,
      ...(tls ? { tls } : {}),
      longPollMs: cfg.longPollMs,
      maxBodyBytes: cfg.maxBodyBytes,
      maxInflatedBytes: cfg.maxInflatedBytes,
      commandTtlMs: cfg.commandTtlMs,
      maxQueuedCommands: cfg.maxQueuedCommands,
    });
  } catch (err) {
    logger.fatal({ err: (err as Error).message, listen: `${cfg.host}:${cfg.port}` }, "cannot start the server");
    await store.close();
    return 1;
  }
  const running = app;
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, "shutting down");
      running.close(5_000).then(resolve, (err: unknown) => {
        logger.error({ err }, "shutdown failed");
        resolve();
      });
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`spectra-server: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
