#!/usr/bin/env node
import { createLogger } from "../common/logger.js";
import { startApp } from "./app.js";
import { ConfigError, describeStore, loadServerConfig, readTls, serverHelp } from "./config.js";
import { openPostgresStore } from "./store/postgres/postgres-store.js";
import { openSqliteStore } from "./store/sqlite/sqlite-store.js";
import type { Store } from "./store/store.js";

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
  let store: Store;
  try {
    store =
      cfg.store.kind === "postgres"
        ? await openPostgresStore(cfg.store.url, { instanceId: cfg.instanceId, logger })
        : openSqliteStore(cfg.store.path);
  } catch (err) {
    logger.fatal({ err, store: describeStore(cfg.store) }, "cannot open the database");
    return 1;
  }
  logger.info({ store: describeStore(cfg.store), backend: cfg.store.kind, instance: cfg.instanceId }, "store open");
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
      tsdb: { retentionMs: cfg.retentionMs, flushIntervalMs: cfg.flushIntervalMs },
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
