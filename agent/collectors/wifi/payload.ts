import { create } from "@bufbuild/protobuf";
import { WifiMetricsSchema } from "../../../gen/spectra/v1/metrics_pb.js";
import type { Payload } from "../types.js";

/**
 * One connected wireless interface, in the units of the `wifi` payload. The contract has no "unknown" for
 * signal, frequency and tx bitrate, so a value no source gave is 0 (documented in index.ts).
 */
export interface WifiReading {
  interface: string;
  ssid: string;
  signalDbm: number;
  /** 0–100 on both platforms. */
  linkQuality: number;
  frequencyGhz: number;
  txBitrateMbps: number;
  rxBitrateMbps?: number;
}

/** The `wifi` payload for one interface. */
export function wifiPayload(r: WifiReading): Payload {
  return {
    case: "wifi",
    value: create(WifiMetricsSchema, {
      interface: r.interface,
      ssid: r.ssid,
      signalDbm: r.signalDbm,
      linkQuality: r.linkQuality,
      frequencyGhz: r.frequencyGhz,
      bitrateMbps: r.txBitrateMbps,
      ...(r.rxBitrateMbps !== undefined ? { rxBitrateMbps: r.rxBitrateMbps } : {}),
    }),
  };
}
