import { toJson, createRegistry, type JsonValue } from "@bufbuild/protobuf";
import type { Logger } from "../common/logger.js";
import { file_spectra_v1_agent_service } from "../gen/spectra/v1/agent_service_pb.js";
import { file_spectra_v1_diagnostics } from "../gen/spectra/v1/diagnostics_pb.js";
import {
  CollectorHealth,
  MetricEnvelopeSchema,
  file_spectra_v1_metrics,
  type CollectorStatus,
  type MetricEnvelope,
} from "../gen/spectra/v1/metrics_pb.js";
import { createCommandLoop, type CommandLoop } from "./commands/command-loop.js";
import { isCollectorEnabled, type AgentConfig } from "./config.js";
import type { Collector, CollectorDefinition } from "./collectors/types.js";
import { DIAGNOSTIC_KEYS } from "./diagnostics/policy.js";
import type { DiagnosticName } from "./diagnostics/registry.js";
import type { HostAccess } from "./host/host-access.js";
import { collectHostInfo } from "./host/host-info.js";
import { createScheduler, defaultTimeoutMs, runCollector, toEnvelopes, type ScheduledCollector, type Scheduler, type StaticStatus } from "./scheduler.js";
import { createBackoff, formatDelay, sleep, type Backoff } from "./transport/backoff.js";
import { createBatcher } from "./transport/batcher.js";
import { createAgentConnection, registerWithRetry, type AgentConnection } from "./transport/client.js";
import { openCredential, type Credential } from "./transport/credentials.js";
import { enrollWithRetry, type EnrollOptions } from "./transport/enrollment.js";
import { createSender, type Sender } from "./transport/sender.js";
import { openSpool, type Spool } from "./transport/spool.js";
import { monotonicMs } from "./clock.js";

/** What the agent is built from besides its config; everything but the logger defaults to the real thing. */
export interface AgentDeps {
  logger: Logger;
  /** Default: createHostAccess(config.paths) from ./host/index.js. */
  host?: HostAccess;
  /** Collector names to consider, in order; default: the collector registry's. */
  collectorNames?: readonly string[];
  /** Default: loadCollector from the collector registry. */
  loadCollector?: (name: string) => Promise<CollectorDefinition>;
  /** Transport tunables (tests shorten them). */
  tuning?: AgentTuning;
}

/** Timings of the transport; the defaults are the production values. */
export interface AgentTuning {
  /** Batch flush interval; default 5 s. */
  flushIntervalMs?: number;
  /** Envelopes per batch; default 100. */
  maxEnvelopes?: number;
  /** StreamMetrics window; default 30 s. */
  windowMs?: number;
  /** Backoff factory for every retry loop; default 1 s → 60 s with full jitter. */
  backoff?: () => Backoff;
  /** Start jitter bound; default 2 s. */
  maxJitterMs?: number;
  /** Unchanged collector statuses are sent again after this long; default 60 s. */
  statusRefreshMs?: number;
  /** Wait before retrying after the server refused the agent's credential; default 5 min. */
  authRetryMs?: number;
  /** Enrollment polling and retry timings (see EnrollOptions). */
  enrollment?: Pick<EnrollOptions, "pollMs" | "minPollMs" | "maxPollMs" | "refusedRetryMs" | "minRefusedRetryMs">;
}

/** A running agent. */
export interface RunningAgent {
  readonly sessionId: string;
  /** Current collector statuses. */
  statuses(): CollectorStatus[];
  /** Counters for /debug/vars. */
  vars(): Record<string, unknown>;
  /** Graceful shutdown: stop timers, flush the pending batch into the spool, half-close streams, close the spool. */
  stop(): Promise<void>;
}

/** Collector instances ready to schedule, plus statuses for the ones that will not run. */
export interface PreparedCollectors {
  scheduled: ScheduledCollector[];
  statics: StaticStatus[];
  /** Releases every instance (child processes, sockets). */
  close(): Promise<void>;
}

