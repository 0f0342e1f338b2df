import type { CollectorDefinition } from "../types.js";

/**
 * `wifi`: one payload per associated wireless interface every 30 s: SSID, signal (dBm), link quality (0–100 %),
 * frequency (GHz), tx bitrate (`bitrate_mbps`) and rx bitrate (Mbit/s). Linux reads `/proc/net/wireless` and asks
 * `iw dev <if> link`; Windows parses `netsh wlan show interfaces` whatever the display language. A host without
 * Wi-Fi, or with Wi-Fi that is not associated, gives NO_DATA quietly.
 *
 * Units and gaps: link quality is a percentage on both platforms (Linux: the cfg80211 quality 0–70 scaled to
 * 100; Windows: netsh's "Signal"). Windows signal dBm is netsh's RSSI where printed (24H2+), else estimated from
 * the percentage as `quality / 2 - 100` (Microsoft: 0 % = -100 dBm, 100 % = -50 dBm, linear). Signal, frequency
 * and tx bitrate are not optional in the contract, so a value no source gave (iw missing) is sent as 0.
 */
const wifi: CollectorDefinition = {
  name: "wifi",
  defaultIntervalMs: 30_000,
  platforms: ["linux", "windows"],
  async create(ctx) {
    if (ctx.host.platform === "windows") return (await import("./windows.js")).createWindowsWifiCollector(ctx);
    return (await import("./linux.js")).createLinuxWifiCollector(ctx);
  },
};

export default wifi;
