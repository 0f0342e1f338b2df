import { sharedPowerShell, type PowerShellQuery } from "../../host/powershell.js";
import { RateTracker } from "../rate.js";
import type { Collector, CollectorContext, Payload } from "../types.js";
import { excludeOption, selectInterfaces } from "./parse.js";
import { networkPayload, type InterfaceInfo } from "./payload.js";
import { parseNetAdapterStatistics, parseNetAdapters } from "./windows-parse.js";
import { monotonicMs } from "../../clock.js";

/** All adapters' counters in one call (docs/data-sources.md 3.5), every run. */
export const ADAPTER_STATISTICS_SCRIPT =
  "ConvertTo-Json -Compress -InputObject @(Get-NetAdapterStatistics | Select-Object Name,ReceivedBytes," +
  "ReceivedUnicastPackets,ReceivedMulticastPackets,ReceivedBroadcastPackets,ReceivedPacketErrors," +
  "ReceivedDiscardedPackets,SentBytes,SentUnicastPackets,SentMulticastPackets,SentBroadcastPackets," +
  "OutboundPacketErrors,OutboundDiscardedPackets)";

/** MAC, MTU and speed: asked for now and then, not every run. */
export const ADAPTER_INFO_SCRIPT =
  "ConvertTo-Json -Compress -InputObject @(Get-NetAdapter | Select-Object Name,InterfaceDescription,MacAddress,MtuSize,Speed)";

const INFO_REFRESH_RUNS = 12;
const QUERY_TIMEOUT_MS = 10_000;

/** Test seams for the Windows network collector. */
export interface WindowsNetworkDeps {
  ps?: PowerShellQuery;
  now?: () => number;
}

/**
 * Network per adapter on Windows: `Get-NetAdapterStatistics` deltas every run, `Get-NetAdapter` details at the
 * first run, every 12 runs and when an unknown adapter shows up. Option `exclude` as on Linux. The first run
 * returns [] (baseline).
 */
export function createWindowsNetworkCollector(ctx: CollectorContext, deps: WindowsNetworkDeps = {}): Collector {
  const lease = deps.ps ? undefined : sharedPowerShell(ctx.host, { logger: ctx.logger });
  const ps = deps.ps ?? lease!;
  const now = deps.now ?? (() => monotonicMs());
  const exclude = excludeOption(ctx.options, []);
  const tracker = new RateTracker();
  let info = new Map<string, InterfaceInfo>();
  let runsSinceInfo = Infinity;
  return {
    async collect(signal) {
      const stats = parseNetAdapterStatistics(await ps.query(ADAPTER_STATISTICS_SCRIPT, QUERY_TIMEOUT_MS, signal));
      const { counters, unknown } = selectInterfaces(stats, exclude, info);
      const rates = tracker.update(counters, now());
      runsSinceInfo++;
      if (unknown || runsSinceInfo >= INFO_REFRESH_RUNS) {
        info = parseNetAdapters(await ps.query(ADAPTER_INFO_SCRIPT, QUERY_TIMEOUT_MS, signal));
        // Adapters Get-NetAdapter does not list keep an empty entry so they do not trigger a query every run.
        for (const name of counters.keys()) if (!info.has(name)) info.set(name, { mac: "", mtu: 0, speedMbps: 0 });
        runsSinceInfo = 0;
      }
      if (!rates) return [];
      const out: Payload[] = [];
      for (const [name, r] of rates) out.push(networkPayload(name, r, info.get(name)));
      return out;
    },
    async close() {
      await lease?.release();
    },
  };
}
