import path from "node:path";
import type { ExecOptions, ExecResult, HostAccess } from "../../host/host-access.js";

/** One way to start a tool: an absolute path, fixed leading arguments (a busybox applet name) and a display name. */
export interface Program {
  file: string;
  /** Arguments before the tool's own (`["ping"]` for `busybox ping`). */
  prefix: readonly string[];
  /** What `NetworkDiagResult.tool` reports. */
  tool: string;
}

/** Fixed directories searched on Linux (never the agent's PATH or working directory). */
const LINUX_DIRS = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"] as const;

/** The absolute candidates for a Linux tool, in search order. */
export function linuxPrograms(name: string, tool = name): Program[] {
  return LINUX_DIRS.map((dir) => ({ file: `${dir}/${name}`, prefix: [], tool }));
}

/** A busybox applet (Alpine, minimal images, or a host with busybox but not the tool). */
export function busyboxPrograms(applet: string): Program[] {
  return ["/usr/bin/busybox", "/bin/busybox"].map((file) => ({ file, prefix: [applet], tool: `busybox ${applet}` }));
}

/** `%SystemRoot%\System32\<exe>`: absolute, so a planted binary in the working directory or PATH never runs (CWE-427). */
export function windowsProgram(exe: string, tool: string): Program {
  const root = process.env["SystemRoot"] ?? process.env["windir"] ?? "C:\\Windows";
  return { file: path.win32.join(root, "System32", exe), prefix: [], tool };
}

/** What {@link runFirst} ran. */
export interface ProgramRun {
  program: Program;
  result: ExecResult;
}

function startErrorCode(err: unknown): string | undefined {
  const cause = (err as { cause?: NodeJS.ErrnoException } | undefined)?.cause;
  return cause?.code ?? (err as NodeJS.ErrnoException | undefined)?.code;
}

/** busybox without the applet: `<applet>: applet not found`, exit 127. */
function isMissingApplet(program: Program, result: ExecResult): boolean {
  return program.prefix.length > 0 && result.exitCode === 127 && /applet not found/i.test(result.stderr);
}

/**
 * Runs the first candidate that exists with `args` (after its prefix), through the host's command runner (argument
 * arrays, no shell, timeout, output cap). A candidate that is absent (ENOENT, ENOTDIR) or a busybox without the
 * applet is skipped; any other start failure (EACCES) is thrown. Returns undefined when no candidate exists.
 */
export async function runFirst(
  host: Pick<HostAccess, "exec">,
  candidates: readonly Program[],
  args: readonly string[],
  opts: ExecOptions,
): Promise<ProgramRun | undefined> {
  for (const program of candidates) {
    let result: ExecResult;
    try {
      result = await host.exec.run(program.file, [...program.prefix, ...args], opts);
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      const code = startErrorCode(err);
      if (code === "ENOENT" || code === "ENOTDIR") continue;
      throw err;
    }
    if (isMissingApplet(program, result)) continue;
    return { program, result };
  }
  return undefined;
}

/**
 * Milliseconds as printed by ping and traceroute ("0.297", "12", "<1") to nanoseconds, exactly (decimal string
 * arithmetic, no float rounding). "<1" (Windows: under a millisecond) counts as 0.5 ms. Undefined for anything else.
 */
export function msToNs(text: string): bigint | undefined {
  if (text.startsWith("<")) return text === "<1" ? 500_000n : undefined;
  const m = /^(\d+)(?:\.(\d+))?$/.exec(text);
  if (!m) return undefined;
  const frac = (m[2] ?? "").slice(0, 6).padEnd(6, "0");
  return BigInt(m[1] ?? "0") * 1_000_000n + BigInt(frac);
}

/** Keeps at most `max` characters of raw program text, saying so when it cut. */
export function capText(text: string, max: number): string {
  if (text.length <= max) return text;
  return `${text.slice(0, max)}\n[spectra: output cut at ${max} characters]`;
}
