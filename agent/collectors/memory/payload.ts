import type { MemoryMetrics } from "../../../gen/spectra/v1/metrics_pb.js";
import { roundPercent } from "../../../common/round.js";
import type { Payload } from "../types.js";
import type { MemoryResult } from "./parse.js";

/** Wraps memory values in the `memory` payload (byte counts as uint64, percentages to two decimals). */
export function memoryPayload(r: MemoryResult): Payload {
  return {
    case: "memory",
    value: {
      $typeName: "spectra.v1.MemoryMetrics",
      ramTotal: BigInt(Math.round(r.ramTotal)),
      ramUsed: BigInt(Math.round(r.ramUsed)),
      ramAvailable: BigInt(Math.round(r.ramAvailable)),
      ramUsedPct: roundPercent(r.ramUsedPct),
      swapTotal: BigInt(Math.round(r.swapTotal)),
      swapUsed: BigInt(Math.round(r.swapUsed)),
      swapPct: roundPercent(r.swapPct),
    } satisfies MemoryMetrics,
  };
}
