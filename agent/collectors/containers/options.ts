import { parseDuration } from "../../config.js";

/** Default bound on parallel Docker stats/inspect calls and on parallel `pvesh` guest queries. */
export const DEFAULT_CONCURRENCY = 8;
/** Default timeout of one Docker API call (list, inspect, stats). */
export const DEFAULT_DOCKER_TIMEOUT_MS = 5_000;
/** Default timeout of one `pvesh` run: a Perl CLI that takes 0.5–1 s just to start (docs/data-sources.md 3.10). */
export const DEFAULT_PVESH_TIMEOUT_MS = 10_000;
/**
 * Default time a run may spend on Docker stats: calls not started by then are skipped for this run (those
 * containers are reported without stats) so a host with hundreds of containers never hits the 30 s run timeout.
 */
export const DEFAULT_STATS_BUDGET_MS = 20_000;
/** Default age after which a cached `inspect` is refreshed even when nothing else suggests a change. */
export const DEFAULT_INSPECT_TTL_MS = 5 * 60_000;

/** Validated options of the containers collector (`collectors.containers.options`). */
export interface ContainersOptions {
  /** `docker` (default true): false never touches Docker (nor loads dockerode). */
  docker: boolean;
  /**
   * `docker_socket`: a unix socket path or Windows named pipe (`unix://` / `npipe://` prefixes accepted).
   * Unset: `DOCKER_HOST` when set (dockerode's own parsing: unix, npipe, tcp, ssh), else the platform default.
   */
  dockerSocket: string | undefined;
  /** `docker_timeout` (default 5 s): per Docker API call. */
  dockerTimeoutMs: number;
  /** `stats_budget` (default 20 s): see {@link DEFAULT_STATS_BUDGET_MS}. */
  statsBudgetMs: number;
  /** `inspect_ttl` (default 5 min): see {@link DEFAULT_INSPECT_TTL_MS}. */
  inspectTtlMs: number;
  /** `proxmox` (default true): false never looks for `pvesh`. */
  proxmox: boolean;
  /** `proxmox_node`: this node's name; default `pvesh get /cluster/status` (asked once), else the short hostname. */
  proxmoxNode: string | undefined;
  /** `proxmox_guest_status` (default true): also ask `…/status/current` per running guest (one pvesh each). */
  proxmoxGuestStatus: boolean;
  /** `pvesh_timeout` (default 10 s): per `pvesh` run. */
  pveshTimeoutMs: number;
  /** `concurrency` (default 8, 1–64): parallel Docker calls, and parallel `pvesh` guest queries. */
  concurrency: number;
}

/** Node names as Proxmox allows them (also what we accept from config before putting one in an argument). */
export const NODE_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9.-]{0,62}$/;

/**
 * Reads and validates the options once, at creation: a bad value stops the collector from starting with a clear
 * message instead of failing every run. Unknown keys are ignored.
 */
export function readContainersOptions(options: Readonly<Record<string, unknown>>): ContainersOptions {
  const socket = options["docker_socket"];
  if (socket !== undefined && socket !== null && (typeof socket !== "string" || socket.trim() === "")) {
    throw new Error(`collectors.containers.options.docker_socket must be a socket path, got ${JSON.stringify(socket)}`);
  }
  const node = options["proxmox_node"];
  if (node !== undefined && node !== null && (typeof node !== "string" || !NODE_NAME_RE.test(node))) {
    throw new Error(
      `collectors.containers.options.proxmox_node must be a Proxmox node name, got ${JSON.stringify(node)}`,
    );
  }
  const concurrency = options["concurrency"] ?? DEFAULT_CONCURRENCY;
  if (typeof concurrency !== "number" || !Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) {
    throw new Error(
      `collectors.containers.options.concurrency must be an integer from 1 to 64, got ${JSON.stringify(concurrency)}`,
    );
  }
  return {
    docker: bool(options, "docker", true),
    dockerSocket: typeof socket === "string" ? socket.trim() : undefined,
    dockerTimeoutMs: duration(options, "docker_timeout", DEFAULT_DOCKER_TIMEOUT_MS, 100),
    statsBudgetMs: duration(options, "stats_budget", DEFAULT_STATS_BUDGET_MS, 0),
    inspectTtlMs: duration(options, "inspect_ttl", DEFAULT_INSPECT_TTL_MS, 0),
    proxmox: bool(options, "proxmox", true),
    proxmoxNode: typeof node === "string" ? node : undefined,
    proxmoxGuestStatus: bool(options, "proxmox_guest_status", true),
    pveshTimeoutMs: duration(options, "pvesh_timeout", DEFAULT_PVESH_TIMEOUT_MS, 100),
    concurrency,
  };
}

function bool(options: Readonly<Record<string, unknown>>, key: string, def: boolean): boolean {
  const v = options[key];
  if (v === undefined || v === null) return def;
  if (typeof v !== "boolean")
    throw new Error(`collectors.containers.options.${key} must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

/** Duration option (ms number or "5s"); throws a config-style error when it is not a duration ≥ `minMs`. */
function duration(options: Readonly<Record<string, unknown>>, key: string, def: number, minMs: number): number {
  const raw = options[key];
  if (raw === undefined || raw === null) return def;
  const ms = parseDuration(raw);
  if (ms === undefined || ms < minMs || ms > 10 * 60_000) {
    throw new Error(
      `collectors.containers.options.${key}: ${JSON.stringify(raw)} is not a duration from ${minMs} ms to 10m`,
    );
  }
  return ms;
}
