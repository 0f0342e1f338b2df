import fs from "node:fs";
import type Dockerode from "dockerode";
import type { Logger } from "../../../common/logger.js";
import { computeRates } from "../rate.js";
import type { Platform } from "../types.js";
import {
  containerName,
  cpuLimitCores,
  cpuPercent,
  cpuSample,
  healthOf,
  memoryLimitBytes,
  memoryUsedBytes,
  networkTotals,
  parseContainerList,
  uptimeSeconds,
  type CpuSample,
  type DockerContainerSummary,
  type DockerInspect,
  type DockerStats,
} from "./docker-parse.js";
import type { ContainersOptions } from "./options.js";
import type { ContainerRow } from "./payload.js";
import { mapWithLimit } from "./pool.js";
import { describeError, errorDetails, type ContainerSource, type SourceOutcome } from "./source.js";
import { monotonicMs as clockMs } from "../../clock.js";

/** The Docker Engine's default endpoint on Windows (named pipe). */
export const WINDOWS_DOCKER_PIPE = "//./pipe/docker_engine";
/** The Docker Engine's default endpoint on Linux. */
export const LINUX_DOCKER_SOCKET = "/var/run/docker.sock";

/** Connection errors that mean "no Docker here for this agent", not "Docker is broken". */
const ABSENT_CODES = new Set(["ENOENT", "ENOTDIR", "EACCES", "EPERM"]);

/** Where the engine is: a socket/pipe path, or `undefined` to let dockerode read `DOCKER_HOST` (tcp, ssh). */
export interface DockerEndpoint {
  socketPath: string | undefined;
  /** For messages: the path, or `DOCKER_HOST=<value>`. */
  label: string;
}

/**
 * Picks the endpoint: option `docker_socket`, else `DOCKER_HOST` (unix/npipe paths taken here so their presence
 * can be checked without loading dockerode; other schemes left to dockerode), else the platform default.
 */
