import type { HostAccess } from "../../host/host-access.js";
import type { DiagnosticDefinition } from "../registry.js";
import { normalizeLogQuery } from "./params.js";

// Hosts with a fetch_logs run in progress: one at a time per agent (a second one is refused, not queued).
const running = new WeakSet<HostAccess>();

/**
 * `fetch_logs`: system log entries at or above a severity, newest first, at most `limit` (default and cap 10 000 on
 * Linux, 25 000 on Windows). Linux: the journal, falling back to /var/log/syslog or /var/log/messages, then the
 * kernel ring buffer (linux.ts); Windows: the System and Application event logs (windows.ts). Parameters are
 * validated again here (params.ts). The per-OS module loads only on its OS.
 */
export const fetchLogsDiagnostic: DiagnosticDefinition<"fetchLogs"> = {
  name: "fetchLogs",
  platforms: ["linux", "windows"],
  async run(params, ctx) {
    const q = normalizeLogQuery(params, ctx.host.platform);
    if (running.has(ctx.host)) throw new Error("fetch_logs is already running on this agent");
    running.add(ctx.host);
    try {
      if (ctx.host.platform === "windows") return await (await import("./windows.js")).fetchLogsWindows(q, ctx);
      return await (await import("./linux.js")).fetchLogsLinux(q, ctx);
    } finally {
      running.delete(ctx.host);
    }
  },
};
