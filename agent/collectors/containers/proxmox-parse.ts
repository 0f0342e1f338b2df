import type { ContainerRow } from "./payload.js";

/**
 * Pure functions over `pvesh … --output-format json` (docs/data-sources.md 3.10; field names from pve-manager's
 * `PVE/API2/Cluster.pm` and `extract_vm_stats`). The samples in `testdata/pvesh/` are HAND-WRITTEN: no Proxmox
 * node was available to capture from.
 */

/** vmids as Proxmox allows them; checked before a vmid goes into a `pvesh` argument. */
export const VMID_RE = /^\d{1,9}$/;

/** One guest of `pvesh get /cluster/resources --type vm`. */
export interface PveResource {
  /** `qemu/100`, `lxc/101`. */
  id: string;
  type: "qemu" | "lxc";
  vmid: number;
  node: string;
  name: string | undefined;
  /** running, stopped, unknown. */
  status: string;
  template: boolean;
  /** Fraction 0–1 of `maxcpu` cores. */
  cpu: number | undefined;
  maxcpu: number | undefined;
  mem: number | undefined;
  maxmem: number | undefined;
  disk: number | undefined;
  maxdisk: number | undefined;
  /** Cumulative bytes since the guest started (guest's view: `netin` = received by the guest). */
  netin: number | undefined;
  netout: number | undefined;
  uptime: number | undefined;
}

/** The fields of `pvesh get /nodes/<node>/{qemu,lxc}/<vmid>/status/current` the collector uses. */
export interface PveGuestStatus {
  status: string | undefined;
  /** qemu only: running, paused, suspended, prelaunch, … (a paused VM still has `status: running`). */
  qmpstatus: string | undefined;
  cpu: number | undefined;
  cpus: number | undefined;
  mem: number | undefined;
  maxmem: number | undefined;
  disk: number | undefined;
  maxdisk: number | undefined;
  uptime: number | undefined;
}

/** pvesh writes numbers, but some API fields come out as strings on some versions: accept both. */
function num(v: unknown): number | undefined {
  if (typeof v === "number") return Number.isFinite(v) ? v : undefined;
  if (typeof v === "string" && /^-?\d+(\.\d+)?(e[+-]?\d+)?$/i.test(v.trim())) return Number(v);
  return undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new Error(`${what}: not JSON: ${JSON.stringify(text.slice(0, 200))}`, { cause });
  }
}

/**
 * Parses the guest list. Throws when the output is not a JSON array; entries that are not qemu/lxc guests with a
 * valid vmid and node are skipped (they never reach a command line).
 */
export function parseClusterResources(text: string): PveResource[] {
  const json = parseJson(text, "pvesh /cluster/resources");
  if (!Array.isArray(json)) throw new Error(`pvesh /cluster/resources: not a JSON array: ${text.slice(0, 200)}`);
  const out: PveResource[] = [];
  for (const e of json as unknown[]) {
    if (!e || typeof e !== "object") continue;
    const r = e as Record<string, unknown>;
    const type = r["type"];
    if (type !== "qemu" && type !== "lxc") continue;
    const vmid = num(r["vmid"]);
    const node = str(r["node"]);
    if (vmid === undefined || !VMID_RE.test(String(vmid)) || node === undefined) continue;
    out.push({
      id: str(r["id"]) ?? `${type}/${vmid}`,
      type,
      vmid,
      node,
      name: str(r["name"]),
      status: str(r["status"]) ?? "unknown",
      template: num(r["template"]) === 1 || r["template"] === true,
      cpu: num(r["cpu"]),
      maxcpu: num(r["maxcpu"]),
      mem: num(r["mem"]),
      maxmem: num(r["maxmem"]),
      disk: num(r["disk"]),
      maxdisk: num(r["maxdisk"]),
      netin: num(r["netin"]),
      netout: num(r["netout"]),
      uptime: num(r["uptime"]),
    });
  }
  return out;
}