/** Loads, checks and creates every enabled collector for this host. A collector that fails to start is reported, not fatal. */
export async function prepareCollectors(config: AgentConfig, host: HostAccess, deps: AgentDeps): Promise<PreparedCollectors> {
  const log = deps.logger;
  const { names, load } = await registryOf(deps);
  const scheduled: ScheduledCollector[] = [];
  const statics: StaticStatus[] = [];
  const instances: Collector[] = [];
  for (const name of names) {
    if (!isCollectorEnabled(config, name)) {
      // Disabled collectors are never loaded, so their dependencies never load either.
      statics.push({ name, health: CollectorHealth.DISABLED });
      continue;
    }
    const settings = config.collectors[name];
    let def: CollectorDefinition;
    try {
      def = await load(name);
    } catch (err) {
      log.error({ collector: name, err: describe(err) }, "collector could not be loaded");
      statics.push({ name, health: CollectorHealth.ERROR, error: `load: ${describe(err)}` });
      continue;
    }
    if (!def.platforms.includes(host.platform)) {
      log.debug({ collector: name, platform: host.platform }, "collector does not apply to this platform");
      continue;
    }
    const intervalMs = settings?.intervalMs ?? def.defaultIntervalMs;
    try {
      const collector = await withTimeout(
        Promise.resolve(def.create({ host, logger: log.child({ collector: name }), options: settings?.options ?? {} })),
        10_000,
        `create ${name}`,
      );
      instances.push(collector);
      scheduled.push({
        name,
        intervalMs,
        collector,
        ...(settings?.timeoutMs !== undefined ? { timeoutMs: settings.timeoutMs } : {}),
      });
    } catch (err) {
      log.warn({ collector: name, err: describe(err) }, "collector could not start");
      statics.push({ name, health: CollectorHealth.ERROR, error: `start: ${describe(err)}`, intervalMs });
    }
  }
  return {
    scheduled,
    statics,
    async close() {
      await Promise.all(
        instances.map(async (c) => {
          try {
            await withTimeout(Promise.resolve(c.close?.()), 3_000, "close collector");
          } catch (err) {
            log.warn({ err: describe(err) }, "collector did not close cleanly");
          }
        }),
      );
    },
  };
}

/**
 * Starts the agent: collectors → scheduler → batcher → durable spool → sender, the command loop and registration.
 * Resolves once everything runs; throws only when the data directory cannot be used.
 */
