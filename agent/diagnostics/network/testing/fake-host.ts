import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import type { Platform } from "../../../collectors/types.js";
import type { ExecOptions, ExecResult, HostAccess } from "../../../host/host-access.js";

/** Test helpers for the network diagnostics (excluded from the build). */

/** A path under testdata/. */
export const testdata = (p: string): string => fileURLToPath(new URL(`../testdata/${p}`, import.meta.url));

/** A text file under testdata/. */
export const readTestdata = (p: string): string => readFileSync(testdata(p), "utf8");

/** One recorded command. */
export interface Call {
  file: string;
  args: string[];
  opts: ExecOptions;
}

/** What the fake answers for a call: an outcome, or a start failure (`"ENOENT"` = not installed). */
export type FakeAnswer = Partial<ExecResult> | "ENOENT" | "EACCES";

/** A HostAccess whose command runner records every call and answers from `respond`. */
export function fakeHost(
  platform: Platform,
  respond: (file: string, args: readonly string[]) => FakeAnswer = () => "ENOENT",
  procRoot = "/nonexistent-proc",
): { host: HostAccess; calls: Call[] } {
  const calls: Call[] = [];
  const host: HostAccess = {
    platform,
    paths: { procRoot, sysRoot: "/nonexistent-sys", rootfs: "" },
    exec: {
      run(file, args, opts) {
        calls.push({ file, args: [...args], opts });
        const answer = respond(file, args);
        if (answer === "ENOENT" || answer === "EACCES") {
          const cause = Object.assign(new Error(`spawn ${file} ${answer}`), { code: answer });
          return Promise.reject(new Error(`run ${file}`, { cause }));
        }
        return Promise.resolve({ stdout: "", stderr: "", exitCode: 0, signal: null, timedOut: false, truncated: false, ...answer });
      },
    },
  };
  return { host, calls };
}

/**
 * A captured run: `<name>.stdout` and `<name>.stderr`, with the `exit=` and `argv:` lines that the capture
 * appended to stderr taken out again (the exit code becomes `exitCode`).
 */
export function captured(name: string): Partial<ExecResult> {
  const stdout = readTestdata(`${name}.stdout`);
  const stderrLines = readTestdata(`${name}.stderr`).split("\n");
  const exitLine = stderrLines.find((l) => l.startsWith("exit="));
  const stderr = stderrLines.filter((l) => !/^(exit=|argv:)/.test(l)).join("\n");
  return { stdout, stderr, exitCode: exitLine ? Number(exitLine.slice(5)) : 0 };
}

/** A silent logger. */
export const silentLogger = pino({ level: "silent" });

/** A signal that never aborts. */
export const neverAborts = new AbortController().signal;
