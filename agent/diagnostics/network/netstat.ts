import type { NetworkDiagResult } from "../../../gen/spectra/v1/diagnostics_pb.js";
import { sharedPowerShell, type PowerShellQuery } from "../../host/powershell.js";
import type { DiagnosticContext } from "../registry.js";
import { NETSTAT_TARGET } from "./params.js";
import { MAX_SOCKETS, readLinuxNetstat, type InodeScanLimits } from "./netstat-linux.js";
import { NETSTAT_SCRIPT, parseNetConnectionsJson, parseNetstatAno } from "./netstat-windows.js";
import { runFirst, windowsProgram, type Program } from "./programs.js";
import { networkResult } from "./result.js";

const PS_TIMEOUT_MS = 20_000;
const NETSTAT_EXE_TIMEOUT_MS = 20_000;
const NETSTAT_EXE_MAX_OUTPUT_BYTES = 4 * 1024 * 1024;

/** Test seams. */
export interface NetstatDeps {
  /** Windows: the PowerShell to ask (default the host's shared session). */
  powershell?: PowerShellQuery;
  /** Windows: the netstat.exe fallback (default System32\NETSTAT.EXE). */
  netstatProgram?: Program;
  /** Linux: bounds on the inode → pid scan. */
  scanLimits?: InodeScanLimits;
}

/**
 * netstat: TCP and UDP sockets, IPv4 and IPv6, target "Local System". Linux reads `<procRoot>/net/*` and maps
 * socket inodes to pids through `<procRoot>/<pid>/fd` (tool "proc"); Windows asks Get-NetTCPConnection and
 * Get-NetUDPEndpoint (tool "powershell") and falls back to `netstat -ano` (tool "netstat"). When the list was cut at
 * MAX_SOCKETS or the owner scan stopped at a bound, `raw_output` says so (the rows are still valid).
 */
export async function runNetstat(ctx: Pick<DiagnosticContext, "host" | "signal" | "logger" | "markTruncated">, deps: NetstatDeps = {}): Promise<NetworkDiagResult> {
  if (ctx.host.platform === "windows") return runNetstatWindows(ctx, deps);
  const listed = await readLinuxNetstat(ctx.host.paths.procRoot, ctx.signal, deps.scanLimits);
  const result = networkResult("netstat", NETSTAT_TARGET, "proc");
  result.netstat = listed.entries;
  const notes: string[] = [];
  if (listed.total > listed.entries.length) notes.push(`[spectra: ${listed.entries.length} of ${listed.total} sockets listed]`);
  if (listed.ownerScan.incomplete) {
    notes.push(`[spectra: owner scan stopped at a bound after ${listed.ownerScan.processesScanned} processes; some pids are missing]`);
  }
  result.rawOutput = notes.join("\n");
  if (notes.length > 0) ctx.markTruncated?.();
  return result;
}

async function runNetstatWindows(ctx: Pick<DiagnosticContext, "host" | "signal" | "logger" | "markTruncated">, deps: NetstatDeps): Promise<NetworkDiagResult> {
  let psError: unknown;
  try {
    const text = await queryPowerShell(ctx, deps.powershell);
    const result = networkResult("netstat", NETSTAT_TARGET, "powershell");
    result.netstat = parseNetConnectionsJson(text);
    if (result.netstat.length >= MAX_SOCKETS) {
      result.rawOutput = `[spectra: list cut at ${MAX_SOCKETS} sockets]`;
      ctx.markTruncated?.();
    }
    return result;
  } catch (err) {
    if (ctx.signal.aborted) throw err;
    psError = err;
    ctx.logger.debug({ err }, "Get-NetTCPConnection failed; trying netstat -ano");
  }
  const program = deps.netstatProgram ?? windowsProgram("NETSTAT.EXE", "netstat");
  const run = await runFirst(ctx.host, [program], ["-ano"], {
    timeoutMs: NETSTAT_EXE_TIMEOUT_MS,
    maxOutputBytes: NETSTAT_EXE_MAX_OUTPUT_BYTES,
    signal: ctx.signal,
  });
  if (!run || (run.result.exitCode !== 0 && run.result.stdout.trim() === "")) {
    const why = run ? run.result.stderr.trim() || `exit code ${run.result.exitCode}` : "netstat.exe not found";
    throw new Error(`netstat: PowerShell failed (${(psError as Error).message}) and netstat -ano failed (${why})`);
  }
  const result = networkResult("netstat", NETSTAT_TARGET, "netstat");
  result.netstat = parseNetstatAno(run.result.stdout);
  if (result.netstat.length >= MAX_SOCKETS) result.rawOutput = `[spectra: list cut at ${MAX_SOCKETS} sockets]`;
  return result;
}

async function queryPowerShell(ctx: Pick<DiagnosticContext, "host" | "signal" | "logger" | "markTruncated">, ps?: PowerShellQuery): Promise<string> {
  if (ps) return ps.query(NETSTAT_SCRIPT, PS_TIMEOUT_MS, ctx.signal);
  const lease = sharedPowerShell(ctx.host, { logger: ctx.logger });
  try {
    return await lease.query(NETSTAT_SCRIPT, PS_TIMEOUT_MS, ctx.signal);
  } finally {
    await lease.release();
  }
}