export async function startAgent(config: AgentConfig, deps: AgentDeps): Promise<RunningAgent> {
  const log = deps.logger;
  const tuning = deps.tuning ?? {};
  const backoff = tuning.backoff ?? (() => createBackoff());
  const host = deps.host ?? (await import("./host/index.js")).createHostAccess(config.paths);
  const collectors = await prepareCollectors(config, host, deps);

  let scheduler: Scheduler | undefined;
  let spool: Spool;
  try {
    spool = openSpool({
      dir: config.dataDir,
      maxBytes: config.spool.maxBytes,
      maxAgeMs: config.spool.maxAgeMs,
      logger: log.child({ component: "spool" }),
      onDrop: (counts) => scheduler?.addDropped(counts),
    });
  } catch (err) {
    await collectors.close();
    throw err;
  }

  const authRetryMs = tuning.authRetryMs ?? 5 * 60_000;
  const enrollSettings = config.enrollToken?.setting ?? "--enroll-token (or SPECTRA_ENROLL_TOKEN, enroll_token)";
  let credential: Credential;
  try {
    credential = openCredential({
      dataDir: config.dataDir,
      logger: log.child({ component: "credential" }),
      enrollHint: enrollSettings,
      retryHint: formatDelay(authRetryMs),
    });
  } catch (err) {
    await collectors.close();
    await spool.close();
    throw err;
  }
  const connection: AgentConnection = createAgentConnection({
    baseUrl: config.server,
    logger: log.child({ component: "transport" }),
    credential,
    pin: config.serverPin,
    ...(config.clientTls ? { tls: config.clientTls } : {}),
    authRetryMs,
  });
  const sender: Sender = createSender({
    connection,
    spool,
    logger: log.child({ component: "sender" }),
    backoff: backoff(),
    ...(tuning.windowMs !== undefined ? { windowMs: tuning.windowMs } : {}),
  });
  // Collector statuses travel with a batch only when one changed (health, error, drops) or the last ones sent are
  // getting old (their durations and last-success times): the server keeps the last statuses it received when a
  // batch carries none. Building and encoding all of them with every 5 s batch cost more than the batch's envelopes
  // (about 6 % of the agent's CPU, docs/benchmarks.md).
  const statusRefreshMs = tuning.statusRefreshMs ?? 60_000;
  let statusSentVersion = -1;
  let statusSentAtMs = -Infinity;
  const statusesToSend = (): CollectorStatus[] => {
    if (!scheduler) return [];
    const version = scheduler.statusVersion();
    const t = monotonicMs();
    if (version === statusSentVersion && t - statusSentAtMs < statusRefreshMs) return [];
    statusSentVersion = version;
    statusSentAtMs = t;
    return scheduler.statuses();
  };
  const batcher = createBatcher({
    ...(tuning.flushIntervalMs !== undefined ? { flushIntervalMs: tuning.flushIntervalMs } : {}),
    ...(tuning.maxEnvelopes !== undefined ? { maxEnvelopes: tuning.maxEnvelopes } : {}),
    onFlush: (batch) => {
      // On disk before the sender can see it (the spool's read() returns only durable batches); the write runs in
      // the thread pool, and the sender is woken when it is done.
      void spool
        .append({
          hostname: config.hostname,
          envelopes: batch.envelopes,
          collectorStatus: statusesToSend(),
          countsByCollector: batch.countsByCollector,
        })
        .then((seq) => {
          if (seq !== undefined) sender.notify();
        });
    },
  });
  scheduler = createScheduler({
    collectors: collectors.scheduled,
    staticStatuses: collectors.statics,
    hostname: config.hostname,
    sink: (name, envelopes) => batcher.add(name, envelopes),
    beforeTick: () => batcher.flushDue(),
    logger: log,
    ...(tuning.maxJitterMs !== undefined ? { maxJitterMs: tuning.maxJitterMs } : {}),
  });
  scheduler.addDropped(spool.dropped());
  const sched = scheduler;

  // Registration runs beside collection: batches spool meanwhile. CommandPoll needs it (the server refuses unknown
  // agents), so the command loop waits for it and asks for it again if the server forgot the agent.
  const stopper = new AbortController();
  const hostInfo = collectHostInfo({ hostname: config.hostname, platform: host.platform, paths: host.paths });
  // The heartbeat the server derives online/stale/offline from: a batch per flush interval.
  const reportIntervalMs = tuning.flushIntervalMs ?? 5_000;
  const collectorNames = collectors.scheduled.map((c) => c.name);
  const hadKey = credential.current() !== undefined;
  // Resolves true once calls may go out: with the stored key, after enrollment, or knowingly without a credential.
  // Until then batches wait in the spool and nothing else is called.
  const credentialReady: Promise<boolean> = hadKey
    ? Promise.resolve(true)
    : hostInfo
        .then((info) =>
          enrollWithRetry({
            connection,
            credential,
            dataDir: config.dataDir,
            token: config.enrollToken,
            info: { host: info, collectors: collectorNames, reportIntervalMs },
            logger: log.child({ component: "enroll" }),
            signal: stopper.signal,
            backoff: backoff(),
            ...tuning.enrollment,
          }),
        )
        .then((outcome) => {
          if (outcome === "no-credential") {
            log.warn(
              { keyFile: credential.keyPath },
              "this agent has no key and no enrollment token: connecting without a credential (only servers that allow " +
                `unauthenticated agents accept it); to enroll, set ${enrollSettings}`,
            );
          }
          return outcome !== "stopped";
        })
        .catch((err: unknown) => {
          log.error({ err: describe(err) }, "enrollment failed");
          return false;
        });
  let registered: Promise<boolean> | undefined;
  const register = (): Promise<boolean> => {
    registered ??= credentialReady
      .then(async (ready) => {
        if (!ready) return false;
        return registerWithRetry({
          connection,
          host: await hostInfo,
          collectors: collectorNames,
          diagnostics: allowedDiagnostics(config),
          reportIntervalMs,
          logger: log.child({ component: "register" }),
          signal: stopper.signal,
          backoff: backoff(),
        });
      })
      .catch((err: unknown) => {
        log.error({ err: describe(err) }, "registration failed");
        registered = undefined;
        return false;
      });
    return registered;
  };
  const commands: CommandLoop = createCommandLoop({
    connection,
    hostname: config.hostname,
    host,
    policy: config.diagnostics,
    logger: log.child({ component: "commands" }),
    backoff: backoff(),
    waitUntilReady: register,
    // The server forgot this agent (its database was reset): register again before the next CommandPoll.
    onNotRegistered: () => {
      registered = undefined;
    },
    // The server rotated this agent's key: on disk first, then in use for the next calls.
    onNewAgentKey: (key) => credential.store(key, "rotated"),
  });

  sched.start();
  // The sender waits for the credential (enrollment may take until an admin approves); batches spool meanwhile.
  void credentialReady.then((ready) => {
    if (ready && !stopper.signal.aborted) sender.start();
  });
  commands.start();
  void register();
  log.info(
    {
      server: config.server,
      hostname: config.hostname,
      dataDir: config.dataDir,
      sessionId: spool.sessionId,
      collectors: collectors.scheduled.map((c) => `${c.name}@${c.intervalMs}ms`),
      pendingBatches: spool.stats().batches,
      credential: hadKey ? "agent key" : config.enrollToken ? "enrolling" : "none",
      ...(config.serverPin ? { serverFingerprint: config.serverPin.fingerprint } : {}),
    },
    "agent started",
  );

  let stopping: Promise<void> | undefined;
  return {
    sessionId: spool.sessionId,
    statuses: () => sched.statuses(),
    vars: () => ({
      hostname: config.hostname,
      server: config.server,
      sessionId: spool.sessionId,
      transport: connection.mode,
      credential: credential.current() !== undefined ? "agent key" : "none",
      spool: spool.stats(),
      droppedEnvelopes: spool.dropped(),
      pendingEnvelopes: batcher.pending,
      sender: sender.stats(),
      commands: commands.stats(),
      collectors: sched.stats(),
    }),
    stop() {
      stopping ??= (async () => {
        log.info("agent stopping");
        stopper.abort();
        await sched.stop();
        batcher.close();
        // The last batch is on disk before the sender's final window looks for it.
        await spool.settled();
        await sender.stop();
        await commands.stop();
        connection.close();
        await collectors.close();
        await spool.close();
        log.info("agent stopped");
      })();
      return stopping;
    },
  };
}

