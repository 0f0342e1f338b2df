import path from "node:path";
import type { Collector, CollectorContext } from "../types.js";
import { BackgroundCheck } from "./background-check.js";
import { updateStatusPayload, type UpdateReport } from "./payload.js";
import { parseWindowsUpdateResult, windowsUpdateScript } from "./windows-parse.js";

/** An online search can take many minutes on a slow update server; an offline one takes seconds. */
const SEARCH_TIMEOUT_MS = 20 * 60_000;
const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

/** Test seams for the Windows update collector. */
export interface WindowsUpdateDeps {
  /** Default `%SystemRoot%\System32\WindowsPowerShell\v1.0\powershell.exe` (absolute: CWE-427). */
  powershellPath?: string;
}

function defaultPowerShellPath(): string {
  const root = process.env["SystemRoot"] ?? process.env["windir"] ?? "C:\\Windows";
  return path.win32.join(root, "System32", "WindowsPowerShell", "v1.0", "powershell.exe");
}

/** Arguments that run `script` in a fresh PowerShell: no profile, no prompt, the script as UTF-16LE base64. */
export function powershellArgs(script: string): string[] {
  return [
    "-NoLogo",
    "-NoProfile",
    "-NonInteractive",
    "-ExecutionPolicy",
    "Bypass",
    "-EncodedCommand",
    Buffer.from(script, "utf16le").toString("base64"),
  ];
}

/**
 * Pending Windows updates through the Windows Update Agent's COM API, plus the reboot-required flag (see
 * {@link windowsUpdateScript}). The search runs in its own `powershell.exe` through the command runner, not in
 * the shared PowerShell session: a search can take minutes and would hold up every other Windows collector
 * queued behind it. Option `online` (default false) makes the agent contact the update server; by default the
 * last scan Windows made on its own is searched. A search longer than the collector timeout carries over to the
 * next run (see {@link BackgroundCheck}); to wait for it in the same run, raise `collectors.update_status.timeout`.
 */
export function createWindowsUpdateStatusCollector(ctx: CollectorContext, deps: WindowsUpdateDeps = {}): Collector {
  const online = ctx.options["online"] ?? false;
  if (typeof online !== "boolean") {
    throw new Error(`collectors.update_status.options.online: ${JSON.stringify(online)} is not true or false`);
  }
  const powershell = deps.powershellPath ?? defaultPowerShellPath();
  const args = powershellArgs(windowsUpdateScript(online));

  const background = new BackgroundCheck(async (signal): Promise<UpdateReport> => {
    const what = "Windows Update search";
    let res;
    try {
      res = await ctx.host.exec.run(powershell, args, { timeoutMs: SEARCH_TIMEOUT_MS, maxOutputBytes: MAX_OUTPUT_BYTES, signal });
    } catch (cause) {
      throw new Error(`${what}: start powershell`, { cause });
    }
    if (res.timedOut) throw new Error(`${what}: timed out after ${SEARCH_TIMEOUT_MS / 60_000} min`);
    if (res.stdout.trim() === "") {
      throw new Error(`${what}: no answer (exit ${res.exitCode ?? res.signal ?? "?"}): ${res.stderr.trim().slice(0, 400)}`);
    }
    const result = parseWindowsUpdateResult(res.stdout);
    return {
      packageManager: "windows_update",
      packages: result.packages,
      securityCount: result.packages.filter((p) => p.security).length,
      rebootRequired: result.rebootRequired,
    };
  });

  return {
    async collect(signal) {
      return [updateStatusPayload(await background.next(signal))];
    },
    close() {
      background.close();
    },
  };
}
