import type { ChildProcessByStdio } from "node:child_process";
import { createRequire } from "node:module";
import type { Readable } from "node:stream";
import type { Platform } from "../collectors/types.js";
import type { CommandRunner, ExecOptions, ExecResult } from "./host-access.js";
import { detectPlatform } from "./platform.js";

/** Default cap on stdout and stderr, each (matches the doc of `ExecOptions.maxOutputBytes`). */
export const DEFAULT_MAX_OUTPUT_BYTES = 4 * 1024 * 1024;

/** How long to wait for the pipes to close after the process exited (a grandchild may still hold them). */
const PIPE_GRACE_MS = 200;

/** Options for {@link createCommandRunner}. */
export interface CommandRunnerOptions {
  /** Defaults to the detected platform; decides process-group kills and the default environment. */
  platform?: Platform;
}

/**
 * Creates the agent's {@link CommandRunner}: `spawn(file, args)` without a shell, stdin closed, a minimal
 * environment unless `opts.env` is given (the agent's secrets never reach children), a mandatory timeout that
 * SIGKILLs the process (its whole process group on Linux) and sets `timedOut`, per-stream output caps (the
 * process is killed once a cap is reached and `truncated` is set), and abort support. Resolves with the outcome
 * for any process that started, whatever its exit; rejects when it could not start (ENOENT, EACCES) or when the
 * signal aborted the run.
 */
export function createCommandRunner(options: CommandRunnerOptions = {}): CommandRunner {
  const platform = options.platform ?? detectPlatform();
  return {
    run: (file, args, opts) => runCommand(platform, file, args, opts),
  };
}

/** The environment children get when the caller passes none: enough to find programs, stable C-locale output. */
function defaultEnv(platform: Platform): Record<string, string> {
  const env: Record<string, string> = {};
  if (platform === "windows") {
    // Windows programs (PowerShell, WMI) misbehave without these.
    for (const key of ["SystemRoot", "windir", "SystemDrive", "PATH", "Path", "PATHEXT", "TEMP", "TMP", "ComSpec"]) {
      const v = process.env[key];
      if (v !== undefined) env[key] = v;
    }
    return env;
  }
  env["PATH"] = process.env["PATH"] ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  env["LANG"] = "C";
  env["LC_ALL"] = "C";
  return env;
}

/**
 * node:child_process, loaded at the first command rather than when the agent starts: the core collectors run no
 * command on Linux, and loading it costs ~0.3 MiB of RSS (docs/benchmarks.md, "Agent footprint", 2026-11-28).
 */
let spawn: typeof import("node:child_process").spawn | undefined;
function loadSpawn(): typeof import("node:child_process").spawn {
  return (spawn ??= (createRequire(import.meta.url)("node:child_process") as typeof import("node:child_process")).spawn);
}

function abortError(signal: AbortSignal): Error {
  const err = new Error("command aborted", { cause: signal.reason });
  err.name = "AbortError";
  return err;
}

function runCommand(
  platform: Platform,
  file: string,
  args: readonly string[],
  opts: ExecOptions,
): Promise<ExecResult> {
  const maxBytes = opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  const signal = opts.signal;
  if (signal?.aborted) return Promise.reject(abortError(signal));
  if (!(opts.timeoutMs > 0)) return Promise.reject(new Error(`run ${file}: timeoutMs must be > 0`));

  return new Promise<ExecResult>((resolve, reject) => {
    // On Linux the child leads its own process group so a timeout kills tools that fork (traceroute, sh -c).
    const usesGroup = platform === "linux";
    let child: ChildProcessByStdio<null, Readable, Readable>;
    try {
      child = loadSpawn()(file, [...args], {
        shell: false,
        stdio: ["ignore", "pipe", "pipe"],
        env: opts.env ? { ...opts.env } : defaultEnv(platform),
        detached: usesGroup,
        windowsHide: true,
      });
    } catch (cause) {
      // spawn throws synchronously for invalid arguments (NUL bytes, bad types).
      reject(new Error(`run ${file}`, { cause }));
      return;
    }

    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    let truncated = false;
    let timedOut = false;
    let aborted = false;
    let spawned = false;
    let settled = false;
    let exitCode: number | null = null;
    let exitSignal: string | null = null;
    let graceTimer: NodeJS.Timeout | undefined;

    const kill = (): void => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      try {
        if (usesGroup && child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
        else child.kill("SIGKILL");
      } catch {
        // The group may already be gone; fall back to the direct child.
        try {
          child.kill("SIGKILL");
        } catch {
          /* already dead */
        }
      }
    };

    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, opts.timeoutMs);

    const onAbort = (): void => {
      aborted = true;
      kill();
    };
    signal?.addEventListener("abort", onAbort, { once: true });

    const cleanup = (): void => {
      clearTimeout(timer);
      if (graceTimer) clearTimeout(graceTimer);
      signal?.removeEventListener("abort", onAbort);
    };

    const finish = (): void => {
      if (settled) return;
      settled = true;
      cleanup();
      if (aborted && signal) {
        reject(abortError(signal));
        return;
      }
      resolve({
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        exitCode,
        signal: exitSignal,
        timedOut,
        truncated,
      });
    };

    const collect = (chunks: Buffer[], chunk: Buffer, used: number): number => {
      const room = maxBytes - used;
      if (chunk.length > room) {
        if (room > 0) chunks.push(chunk.subarray(0, room));
        truncated = true;
        // Nothing more will be kept: stop the producer instead of letting it run until the timeout.
        kill();
        return maxBytes;
      }
      chunks.push(chunk);
      return used + chunk.length;
    };

    child.stdout.on("data", (chunk: Buffer) => {
      outBytes = collect(out, chunk, outBytes);
    });
    child.stderr.on("data", (chunk: Buffer) => {
      errBytes = collect(err, chunk, errBytes);
    });

    child.once("spawn", () => {
      spawned = true;
    });
    child.once("error", (cause) => {
      if (settled) return;
      if (!spawned) {
        settled = true;
        cleanup();
        reject(new Error(`run ${file}`, { cause }));
        return;
      }
      // An error after start (kill failed): report what we have.
      finish();
    });
    child.once("exit", (code, sig) => {
      exitCode = code;
      exitSignal = sig;
      // 'close' normally follows; if a grandchild keeps the pipes open, do not wait for it forever.
      graceTimer = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        finish();
      }, PIPE_GRACE_MS);
    });
    child.once("close", (code, sig) => {
      exitCode = code ?? exitCode;
      exitSignal = sig ?? exitSignal;
      finish();
    });
  });
}
