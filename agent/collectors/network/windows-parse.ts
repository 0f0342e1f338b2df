import { parsePsList, psNumber, psString } from "../ps-json.js";
import type { InterfaceInfo } from "./payload.js";

/**
 * Parses `Get-NetAdapterStatistics` (sample: testdata/windows/net-adapter-statistics.t0.json) into the same
 * counter vectors as `/proc/net/dev`: packets are unicast + multicast + broadcast, errors are
 * Received/OutboundPacketErrors, drops Received/OutboundDiscardedPackets. Keyed by adapter Name ("Ethernet").
 */
export function parseNetAdapterStatistics(text: string): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const o of parsePsList(text, "Get-NetAdapterStatistics")) {
    const name = psString(o["Name"]);
    if (name === "") continue;
    const n = (k: string): number => psNumber(o[k]) ?? 0;
    out.set(name, [
      n("ReceivedBytes"),
      n("ReceivedUnicastPackets") + n("ReceivedMulticastPackets") + n("ReceivedBroadcastPackets"),
      n("ReceivedPacketErrors"),
      n("ReceivedDiscardedPackets"),
      n("SentBytes"),
      n("SentUnicastPackets") + n("SentMulticastPackets") + n("SentBroadcastPackets"),
      n("OutboundPacketErrors"),
      n("OutboundDiscardedPackets"),
    ]);
  }
  return out;
}

/**
 * Parses `Get-NetAdapter` (sample: testdata/windows/net-adapter.json): MAC "00-15-5D-01-02-03" becomes
 * "00:15:5d:01:02:03", MtuSize the MTU, Speed (bit/s) Mbit/s.
 */
export function parseNetAdapters(text: string): Map<string, InterfaceInfo> {
  const out = new Map<string, InterfaceInfo>();
  for (const o of parsePsList(text, "Get-NetAdapter")) {
    const name = psString(o["Name"]);
    if (name === "") continue;
    const speed = psNumber(o["Speed"]) ?? 0;
    out.set(name, {
      mac: psString(o["MacAddress"]).replaceAll("-", ":").toLowerCase(),
      mtu: psNumber(o["MtuSize"]) ?? 0,
      speedMbps: speed > 0 ? speed / 1_000_000 : 0,
    });
  }
  return out;
}
