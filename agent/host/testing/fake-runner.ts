import type { CommandRunner, ExecOptions, ExecResult } from "../host-access.js";

/** Test helpers for code that runs programs through the command runner (excluded from the build). */

/** One recorded command. */
export interface Call {
  file: string;
  args: readonly string[];
  opts: ExecOptions;
}

/** What a fake answers: an outcome (missing fields default to a clean exit 0), or an error to throw. */
export type Answer = Partial<ExecResult> | Error;

/** The error the real runner throws when a program is not installed. */
export function enoent(file: string): Error {
  return new Error(`run ${file}`, { cause: Object.assign(new Error(`spawn ${file} ENOENT`), { code: "ENOENT" }) });
}

/** A command runner that answers from a function and records every call. */
export function fakeRunner(
  answer: (file: string, args: readonly string[]) => Answer | Promise<Answer>,
): CommandRunner & { calls: Call[] } {
  const calls: Call[] = [];
  return {
    calls,
    async run(file, args, opts) {
      calls.push({ file, args, opts });
      const a = await answer(file, args);
      if (a instanceof Error) throw a;
      return { stdout: "", stderr: "", exitCode: 0, signal: null, timedOut: false, truncated: false, ...a };
    },
  };
}

/**
 * A command runner that answers from a table keyed by the whole command line (`"dpkg-query -W ..."`); a command
 * not in the table is "not installed" (ENOENT). Entries may be functions, called on each run.
 */
export function fakeRunnerTable(
  table: Record<string, Answer | Promise<Answer> | (() => Answer | Promise<Answer>)>,
): CommandRunner & { calls: Call[] } {
  return fakeRunner((file, args) => {
    const entry = table[[file, ...args].join(" ")];
    if (entry === undefined) return enoent(file);
    return typeof entry === "function" ? entry() : entry;
  });
}
