import type { MetricEnvelope } from "../../gen/spectra/v1/metrics_pb.js";

/**
 * The series key of an envelope inside its type: what tells two samples of one type and host apart
 * (a mount, a block device, an interface, a sensor). Host-wide types have the key "".
 */
export function envelopeKey(env: MetricEnvelope): string {
  const p = env.payload;
  switch (p.case) {
    case "disk":
      return p.value.mountpoint;
    case "diskIo":
      return p.value.device;
    case "network":
    case "wifi":
      return p.value.interface;
    case "temperature":
      return p.value.sensor;
    case "process":
      return String(p.value.pid);
    case "service":
      return p.value.name;
    case "container":
      return `${p.value.source}/${p.value.id}`;
    default:
      return "";
  }
}

/** An envelope's timestamp in whole milliseconds (sub-millisecond nanos dropped), or `fallbackMs` when it has none. */
export function envelopeTimeMs(env: MetricEnvelope, fallbackMs: number): number {
  const ts = env.timestamp;
  return ts ? Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6) : fallbackMs;
}
