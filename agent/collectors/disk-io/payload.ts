import { create } from "@bufbuild/protobuf";
import { DiskIoMetricsSchema } from "../../../gen/spectra/v1/metrics_pb.js";
import type { Payload } from "../types.js";
import type { DiskIoResult } from "./parse.js";

/** Wraps one device's interval values in the `disk_io` payload. */
export function diskIoPayload(device: string, r: DiskIoResult, inFlight: number): Payload {
  return {
    case: "diskIo",
    value: create(DiskIoMetricsSchema, {
      device,
      readBytes: r.readBytesPerSec,
      writeBytes: r.writeBytesPerSec,
      readOps: r.readOpsPerSec,
      writeOps: r.writeOpsPerSec,
      readTimeMs: r.readTimeMs,
      writeTimeMs: r.writeTimeMs,
      ioInProgress: BigInt(Math.max(0, Math.round(inFlight))),
      readLatencyMs: r.readLatencyMs,
      writeLatencyMs: r.writeLatencyMs,
    }),
  };
}