/** Proto names of the diagnostics this agent's config allows, for Register. */
function allowedDiagnostics(config: AgentConfig): string[] {
  return (Object.entries(DIAGNOSTIC_KEYS) as [DiagnosticName, string][])
    .filter(([name]) => !config.diagnostics.disabled.has(name))
    .map(([, key]) => key);
}

/** Result of {@link collectOnce}. */
export interface OnceResult {
  envelopes: MetricEnvelope[];
  /** Collectors that failed or had no data: name → message. */
  problems: Record<string, string>;
}

/**
 * Runs every enabled collector once (`--once`). Collectors that only took a baseline (rates need two readings)
 * run a second time after `secondReadingDelayMs`.
 */
export async function collectOnce(config: AgentConfig, deps: AgentDeps, secondReadingDelayMs = 1_000): Promise<OnceResult> {
  const host = deps.host ?? (await import("./host/index.js")).createHostAccess(config.paths);
  const prepared = await prepareCollectors(config, host, deps);
  const envelopes: MetricEnvelope[] = [];
  const problems: Record<string, string> = {};
  for (const s of prepared.statics) if (s.health === CollectorHealth.ERROR) problems[s.name] = s.error ?? "error";
  try {
    const runRound = (list: readonly ScheduledCollector[]) =>
      Promise.all(
        list.map(async (c) => ({ c, outcome: await runCollector(c.collector, c.timeoutMs ?? defaultTimeoutMs(c.intervalMs)).outcome })),
      );
    const again: ScheduledCollector[] = [];
    const take = (rounds: Awaited<ReturnType<typeof runRound>>, last: boolean): void => {
      for (const { c, outcome } of rounds) {
        if (outcome.kind === "error") problems[c.name] = outcome.error.message;
        else if (outcome.kind === "no-data") problems[c.name] = "no data on this host";
        else if (outcome.payloads.length > 0) envelopes.push(...toEnvelopes(outcome.payloads, config.hostname, Date.now()));
        else if (!last) again.push(c);
        else problems[c.name] = "no data after two readings";
      }
    };
    take(await runRound(prepared.scheduled), false);
    if (again.length > 0) {
      await sleep(secondReadingDelayMs);
      take(await runRound(again), true);
    }
  } finally {
    await prepared.close();
  }
  // Keep the registry order, which is the order users read the output in.
  const order = new Map(prepared.scheduled.map((c, i) => [c.name, i]));
  envelopes.sort((a, b) => (order.get(a.type) ?? 99) - (order.get(b.type) ?? 99));
  return { envelopes, problems };
}

const JSON_REGISTRY = createRegistry(file_spectra_v1_metrics, file_spectra_v1_agent_service, file_spectra_v1_diagnostics);

/** Envelopes as proto JSON (field names as in the proto, e.g. "disk_io", "ram_total"). */
export function envelopesToJson(envelopes: readonly MetricEnvelope[]): JsonValue[] {
  return envelopes.map((e) => toJson(MetricEnvelopeSchema, e, { registry: JSON_REGISTRY, useProtoFieldName: true, alwaysEmitImplicit: true }));
}

async function registryOf(deps: AgentDeps): Promise<{ names: readonly string[]; load: (name: string) => Promise<CollectorDefinition> }> {
  if (deps.collectorNames && deps.loadCollector) return { names: deps.collectorNames, load: deps.loadCollector };
  const registry = await import("./collectors/registry.js");
  return {
    names: deps.collectorNames ?? registry.collectorNames,
    load:
      deps.loadCollector ??
      ((name) => {
        if (!registry.isCollectorName(name)) return Promise.reject(new Error(`unknown collector ${name}`));
        return registry.loadCollector(name);
      }),
  };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error && !err.message.includes(err.cause.message) ? `: ${err.cause.message}` : "";
  return `${err.message}${cause}`;
}
