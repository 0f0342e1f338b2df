/**
 * Pure functions over the Docker Engine API's JSON (as dockerode returns it): container list, inspect and
 * stats. Samples in `testdata/docker/` (real, Engine 20.10 on cgroup v1) and `testdata/handwritten/` (cgroup v2,
 * Windows, two networks). Every field is treated as possibly missing: stopped containers return zeroed stats,
 * cgroup v2 and Windows leave whole groups out, and old engines lack newer fields.
 */

/** `cpu_stats` / `precpu_stats` of a stats answer. */
export interface DockerCpuStats {
  cpu_usage?: { total_usage?: number; percpu_usage?: number[] | null };
  /** Host CPU time in ns (Linux only). */
  system_cpu_usage?: number;
  online_cpus?: number;
}

/** `memory_stats` of a stats answer. */
export interface DockerMemoryStats {
  usage?: number;
  limit?: number;
  /** cgroup v1 (`total_inactive_file`, `cache`, …) or v2 (`inactive_file`, `file`, …) counters. */
  stats?: Record<string, number>;
  /** Windows containers. */
  privateworkingset?: number;
  commitbytes?: number;
}

/** One entry of `networks` in a stats answer. */
export interface DockerNetworkStats {
  rx_bytes?: number;
  tx_bytes?: number;
}

/** `GET /containers/{id}/stats` (one-shot or not). */
export interface DockerStats {
  read?: string;
  preread?: string;
  /** Windows: number of processors. */
  num_procs?: number;
  cpu_stats?: DockerCpuStats;
  precpu_stats?: DockerCpuStats;
  memory_stats?: DockerMemoryStats;
  /** Absent for `--network none` and `--network host`. */
  networks?: Record<string, DockerNetworkStats>;
}

/** One entry of `GET /containers/json?all=true`. */
export interface DockerContainerSummary {
  Id: string;
  Names?: string[];
  Image?: string;
  State?: string;
  /** Human text made by the daemon: "Up 2 minutes (healthy)", "Exited (3) 2 seconds ago", … */
  Status?: string;
  /** Newer engines (API 1.52+) add the health status here. */
  Health?: { Status?: string } | null;
}

/** The parts of `GET /containers/{id}/json` the collector keeps (cached per container). */
export interface DockerInspect {
  State?: { Status?: string; StartedAt?: string; Health?: { Status?: string } | null };
  RestartCount?: number;
  HostConfig?: { Memory?: number; NanoCpus?: number; CpuQuota?: number; CpuPeriod?: number };
}

/** The counters of one stats answer that later runs compare against. */
export interface CpuSample {
  /** Container CPU time: ns on Linux, 100 ns units on Windows. */
  totalUsage: number;
  /** Host CPU time in ns (Linux); undefined on Windows. */
  systemUsage: number | undefined;
  onlineCpus: number;
  /** Wall time of the reading in ms since the epoch (`read`/`preread`), undefined when zero or unparsable. */
  readMs: number | undefined;
}

/** The zero time the engine writes for stopped containers and for `preread` of one-shot answers. */
const ZERO_TIME_PREFIX = "0001-01-01";

function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

/** A Docker timestamp (RFC 3339 with ns) as ms since the epoch; undefined for the zero time or garbage. */
export function dockerTimeMs(text: string | undefined): number | undefined {
  if (typeof text !== "string" || text === "" || text.startsWith(ZERO_TIME_PREFIX)) return undefined;
  const ms = Date.parse(text);
  return Number.isFinite(ms) ? ms : undefined;
}

/**
 * Validates the list answer: an array of objects with a string `Id`; anything else is skipped. Throws when the
 * answer is not an array at all (a proxy or a wrong socket answering).
 */
export function parseContainerList(json: unknown): DockerContainerSummary[] {
  if (!Array.isArray(json)) throw new Error(`container list is not an array: ${JSON.stringify(json)?.slice(0, 200)}`);
  return json.filter(
    (c): c is DockerContainerSummary =>
      typeof c === "object" &&
      c !== null &&
      typeof (c as { Id?: unknown }).Id === "string" &&
      (c as { Id: string }).Id !== "",
  );
}