/** Parses one guest's `status/current`; throws when it is not a JSON object. */
export function parseGuestStatus(text: string): PveGuestStatus {
  const json = parseJson(text, "pvesh status/current");
  if (!json || typeof json !== "object" || Array.isArray(json))
    throw new Error(`pvesh status/current: not a JSON object: ${text.slice(0, 200)}`);
  const r = json as Record<string, unknown>;
  return {
    status: str(r["status"]),
    qmpstatus: str(r["qmpstatus"]),
    cpu: num(r["cpu"]),
    cpus: num(r["cpus"]),
    mem: num(r["mem"]),
    maxmem: num(r["maxmem"]),
    disk: num(r["disk"]),
    maxdisk: num(r["maxdisk"]),
    uptime: num(r["uptime"]),
  };
}

/** The local node's name from `pvesh get /cluster/status` (the `type: node` entry with `local: 1`). */
export function parseLocalNode(text: string): string | undefined {
  const json = parseJson(text, "pvesh /cluster/status");
  if (!Array.isArray(json)) return undefined;
  for (const e of json as unknown[]) {
    if (!e || typeof e !== "object") continue;
    const r = e as Record<string, unknown>;
    if (r["type"] === "node" && (num(r["local"]) === 1 || r["local"] === true) && typeof r["name"] === "string")
      return r["name"];
  }
  return undefined;
}

/**
 * CPU % in the legacy agent's convention: Proxmox reports `cpu` as a 0–1 fraction of `maxcpu` cores, so
 * cpu% = cpu × maxcpu × 100 — percent of ONE core, like Docker's (a 4-core VM with all cores busy is 400).
 */
export function proxmoxCpuPercent(cpu: number | undefined, maxcpu: number | undefined): number {
  if (cpu === undefined || maxcpu === undefined || !(cpu >= 0) || !(maxcpu > 0)) return 0;
  return cpu * maxcpu * 100;
}

/**
 * One guest as a row (without rates). The list gives everything; the live `status/current`, when there is one,
 * refines the state (a paused or suspended VM is `running` in the list), memory, disk and uptime. CPU % stays
 * the list's: pvestatd computes it over its running interval, while a fresh `pvesh` process has no previous
 * reading to compute a delta from (PVE's `vmstatus` keeps that in process memory).
 */
export function guestRow(res: PveResource, live: PveGuestStatus | undefined): ContainerRow {
  let state = live?.status ?? res.status;
  if (state === "running" && live?.qmpstatus && live.qmpstatus !== "running") state = live.qmpstatus;
  const up = state !== "stopped";
  const positive = (v: number | undefined): number | undefined => (v !== undefined && v > 0 ? v : undefined);
  const disk = live?.disk ?? res.disk;
  const uptime = live?.uptime ?? res.uptime;
  const cpu =
    res.cpu !== undefined
      ? proxmoxCpuPercent(res.cpu, res.maxcpu ?? live?.cpus)
      : proxmoxCpuPercent(live?.cpu, live?.cpus);
  return {
    id: res.id,
    name: res.name ?? res.id,
    state,
    source: "proxmox",
    kind: res.type === "lxc" ? "lxc" : "vm",
    cpuPercent: up ? cpu : 0,
    cpuLimitCores: positive(res.maxcpu ?? live?.cpus),
    memoryBytes: up ? (live?.mem ?? res.mem ?? 0) : 0,
    memoryLimit: positive(live?.maxmem ?? res.maxmem),
    // A VM's `disk` is 0 unless a guest agent reports it: 0 there means "unknown", not "empty".
    diskBytes: res.type === "lxc" ? disk : positive(disk),
    diskLimit: positive(live?.maxdisk ?? res.maxdisk),
    netRxBytes: res.netin,
    netTxBytes: res.netout,
    uptimeSeconds: up && uptime !== undefined && uptime > 0 ? Math.floor(uptime) : undefined,
  };
}
