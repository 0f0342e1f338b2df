import { create } from "@bufbuild/protobuf";
import { SystemMetricsSchema } from "../../../gen/spectra/v1/metrics_pb.js";
import type { Payload } from "../types.js";

/** Builds the `system` payload (seconds are whole seconds). */
export function systemPayload(uptimeSec: number, bootTimeSec: number, processes: number, users: number): Payload {
  return {
    case: "system",
    value: create(SystemMetricsSchema, {
      uptime: BigInt(Math.max(0, Math.floor(uptimeSec))),
      bootTime: BigInt(Math.max(0, Math.floor(bootTimeSec))),
      processes,
      users,
    }),
  };
}
