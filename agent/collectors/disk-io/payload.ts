import type { DiskIoMetrics } from "../../../gen/spectra/v1/metrics_pb.js";
import { roundBytesRate, roundRate } from "../../../common/round.js";
import type { Payload } from "../types.js";
import type { DiskIoResult } from "./parse.js";

/** Wraps one device's interval values in the `disk_io` payload (bytes per second whole, ops and ms to two decimals). */
export function diskIoPayload(device: string, r: DiskIoResult, inFlight: number): Payload {
  return {
    case: "diskIo",
    value: {
      $typeName: "spectra.v1.DiskIoMetrics",
      device,
      readBytes: roundBytesRate(r.readBytesPerSec),
      writeBytes: roundBytesRate(r.writeBytesPerSec),
      readOps: roundRate(r.readOpsPerSec),
      writeOps: roundRate(r.writeOpsPerSec),
      readTimeMs: roundRate(r.readTimeMs),
      writeTimeMs: roundRate(r.writeTimeMs),
      ioInProgress: BigInt(Math.max(0, Math.round(inFlight))),
      readLatencyMs: roundRate(r.readLatencyMs),
      writeLatencyMs: roundRate(r.writeLatencyMs),
    } satisfies DiskIoMetrics,
  };
}
