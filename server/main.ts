#!/usr/bin/env node
// First: V8 flags (opt-in, see v8-flags.ts) before anything else runs.
import "./v8-flags.js";
import { createLogger } from "../common/logger.js";
import { startApp } from "./app.js";
import { createAdminTokens } from "./auth/admin-tokens.js";
import { isTokenCommand, runTokenCommand } from "./cli/token-command.js";
import { ConfigError, describeStore, loadServerConfig, readClientTls, readTls, serverHelp } from "./config.js";
import { ensureSelfSignedCertificate } from "./http/self-signed.js";
import { openStore } from "./store/open.js";
import type { Store } from "./store/store.js";

/**
 * Prints the first admin token on stderr as plain lines (not through the JSON logger, so it is easy to copy and no
 * log collector keeps it as structured data). Shown this once; the store keeps only its hash.
 */
function printInitialToken(token: string): void {
  process.stderr.write(
    "spectra-server: no admin token existed, so one was created: name \"initial-admin\", role admin.\n" +
      "spectra-server: store it now, it is not shown again (send it as \"Authorization: Bearer <token>\"):\n" +
      `spectra-server: ${token}\n` +
      "spectra-server: more tokens: spectra-server token create --name <name> --role viewer|operator|admin\n",
  );
}

/** Entry point of `spectra-server`: config → store → services → listen; graceful stop on SIGINT/SIGTERM. */
async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (isTokenCommand(argv)) {
    return runTokenCommand(argv, process.env, {
      out: (t) => process.stdout.write(t),
      err: (t) => process.stderr.write(t),
    });
  }
  let cfg;
  let tls;
  let clientTls;
  try {
    cfg = loadServerConfig(argv, process.env);
    if (cfg.help) {
      process.stdout.write(serverHelp);
      return 0;
    }
    tls = readTls(cfg);
    clientTls = readClientTls(cfg);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`spectra-server: ${err.message}\nRun spectra-server --help for the flags.\n`);
      return 2;
    }
    throw err;
  }
  const logger = createLogger({ name: "spectra-server", level: cfg.logLevel });
  // Signals are caught from here on: one arriving while the server starts stops it as soon as it has started
  // (without a listener, SIGTERM would kill the process mid-start).
  let stopSignal: string | undefined;
  let onStop: ((signal: string) => void) | undefined;
  const catchSignal = (signal: string) => (onStop ? onStop(signal) : (stopSignal ??= signal));
  process.once("SIGINT", catchSignal);
  process.once("SIGTERM", catchSignal);
  if (cfg.tlsSelfSigned) {
    try {
      const self = await ensureSelfSignedCertificate(cfg.dataDir, cfg.host);
      tls = { cert: self.cert, key: self.key, ...clientTls };
      logger.info({ cert: self.certPath, fingerprint: self.fingerprint, created: self.created }, "self-signed TLS certificate");
      process.stderr.write(
        `spectra-server: TLS with the self-signed certificate ${self.certPath}` +
          `${self.created ? " (made now)" : ""}; agents pin it with --server-fingerprint ${self.fingerprint}\n`,
      );
    } catch (err) {
      process.stderr.write(
        `spectra-server: tls-self-signed: ${(err as Error).message}\n` +
          "spectra-server: give a certificate with --tls-cert and --tls-key instead (see README, Security).\n",
      );
      return 1;
    }
  }
  let store: Store;
  try {
    store = await openStore(cfg.store, { instanceId: cfg.instanceId, logger });
  } catch (err) {
    logger.fatal({ err, store: describeStore(cfg.store) }, "cannot open the database");
    return 1;
  }
  logger.info({ store: describeStore(cfg.store), backend: cfg.store.kind, instance: cfg.instanceId }, "store open");
  try {
    const initial = await createAdminTokens({ store, logger, clock: Date.now }).ensureInitial();
    if (initial) printInitialToken(initial);
  } catch (err) {
    logger.fatal({ err }, "cannot create the first admin token");
    await store.close();
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
      tsdb: { retentionMs: cfg.retentionMs, flushIntervalMs: cfg.flushIntervalMs },
      maxQueuedCommands: cfg.maxQueuedCommands,
      legacyAllow: cfg.legacyAllow,
      access: { keyGraceMs: cfg.keyGraceMs },
      presence: {
        staleAfter: cfg.agentStaleAfter,
        offlineAfter: cfg.agentOfflineAfter,
        cleanupAfterMs: cfg.agentCleanupAfterMs,
      },
      rateLimits: { ratePerSec: cfg.rateLimit, burst: cfg.rateBurst },
    });
  } catch (err) {
    logger.fatal({ err: (err as Error).message, listen: `${cfg.host}:${cfg.port}` }, "cannot start the server");
    await store.close();
    return 1;
  }
  if (cfg.legacyAllow.networks.length > 0) {
    logger.warn({ networks: cfg.legacyAllow.networks }, "legacy agents in these networks may use /api/v1 without a credential");
  }
  const running = app;
  await new Promise<void>((resolve) => {
    onStop = (signal: string) => {
      logger.info({ signal }, "shutting down");
      running.close(5_000).then(resolve, (err: unknown) => {
        logger.error({ err }, "shutdown failed");
        resolve();
      });
    };
    if (stopSignal) onStop(stopSignal);
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