/** The name the docker CLI shows: the first of `Names` without its leading "/", else the short id. */
export function containerName(c: DockerContainerSummary): string {
  const first = c.Names?.find((n) => typeof n === "string" && n !== "");
  return first ? first.replace(/^\//, "") : c.Id.slice(0, 12);
}

/**
 * Health from the list answer, so it is fresh every run without an inspect: the `Health` field of newer engines,
 * else the suffix the daemon puts on `Status` ("(healthy)", "(unhealthy)", "(health: starting)"). Undefined
 * when the container has no health check.
 */
export function healthOf(c: DockerContainerSummary): string | undefined {
  const field = c.Health?.Status;
  if (typeof field === "string" && field !== "" && field !== "none") return field;
  const m = /\((healthy|unhealthy|health: starting)\)\s*$/.exec(c.Status ?? "");
  if (!m) return undefined;
  return m[1] === "health: starting" ? "starting" : m[1];
}

/**
 * CPU limit in cores from the host config: `NanoCpus` (`--cpus`), else `CpuQuota / CpuPeriod` (`--cpu-quota`;
 * the period defaults to 100 ms). Undefined when unlimited. (`--cpuset-cpus` is a placement, not a limit here.)
 */
export function cpuLimitCores(hostConfig: DockerInspect["HostConfig"]): number | undefined {
  const nano = num(hostConfig?.NanoCpus);
  if (nano !== undefined && nano > 0) return nano / 1e9;
  const quota = num(hostConfig?.CpuQuota);
  if (quota !== undefined && quota > 0) {
    const period = num(hostConfig?.CpuPeriod);
    return quota / (period !== undefined && period > 0 ? period : 100_000);
  }
  return undefined;
}

/**
 * Memory in use without reclaimable page cache, as the docker CLI shows it (`calculateMemUsageUnixNoCache`):
 * cgroup v1 `usage − total_inactive_file`, cgroup v2 `usage − inactive_file`, each only when smaller than usage;
 * otherwise `usage`. NOT `usage − cache`: shmem (tmpfs, /dev/shm) is counted in `cache` but cannot be reclaimed
 * (spectra-mem in the fixtures: 40 MiB of shmem, used = usage = 42369024 B, "usage − cache" would say 0.4 MiB).
 * Windows containers: `privateworkingset`. Undefined when the answer has no memory usage (stopped container).
 */
export function memoryUsedBytes(mem: DockerMemoryStats | undefined): number | undefined {
  if (!mem) return undefined;
  const pws = num(mem.privateworkingset);
  const usage = num(mem.usage);
  if (usage === undefined) return pws;
  const stats = mem.stats ?? {};
  const v1 = num(stats["total_inactive_file"]);
  if (v1 !== undefined && v1 < usage) return usage - v1;
  const v2 = num(stats["inactive_file"]);
  if (v2 !== undefined && v2 < usage) return usage - v2;
  return usage;
}

/**
 * Memory limit: the configured limit (`HostConfig.Memory` > 0), reported as the engine's effective value from the
 * stats answer when there is one. Undefined when unlimited — the stats `limit` is then just the host's RAM.
 */
export function memoryLimitBytes(
  inspect: DockerInspect | undefined,
  mem: DockerMemoryStats | undefined,
): number | undefined {
  const configured = num(inspect?.HostConfig?.Memory);
  if (configured === undefined || configured <= 0) return undefined;
  const effective = num(mem?.limit);
  return effective !== undefined && effective > 0 ? effective : configured;
}

/** rx/tx bytes summed over ALL networks of the container; undefined when it has none (`--network none`/`host`). */
export function networkTotals(stats: DockerStats): { rx: number; tx: number } | undefined {
  const nets = stats.networks;
  if (!nets || typeof nets !== "object") return undefined;
  let rx = 0;
  let tx = 0;
  let any = false;
  for (const n of Object.values(nets)) {
    if (!n || typeof n !== "object") continue;
    rx += num(n.rx_bytes) ?? 0;
    tx += num(n.tx_bytes) ?? 0;
    any = true;
  }
  return any ? { rx, tx } : undefined;
}

/**
 * The CPU counters of `cpu_stats` (with `read`) or `precpu_stats` (with `preread`). Undefined when the group
 * is empty: one-shot answers zero `precpu_stats`, stopped containers zero both.
 */
export function cpuSample(stats: DockerStats, which: "cpu_stats" | "precpu_stats"): CpuSample | undefined {
  const cpu = stats[which];
  const total = num(cpu?.cpu_usage?.total_usage);
  const system = num(cpu?.system_cpu_usage);
  const readMs = dockerTimeMs(which === "cpu_stats" ? stats.read : stats.preread);
  if (total === undefined || (system === undefined && readMs === undefined)) return undefined;
  // An all-zero group is "no reading", not a reading of zero.
  if (total === 0 && !system) return undefined;
  const percpu = cpu?.cpu_usage?.percpu_usage;
  const online =
    num(cpu?.online_cpus) ||
    (Array.isArray(percpu) && percpu.length > 0 ? percpu.length : undefined) ||
    num(stats.num_procs) ||
    1;
  return { totalUsage: total, systemUsage: system || undefined, onlineCpus: online, readMs };
}

/**
 * CPU % of ONE core between two samples of the same container (100 = one core busy; a container limited to 0.5
 * CPU tops out near 50). Linux, as the docker CLI (`calculateCPUPercentUnix`):
 * `Δcontainer / Δhost × online_cpus × 100`. Windows (no host counter; container time in 100 ns units):
 * `Δcontainer / Δwall` — the CLI's per-machine figure times the processor count, to keep the per-core convention.
 * Undefined when the counters went backwards (the container restarted: a new cgroup) or no time passed; 0 when
 * the container used nothing.
 */
export function cpuPercent(prev: CpuSample, cur: CpuSample): number | undefined {
  const cpuDelta = cur.totalUsage - prev.totalUsage;
  if (!(cpuDelta >= 0)) return undefined;
  if (cur.systemUsage !== undefined && prev.systemUsage !== undefined) {
    const sysDelta = cur.systemUsage - prev.systemUsage;
    if (!(sysDelta > 0)) return undefined;
    return (cpuDelta / sysDelta) * cur.onlineCpus * 100;
  }
  if (cur.readMs === undefined || prev.readMs === undefined) return undefined;
  const wall100ns = (cur.readMs - prev.readMs) * 10_000;
  if (!(wall100ns > 0)) return undefined;
  return (cpuDelta / wall100ns) * 100;
}

/** Seconds since `State.StartedAt`, for a container that is up (running or paused); undefined otherwise. */
export function uptimeSeconds(state: string, inspect: DockerInspect | undefined, nowMs: number): number | undefined {
  if (state !== "running" && state !== "paused") return undefined;
  const started = dockerTimeMs(inspect?.State?.StartedAt);
  if (started === undefined) return undefined;
  return Math.max(0, Math.floor((nowMs - started) / 1000));
}
