import { create } from "@bufbuild/protobuf";
import { ContainerInfoSchema, ContainerListSchema } from "../../../gen/spectra/v1/metrics_pb.js";
import { roundBytesRate, roundPercent } from "../../../common/round.js";
import type { Payload } from "../types.js";

/**
 * One container or guest, source-neutral, before it becomes a `ContainerInfo`. Optional fields stay undefined
 * when the source cannot tell (never a made-up 0). CPU % is of ONE core (100 = one core busy), for Docker (the
 * docker CLI's convention) and Proxmox (the legacy `cpu × maxcpu × 100`) alike.
 */
export interface ContainerRow {
  /** Docker: the full container id; Proxmox: `qemu/<vmid>` or `lxc/<vmid>`. */
  id: string;
  name: string;
  image?: string | undefined;
  /** Docker: running, paused, exited, created, restarting, removing, dead; Proxmox: running, stopped, paused, … */
  state: string;
  source: "docker" | "proxmox";
  kind: "container" | "lxc" | "vm";
  /** 0 when not measured this run (not running, first sight without a previous sample, stats skipped). */
  cpuPercent: number;
  cpuLimitCores?: number | undefined;
  /** 0 when not measured (not running). */
  memoryBytes: number;
  memoryLimit?: number | undefined;
  netRxBytes?: number | undefined;
  netTxBytes?: number | undefined;
  /** Bytes per second over the interval; absent without a usable previous reading. */
  netRxRate?: number | undefined;
  netTxRate?: number | undefined;
  restarts?: number | undefined;
  health?: string | undefined;
  diskBytes?: number | undefined;
  diskLimit?: number | undefined;
  uptimeSeconds?: number | undefined;
}

/**
 * Builds the `container_list` payload (rows sorted by source, then name, for stable output); CPU % to two decimals,
 * network rates in whole bytes per second.
 */
export function containerListPayload(rows: readonly ContainerRow[]): Payload {
  const sorted = [...rows].sort(
    (a, b) => a.source.localeCompare(b.source) || a.name.localeCompare(b.name) || a.id.localeCompare(b.id),
  );
  return {
    case: "containerList",
    value: create(ContainerListSchema, {
      containers: sorted.map((r) =>
        create(ContainerInfoSchema, {
          id: r.id,
          name: r.name,
          image: r.image,
          state: r.state,
          source: r.source,
          kind: r.kind,
          cpuPercent: roundPercent(finite(r.cpuPercent) ?? 0),
          cpuLimitCores: finite(r.cpuLimitCores),
          memoryBytes: u64(r.memoryBytes) ?? 0n,
          memoryLimit: u64(r.memoryLimit),
          netRxBytes: u64(r.netRxBytes),
          netTxBytes: u64(r.netTxBytes),
          restarts: r.restarts === undefined ? undefined : Math.max(0, Math.min(0xffff_ffff, Math.round(r.restarts))),
          health: r.health,
          diskBytes: u64(r.diskBytes),
          diskLimit: u64(r.diskLimit),
          uptimeSeconds: u64(r.uptimeSeconds),
          netRxRate: roundOptional(finite(r.netRxRate), roundBytesRate),
          netTxRate: roundOptional(finite(r.netTxRate), roundBytesRate),
        }),
      ),
    }),
  };
}

function roundOptional(v: number | undefined, round: (x: number) => number): number | undefined {
  return v === undefined ? undefined : round(v);
}

function finite(v: number | undefined): number | undefined {
  return v !== undefined && Number.isFinite(v) ? v : undefined;
}

/** A non-negative integer as uint64; undefined for undefined, NaN or negative garbage. */
function u64(v: number | undefined): bigint | undefined {
  if (v === undefined || !Number.isFinite(v) || v < 0) return undefined;
  return BigInt(Math.round(v));
}
