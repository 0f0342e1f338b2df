import type { Logger } from "../../common/logger.js";
import type { MetricEnvelope } from "../../gen/spectra/v1/metrics_pb.js";
import type { HostAccess } from "../host/host-access.js";

/** One typed payload of a metric envelope (the `oneof payload` with its case set). */
export type Payload = Exclude<MetricEnvelope["payload"], { case: undefined }>;

/** Operating systems the agent knows. */
export type Platform = "linux" | "windows";

/** Returned by a collector when absence is normal on this host (no Wi-Fi card, no sensors). */
export const NO_DATA: unique symbol = Symbol("spectra.no-data");
export type NoData = typeof NO_DATA;

/** What a collector instance gets at creation. */
export interface CollectorContext {
  host: HostAccess;
  logger: Logger;
  /** Collector-specific options from the config file (`collectors.<name>.*`), already validated by the caller. */
  options: Readonly<Record<string, unknown>>;
}

/** A running collector; keeps its own state (previous counters for rates). */
export interface Collector {
  /**
   * Collects one round. Throws on failure (the scheduler turns it into a status). Returns [] when it only took a
   * baseline (rates need two readings) and NO_DATA when the source is absent on this host.
   */
  collect(signal: AbortSignal): Promise<Payload[] | NoData>;
  /** Releases resources (long-lived child processes, sockets). */
  close?(): Promise<void> | void;
}

/** Definition of a collector: one lowercase name used for folder, config key, log field and proto field. */
export interface CollectorDefinition {
  name: string;
  defaultIntervalMs: number;
  platforms: readonly Platform[];
  create(ctx: CollectorContext): Collector | Promise<Collector>;
}
