import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { ConnectRouter } from "@connectrpc/connect";
import type { Logger } from "../common/logger.js";
import { AdminService, file_spectra_v1_admin_service } from "../gen/spectra/v1/admin_service_pb.js";
import { AgentService, file_spectra_v1_agent_service } from "../gen/spectra/v1/agent_service_pb.js";
import { listen, type ListenOptions, type SpectraListener } from "./http/listener.js";
import { ShutdownSignal } from "./http/shutdown-signal.js";
import { createLegacyRoutes } from "./rest/legacy-routes.js";
import { createAdminServiceImpl } from "./rpc/admin-service.js";
import { compactGzip } from "./rpc/compression.js";
import { createAgentServiceImpl } from "./rpc/agent-service.js";
import { errorInterceptor } from "./rpc/errors.js";
import { authInterceptor, requestContextValues } from "./rpc/auth.js";
import type { PresenceOptions } from "./agents/presence.js";
import type { RateLimitOptions } from "./auth/rate-limit.js";
import { createAccessServiceImpl } from "./rpc/access-service.js";
import { AccessService, file_spectra_v1_access_service } from "../gen/spectra/v1/access_service_pb.js";
import type { AccessOptions } from "./agents/access.js";
import type { AddressMatcher } from "./auth/address-matcher.js";
import { registerReflection } from "./rpc/reflection.js";
import { createServices, type Services } from "./services.js";
import type { Store } from "./store/store.js";
import { HistoryService, file_spectra_v1_history_service } from "../gen/spectra/v1/history_service_pb.js";
import { createHistoryServiceImpl } from "./rpc/history-service.js";
import { isBinaryMetricUpload, rawBatchImpl, RawBatchAgentService } from "./rpc/binary-ingest.js";
import { TsdbEngine, type TsdbOptions } from "./tsdb/engine.js";

/** Limits and timings of a running server. */
export interface AppOptions {
  host: string;
  port: number;
  tls?: ListenOptions["tls"];
  /** Legacy long poll: answer 204 after this long without a command. */
  longPollMs: number;
  /** Largest request body accepted (compressed, as sent). */
  maxBodyBytes: number;
  /** Largest body after gunzip (gzip bomb cap), also Connect's read limit. */
  maxInflatedBytes: number;
  commandTtlMs: number;
  maxQueuedCommands: number;
  clock?: () => number;
  /** Time-series engine settings (flush interval, retention, …); defaults otherwise. */
  tsdb?: Partial<TsdbOptions>;
  /** Source networks whose legacy agents may use /api/v1 without a credential (--legacy-allow); none by default. */
  legacyAllow?: AddressMatcher;
  /** Enrollment and key rotation timings; defaults otherwise. */
  access?: Partial<AccessOptions>;
  /** Agent status thresholds (stale / offline, in report intervals), cleanup; defaults otherwise. */
  presence?: Partial<PresenceOptions>;
  /** Rate limits and the failed-authentication slowdown; defaults otherwise. */
  rateLimits?: Partial<RateLimitOptions>;
}

/** A running Spectra server. */
export interface App {
  services: Services;
  listener: SpectraListener;
  /** Graceful stop: stop accepting, end streams, finish writes, close the store. */
  close(graceMs?: number): Promise<void>;
}

/** Composes services, Connect routes, legacy routes and the one-port listener over an opened store. */
export async function startApp(store: Store, logger: Logger, opts: AppOptions): Promise<App> {
  const tsdb = await TsdbEngine.open(store, logger, { ...(opts.clock ? { clock: opts.clock } : {}), ...opts.tsdb });
  const services = createServices({
    store,
    tsdb,
    logger,
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.access ? { accessOptions: opts.access } : {}),
    ...(opts.presence ? { presenceOptions: opts.presence } : {}),
    ...(opts.rateLimits ? { rateLimits: opts.rateLimits } : {}),
    commandOptions: {
      maxQueued: opts.maxQueuedCommands,
      ttlMs: opts.commandTtlMs,
      expireEveryMs: Math.min(30_000, Math.max(1_000, opts.commandTtlMs / 4)),
    },
  });
  const shutdown = new ShutdownSignal();
  const legacy = createLegacyRoutes(services, {
    longPollMs: opts.longPollMs,
    maxBodyBytes: opts.maxBodyBytes,
    maxInflatedBytes: opts.maxInflatedBytes,
    shutdownSignal: shutdown.signal,
    ...(opts.legacyAllow ? { legacyAllow: opts.legacyAllow } : {}),
  });
  const agentImpl = createAgentServiceImpl(services);
  const connectOptions = {
    // Both handlers (the raw-batch one too) authenticate every call the same way.
    interceptors: [errorInterceptor(logger), authInterceptor(services.auth, logger)],
    // gzip with each inflated message in a buffer of its own size (rpc/compression.ts)
    acceptCompression: [compactGzip],
    readMaxBytes: opts.maxInflatedBytes,
    writeMaxBytes: 64 * 1024 * 1024,
    shutdownSignal: shutdown.signal,
    // The peer's address, for the abuse limits (rpc/auth.ts).
    contextValues: requestContextValues,
  };
  // Binary metric uploads take the raw-batch route (server/rpc/binary-ingest.ts); everything else the regular one.
  const binaryIngest = connectNodeAdapter({
    routes: (router: ConnectRouter) => router.service(RawBatchAgentService, rawBatchImpl(agentImpl)),
    ...connectOptions,
  });
  const regular = connectNodeAdapter({
    routes: (router: ConnectRouter) => {
      router.service(AgentService, agentImpl);
      router.service(AdminService, createAdminServiceImpl(services));
      router.service(HistoryService, createHistoryServiceImpl(services));
      router.service(AccessService, createAccessServiceImpl(services));
      registerReflection(router, [
        file_spectra_v1_agent_service,
        file_spectra_v1_admin_service,
        file_spectra_v1_history_service,
        file_spectra_v1_access_service,
      ]);
    },
    fallback: legacy,
    ...connectOptions,
  });
  const handler: typeof regular = (req, res) => (isBinaryMetricUpload(req) ? binaryIngest(req, res) : regular(req, res));
  services.commands.start();
  await services.presence.start();
  let listener: SpectraListener;
  try {
    listener = await listen({
      host: opts.host,
      port: opts.port,
      handler,
      logger,
      ...(opts.tls ? { tls: opts.tls } : {}),
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 0,
      keepAliveTimeoutMs: 65_000,
    });
  } catch (err) {
    services.commands.stop();
    services.access.stop();
    await services.presence.stop();
    throw err;
  }
  logger.info({ url: listener.url }, "spectra server listening");
  let closing: Promise<void> | undefined;
  return {
    services,
    listener,
    close(graceMs = 5_000) {
      closing ??= (async () => {
        shutdown.abort();
        services.commands.stop();
        services.access.stop();
        await listener.close(graceMs);
        await services.presence.stop(); // last contacts and status changes not written yet
        await tsdb.close();
        await store.close();
        logger.info("spectra server stopped");
      })();
      return closing;
    },
  };
}
