import type { HostAccess } from "../../host/host-access.js";
import type { DiagnosticContext, DiagnosticDefinition, DiagnosticResult } from "../registry.js";
import { parseNetworkParams, type NetworkRequest } from "./params.js";

// Hosts with a network diagnostic in flight: one run per diagnostic kind at a time on an agent (issue 5).
const running = new WeakSet<HostAccess>();

async function dispatch(req: NetworkRequest, ctx: DiagnosticContext): Promise<DiagnosticResult<"networkDiag">> {
  switch (req.action) {
    case "ping":
      return (await import("./ping.js")).runPing(req, ctx);
    case "connect":
      return (await import("./connect.js")).runConnect(req, ctx);
    case "netstat":
      return (await import("./netstat.js")).runNetstat(ctx);
    case "traceroute":
      return (await import("./traceroute.js")).runTraceroute(req, ctx);
  }
}

/**
 * `network_diag`: ping, TCP connect, netstat or traceroute (legacy NETWORK_DIAG). Parameters are validated on the
 * agent before anything runs (params.ts); each action's module loads on first use:
 *
 * - ping.ts: the system ping (iputils or busybox; ping.exe) → ping_results + ping_summary;
 * - connect.ts: a TCP connect from Node → one ping_results entry ("OK" or "failed: …");
 * - netstat.ts: /proc/net/* with inode → pid (Linux); Get-NetTCPConnection / netstat -ano (Windows);
 * - traceroute.ts: traceroute, tracepath or busybox traceroute (Linux); tracert (Windows) → hops + raw_output.
 *
 * One network diagnostic runs at a time per agent; a second one meanwhile is refused ("already running").
 */
export const networkDiagDiagnostic: DiagnosticDefinition<"networkDiag"> = {
  name: "networkDiag",
  platforms: ["linux", "windows"],
  async run(params, ctx) {
    const req = parseNetworkParams(params); // refuse bad parameters before "busy"
    if (running.has(ctx.host)) throw new Error("network_diag is already running on this agent");
    running.add(ctx.host);
    try {
      return await dispatch(req, ctx);
    } finally {
      running.delete(ctx.host);
    }
  },
};
