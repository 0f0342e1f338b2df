import type { ExecResult } from "./host-access.js";

/** True for "the program is not installed": the command runner's start error with an ENOENT cause. */
export function isNotInstalled(err: unknown): boolean {
  const code = (e: unknown): unknown => (e as NodeJS.ErrnoException | undefined)?.code;
  return code((err as { cause?: unknown } | undefined)?.cause) === "ENOENT" || code(err) === "ENOENT";
}

/**
 * An error for a command that ran but gave no usable answer: timed out, cut at `maxOutputBytes`, or a failing exit
 * with the last lines of its stderr (or stdout).
 */
export function commandFailed(what: string, res: ExecResult, maxOutputBytes: number): Error {
  if (res.timedOut) return new Error(`${what}: timed out`);
  if (res.truncated) return new Error(`${what}: output exceeded ${maxOutputBytes} bytes`);
  const tail = (res.stderr.trim() || res.stdout.trim()).split("\n").slice(-3).join(" | ").slice(0, 400);
  return new Error(`${what}: exit ${res.exitCode ?? res.signal ?? "?"}${tail ? `: ${tail}` : ""}`);
}
