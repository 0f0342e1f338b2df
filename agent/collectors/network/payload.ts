import type { NetworkMetrics } from "../../../gen/spectra/v1/metrics_pb.js";
import { roundBytesRate, roundRate } from "../../../common/round.js";
import type { KeyRates } from "../rate.js";
import type { Payload } from "../types.js";
import {
  NET_RX_BYTES,
  NET_RX_DROPS,
  NET_RX_ERRORS,
  NET_RX_PACKETS,
  NET_TX_BYTES,
  NET_TX_DROPS,
  NET_TX_ERRORS,
  NET_TX_PACKETS,
} from "./parse.js";

/** What is known about an interface besides its counters. */
export interface InterfaceInfo {
  /** Lower-case, colon-separated; "" when unknown. */
  mac: string;
  mtu: number;
  /** Mbit/s; 0 when unknown. */
  speedMbps: number;
}

/** Builds the `network` payload of one interface from its per-second rates (bytes whole, counts to two decimals). */
export function networkPayload(name: string, r: KeyRates, info: InterfaceInfo | undefined): Payload {
  const ps = r.perSecond;
  return {
    case: "network",
    value: {
      $typeName: "spectra.v1.NetworkMetrics",
      interface: name,
      macAddress: info?.mac ?? "",
      mtu: info?.mtu ?? 0,
      speed: BigInt(Math.round(info?.speedMbps ?? 0)),
      rxBytes: roundBytesRate(ps[NET_RX_BYTES]!),
      rxPackets: roundRate(ps[NET_RX_PACKETS]!),
      rxErrors: roundRate(ps[NET_RX_ERRORS]!),
      rxDrops: roundRate(ps[NET_RX_DROPS]!),
      txBytes: roundBytesRate(ps[NET_TX_BYTES]!),
      txPackets: roundRate(ps[NET_TX_PACKETS]!),
      txErrors: roundRate(ps[NET_TX_ERRORS]!),
      txDrops: roundRate(ps[NET_TX_DROPS]!),
    } satisfies NetworkMetrics,
  };
}