export function dockerEndpoint(
  platform: Platform,
  optionSocket: string | undefined,
  dockerHost: string | undefined,
): DockerEndpoint {
  const strip = (s: string): string => s.replace(/^(unix|npipe):\/\//, "");
  if (optionSocket) return { socketPath: strip(optionSocket), label: strip(optionSocket) };
  const host = dockerHost?.trim();
  if (host) {
    if (/^(unix|npipe):\/\/./.test(host)) return { socketPath: strip(host), label: strip(host) };
    return { socketPath: undefined, label: `DOCKER_HOST=${host}` };
  }
  const socketPath = platform === "windows" ? WINDOWS_DOCKER_PIPE : LINUX_DOCKER_SOCKET;
  return { socketPath, label: socketPath };
}

function isNamedPipe(p: string): boolean {
  return /^(\/\/|\\\\)\.[/\\]pipe[/\\]/i.test(p);
}

/** Counters kept between runs for one running container. */
interface Baseline {
  cpu: CpuSample;
  net: { rx: number; tx: number } | undefined;
  /** When the reading was taken: the engine's `read` time, else our wall clock. */
  atMs: number;
}

/** A cached inspect and what the container looked like when it was taken. */
interface CachedInspect {
  data: DockerInspect;
  /** The list `State` at the time: a different state later means the inspect is stale. */
  state: string;
  fetchedAtMono: number;
}

/** Test seams for the Docker source. */
export interface DockerSourceDeps {
  /** Wall clock in ms (uptime from `StartedAt`); default `Date.now`. */
  nowMs?: () => number;
  /** Monotonic clock in ms (budgets, cache ages); default `clockMs`, agent/clock.ts. */
  monotonicMs?: () => number;
  /** `DOCKER_HOST`; default `process.env.DOCKER_HOST`. */
  dockerHost?: string | undefined;
}

/** What one per-container task produced. */
interface TaskResult {
  row: ContainerRow | undefined;
  /** A stats or inspect call that failed (the row is still reported, with less in it). */
  failure: unknown;
}

/**
 * Docker through dockerode (docs/data-sources.md 3.10), one client per collector instance, created on first use:
 *
 * - `listContainers({all: true})` every run: every container in every state, with the health status.
 * - stats only for `running` containers (paused, exited, created, restarting are reported without), at most
 *   `concurrency` calls in flight, each with the `docker_timeout`, none started after `stats_budget`:
 *   - first sight: `stats({stream: false})`, which waits ~2 s on the engine's 1 s collector tick and fills
 *     `precpu_stats`, so a new container gets a real CPU % (over ~1 s) in its first report instead of a 0;
 *   - afterwards: `stats({stream: false, one-shot: true})` (~1 s: one tick; measured on Engine 20.10) and CPU %
 *     against this collector's previous reading — the average over the whole interval, not a 1 s snapshot.
 *   Counters that went backwards (a restart made a new cgroup) give no CPU %/rate that run.
 * - `inspect` (restart count, CPU/memory limits, start time) is cached per container id and refreshed only for a
 *   new id, a changed list state, counters that went backwards (a restart between runs), or after `inspect_ttl`.
 * - Memory without page cache as the docker CLI shows it (see `memoryUsedBytes`); network totals over all
 *   networks with per-second rates from the previous reading.
 *
 * No Docker (no socket: ENOENT; no permission: EACCES) → `{present: false}`; dockerode is then never loaded when
 * the endpoint is a unix socket that does not exist. A socket that exists but hangs or fails → throws.
 * A container that disappears between the list and its stats/inspect (HTTP 404) is left out.
 */
export function createDockerSource(
  platform: Platform,
  options: ContainersOptions,
  logger: Logger,
  deps: DockerSourceDeps = {},
): ContainerSource {
  const nowMs = deps.nowMs ?? (() => Date.now());
  const monotonicMs = deps.monotonicMs ?? clockMs;
  const endpoint = dockerEndpoint(
    platform,
    options.dockerSocket,
    "dockerHost" in deps ? deps.dockerHost : process.env["DOCKER_HOST"],
  );
  const timeoutMs = options.dockerTimeoutMs;
  let client: Dockerode | undefined;
  let baselines = new Map<string, Baseline>();
  let inspects = new Map<string, CachedInspect>();
  let partialFailing = false;
  let budgetExceeded = false;

  const getClient = async (): Promise<Dockerode> => {
    if (client) return client;
    // Loaded here, not at module level: a host without Docker never pays for dockerode (and its gRPC stack).
    const { default: Docker } = await import("dockerode");
    // `timeout` is the socket idle timeout of every request; the per-call AbortSignal below is the hard bound.
    client = endpoint.socketPath
      ? new Docker({ socketPath: endpoint.socketPath, timeout: timeoutMs })
      : new Docker({ timeout: timeoutMs });
    return client;
  };

  /** One Docker API call, bounded by `docker_timeout` and the run's signal; errors say what and where. */
  const call = async <T>(what: string, signal: AbortSignal, fn: (s: AbortSignal) => Promise<T>): Promise<T> => {
    // One controller with explicit listeners rather than AbortSignal.any (not in Node < 20.3; its dependent
    // signals leak on Node 20 while the source signal lives).
    const ctrl = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ctrl.abort(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const onAbort = (): void => ctrl.abort(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    try {
      return await fn(ctrl.signal);
    } catch (cause) {
      if (timedOut && !signal.aborted) throw new Error(`docker ${what}: no answer within ${timeoutMs} ms`, { cause });
      throw new Error(`docker ${what}`, { cause });
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
    }
  };

  const absent = (reason: string): SourceOutcome => ({ present: false, reason });

  const statsOf = async (
    c: Dockerode.Container,
    name: string,
    signal: AbortSignal,
    first: boolean,
  ): Promise<DockerStats> => {
    const raw: unknown = await call(`stats ${name}`, signal, (s) => {
      // A variable, not a literal: the typings know neither `abortSignal` here nor the one-shot flag together.
      const opts = first
        ? { stream: false as const, abortSignal: s }
        : { stream: false as const, "one-shot": true, abortSignal: s };
      return c.stats(opts);
    });
    if (!raw || typeof raw !== "object") throw new Error(`docker stats ${name}: not a JSON object`);
    return raw as DockerStats;
  };

  const task = async (
    docker: Dockerode,
    summary: DockerContainerSummary,
    signal: AbortSignal,
    nextBaselines: Map<string, Baseline>,
    nextInspects: Map<string, CachedInspect>,
  ): Promise<TaskResult> => {
    const id = summary.Id;
    const name = containerName(summary);
    const state = summary.State ?? "unknown";
    const container = docker.getContainer(id);
    let failure: unknown;
    let stats: DockerStats | undefined;
    let net: { rx: number; tx: number } | undefined;
    let cpu: number | undefined;
    let rxRate: number | undefined;
    let txRate: number | undefined;
    let restarted = false;

    if (state === "running") {
      const base = baselines.get(id);
      try {
        stats = await statsOf(container, name, signal, base === undefined);
      } catch (err) {
        if (errorDetails(err).statusCode === 404) return { row: undefined, failure: undefined };
        failure = err;
      }
      const cur = stats ? cpuSample(stats, "cpu_stats") : undefined;
      net = stats ? networkTotals(stats) : undefined;
      if (stats && cur) {
        const atMs = cur.readMs ?? nowMs();
        if (base) {
          cpu = cpuPercent(base.cpu, cur);
          // Counters going back mean a new cgroup/network namespace: the container restarted between runs.
          if (
            cur.totalUsage < base.cpu.totalUsage ||
            (base.net && net && (net.rx < base.net.rx || net.tx < base.net.tx))
          )
            restarted = true;
          if (base.net && net) {
            const r = computeRates(
              new Map([[id, [base.net.rx, base.net.tx]]]),
              new Map([[id, [net.rx, net.tx]]]),
              atMs - base.atMs,
            );
            const k = r.get(id);
            if (k) [rxRate, txRate] = k.perSecond;
          }
        } else {
          // First sight: the non-one-shot answer carries the engine's own previous reading (~1 s earlier).
          const pre = cpuSample(stats, "precpu_stats");
          cpu = pre ? cpuPercent(pre, cur) : undefined;
        }
        nextBaselines.set(id, { cpu: cur, net, atMs });
      }
    }

    // Inspect: cached; refreshed for a new id, a changed state, a restart seen in the counters, or old age.
    const cached = inspects.get(id);
    let inspect = cached?.data;
    const stale =
      !cached || cached.state !== state || restarted || monotonicMs() - cached.fetchedAtMono > options.inspectTtlMs;
    if (stale) {
      try {
        const raw: unknown = await call(`inspect ${name}`, signal, (s) => container.inspect({ abortSignal: s }));
        inspect = trimInspect(raw);
        nextInspects.set(id, { data: inspect, state, fetchedAtMono: monotonicMs() });
      } catch (err) {
        if (errorDetails(err).statusCode === 404) return { row: undefined, failure: undefined };
        failure ??= err;
        // Keep the old answer (if any) for this run; it is retried next run.
        if (cached) nextInspects.set(id, cached);
      }
    } else if (cached) {
      nextInspects.set(id, cached);
    }

    const mem = stats?.memory_stats;
    return {
      row: {
        id,
        name,
        image: summary.Image || undefined,
        state,
        source: "docker",
        kind: "container",
        cpuPercent: cpu ?? 0,
        cpuLimitCores: cpuLimitCores(inspect?.HostConfig),
        memoryBytes: (state === "running" ? memoryUsedBytes(mem) : undefined) ?? 0,
        memoryLimit: memoryLimitBytes(inspect, mem),
        netRxBytes: net?.rx,
        netTxBytes: net?.tx,
        netRxRate: rxRate,
        netTxRate: txRate,
        restarts: typeof inspect?.RestartCount === "number" ? inspect.RestartCount : undefined,
        health: healthOf(summary),
        uptimeSeconds: uptimeSeconds(state, inspect, nowMs()),
      },
      failure,
    };
  };

  /** A container whose task did not start (budget spent): what the list and the cache know, no calls. */
  const bareRow = (summary: DockerContainerSummary): ContainerRow => {
    const state = summary.State ?? "unknown";
    const inspect = inspects.get(summary.Id)?.data;
    return {
      id: summary.Id,
      name: containerName(summary),
      image: summary.Image || undefined,
      state,
      source: "docker",
      kind: "container",
      cpuPercent: 0,
      cpuLimitCores: cpuLimitCores(inspect?.HostConfig),
      memoryBytes: 0,
      memoryLimit: memoryLimitBytes(inspect, undefined),
      restarts: typeof inspect?.RestartCount === "number" ? inspect.RestartCount : undefined,
      health: healthOf(summary),
      uptimeSeconds: uptimeSeconds(state, inspect, nowMs()),
    };
  };

  return {
    name: "docker",
    async collect(signal) {
      if (endpoint.socketPath && !isNamedPipe(endpoint.socketPath)) {
        try {
          await fs.promises.stat(endpoint.socketPath);
        } catch (err) {
          const { code } = errorDetails(err);
          if (code === "ENOENT" || code === "ENOTDIR") return absent(`no Docker socket at ${endpoint.socketPath}`);
          if (code === "EACCES") return absent(`no access to ${endpoint.socketPath} (${code})`);
          throw new Error(`docker: stat ${endpoint.socketPath}`, { cause: err });
        }
      }
      const docker = await getClient();
      const started = monotonicMs();
      let list: DockerContainerSummary[];
      try {
        list = parseContainerList(
          await call("list containers", signal, (s) => docker.listContainers({ all: true, abortSignal: s })),
        );
      } catch (err) {
        const { code } = errorDetails(err);
        if (code !== undefined && ABSENT_CODES.has(code) && !signal.aborted) {
          const hint =
            code === "EACCES" || code === "EPERM"
              ? " (the agent's user may not use Docker; membership of the docker group is root-equivalent)"
              : "";
          return absent(`cannot connect to ${endpoint.label}: ${code}${hint}`);
        }
        // The socket is there but nobody answers on it: Docker is installed and broken, which is worth an error.
        const hint = code === "ECONNREFUSED" ? " (is dockerd running?)" : "";
        throw new Error(`docker at ${endpoint.label}: ${describeError(err)}${hint}`, { cause: err });
      }

      const nextBaselines = new Map<string, Baseline>();
      const nextInspects = new Map<string, CachedInspect>();
      const outcomes = await mapWithLimit(
        list,
        options.concurrency,
        (c) => task(docker, c, signal, nextBaselines, nextInspects),
        () => monotonicMs() - started < options.statsBudgetMs,
      );
      signal.throwIfAborted();

      const rows: ContainerRow[] = [];
      const failures: unknown[] = [];
      let skipped = 0;
      outcomes.forEach((o, i) => {
        const summary = list[i] as DockerContainerSummary;
        if (o === undefined) {
          // Budget spent before this one started: report it bare and keep its old reading and inspect.
          skipped++;
          rows.push(bareRow(summary));
          const b = baselines.get(summary.Id);
          if (b) nextBaselines.set(summary.Id, b);
          const ins = inspects.get(summary.Id);
          if (ins) nextInspects.set(summary.Id, ins);
          return;
        }
        if (o.status === "rejected") {
          failures.push(o.reason);
          rows.push(bareRow(summary));
          return;
        }
        if (o.value.failure !== undefined) failures.push(o.value.failure);
        if (o.value.row) rows.push(o.value.row);
      });
      // Containers that are gone (or not running) drop out of both maps here.
      baselines = nextBaselines;
      inspects = nextInspects;

      if (failures.length > 0 && !partialFailing) {
        logger.warn(
          { failed: failures.length, err: describeError(failures[0]) },
          "docker stats/inspect failed for some containers; they are reported with less data",
        );
      } else if (failures.length === 0 && partialFailing) {
        logger.info("docker stats/inspect answer again for every container");
      }
      partialFailing = failures.length > 0;
      if (skipped > 0 && !budgetExceeded) {
        logger.warn(
          { skipped, budgetMs: options.statsBudgetMs },
          "docker stats budget spent; some containers are reported without stats this run",
        );
      }
      budgetExceeded = skipped > 0;
      return { present: true, rows };
    },
  };
}

/** Keeps only what the collector uses from an inspect answer (the cache holds these, not whole answers). */
export function trimInspect(raw: unknown): DockerInspect {
  const r = (raw ?? {}) as Record<string, unknown>;
  const state = (r["State"] ?? {}) as Record<string, unknown>;
  const hc = (r["HostConfig"] ?? {}) as Record<string, unknown>;
  const n = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
  const s = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
  return {
    State: { Status: s(state["Status"]), StartedAt: s(state["StartedAt"]) },
    RestartCount: n(r["RestartCount"]),
    HostConfig: {
      Memory: n(hc["Memory"]),
      NanoCpus: n(hc["NanoCpus"]),
      CpuQuota: n(hc["CpuQuota"]),
      CpuPeriod: n(hc["CpuPeriod"]),
    },
  };
}
