import path from "node:path";
import type { Collector, CollectorContext } from "../types.js";
import { NO_DATA } from "../types.js";
import { wifiPayload } from "./payload.js";
import { parseNetshInterfaces, windowsReading } from "./windows-parse.js";

/** netsh asks the WLAN service over RPC; it answers in well under a second unless the service hangs. */
const NETSH_TIMEOUT_MS = 10_000;
const NETSH_MAX_OUTPUT_BYTES = 256 * 1024;

/** Test seams for the Windows Wi-Fi collector. */
export interface WindowsWifiDeps {
  /** Default `%SystemRoot%\System32\netsh.exe` (absolute, so a planted netsh.exe is never run: CWE-427). */
  netshPath?: string;
}

/** The absolute path of netsh.exe. */
function defaultNetshPath(): string {
  const root = process.env["SystemRoot"] ?? process.env["windir"] ?? "C:\\Windows";
  return path.win32.join(root, "System32", "netsh.exe");
}

/**
 * Wi-Fi on Windows from `netsh wlan show interfaces`, one reading per connected interface, parsed by structure
 * and value shape so every display language works (see windows-parse.ts). netsh is a plain program, so it runs
 * through the command runner rather than the PowerShell session. No WLAN interface, a stopped WLAN service
 * (Windows Server) or no connected interface is NO_DATA; the 24H2 location-permission refusal is an error that
 * says what to change, because there is Wi-Fi that the agent is not allowed to see.
 */
export function createWindowsWifiCollector(ctx: CollectorContext, deps: WindowsWifiDeps = {}): Collector {
  const netsh = deps.netshPath ?? defaultNetshPath();
  return {
    async collect(signal) {
      let res;
      try {
        res = await ctx.host.exec.run(netsh, ["wlan", "show", "interfaces"], {
          timeoutMs: NETSH_TIMEOUT_MS,
          maxOutputBytes: NETSH_MAX_OUTPUT_BYTES,
          signal,
        });
      } catch (cause) {
        throw new Error("run netsh wlan show interfaces", { cause });
      }
      if (res.timedOut) throw new Error(`netsh wlan show interfaces timed out after ${NETSH_TIMEOUT_MS} ms`);
      const parsed = parseNetshInterfaces(res.stdout);
      if (parsed.locationPermissionDenied && parsed.interfaces.length === 0) {
        throw new Error(
          "netsh wlan show interfaces: Windows refuses WLAN details without location permission " +
            "(Settings > Privacy & security > Location: allow desktop apps to access the location)",
        );
      }
      const readings = parsed.interfaces.map(windowsReading).filter((r) => r !== undefined);
      return readings.length > 0 ? readings.map(wifiPayload) : NO_DATA;
    },
  };
}
