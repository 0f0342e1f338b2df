import { spawn, type ChildProcessByStdio } from "node:child_process";
import { randomBytes } from "node:crypto";
import path from "node:path";
import type { Readable, Writable } from "node:stream";
import type { Logger } from "../../common/logger.js";
import type { HostAccess } from "./host-access.js";

/** Anything that answers a PowerShell script with its text output (the session, or a fake in tests). */
export interface PowerShellQuery {
  /**
   * Runs `script` (a constant: never interpolate data into it) and resolves with what it wrote, trimmed, BOM
   * stripped. Scripts end with `ConvertTo-Json -Compress`. A script that throws answers `{"error":"…"}` (the
   * session wraps it in try/catch). Rejects on timeout, abort, or when PowerShell dies; the next query restarts it.
   */
  query(script: string, timeoutMs: number, signal?: AbortSignal): Promise<string>;
}

/** One long-lived PowerShell process serving queries one at a time. */
export interface PowerShellSession extends PowerShellQuery {
  /** Stops the process and rejects queued queries; later queries are rejected too. */
  close(): Promise<void>;
}

/** Options for {@link createPowerShellSession}; the defaults are the real Windows PowerShell 5.1. */
export interface PowerShellOptions {
  /** Program to start; default `%SystemRoot%\System32\WindowsPowerShell\v1.0\powershell.exe` (absolute: CWE-427). */
  command?: string;
  /** Default `-NoLogo -NoProfile -NonInteractive -ExecutionPolicy Bypass -Command -`. */
  args?: readonly string[];
  /** Working directory; default `%SystemRoot%\System32` with the default command, else inherited. */
  cwd?: string;
  /** Environment; default the agent's minus `SPECTRA_*` (tokens and keys stay in the agent). */
  env?: Readonly<Record<string, string>>;
  logger?: Logger;
  /** Restart the process after this many queries to bound its memory (default 500). */
  maxRequests?: number;
  /** A response longer than this kills the process and rejects the query (default 16 MiB). */
  maxResponseBytes?: number;
}

const DEFAULT_MAX_REQUESTS = 500;
const DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024;
const CLOSE_GRACE_MS = 2000;
const STDERR_TAIL_BYTES = 2048;

/**
 * Sent once after start: UTF-8 output, no progress records, errors terminate (so the per-query catch sees them).
 * One line, because `-Command -` executes its input line by line.
 */
const INIT_LINE =
  "$ProgressPreference='SilentlyContinue'; $ErrorActionPreference='Stop'; " +
  "$OutputEncoding=[Console]::OutputEncoding=New-Object System.Text.UTF8Encoding $false\n";

/**
 * Builds the single stdin line for one query. The script travels as base64 (no quoting problems, no injection
 * through the framing), runs inside try/catch, and its output is joined into one string written between a begin
 * and an end marker line, so stray output (a banner, a prompt) can never be mistaken for the answer. Exported for
 * the protocol test's fake shell.
 */
export function buildRequestLine(script: string, marker: string): string {
  const b64 = Buffer.from(script, "utf8").toString("base64");
  return (
    "& { try { $__s=[Text.Encoding]::UTF8.GetString([Convert]::FromBase64String('" +
    b64 +
    "')); $__o=(& ([ScriptBlock]::Create($__s)) | ForEach-Object { \"$_\" }) -join \"`n\" } " +
    "catch { $__o=(@{ error = $_.Exception.Message } | ConvertTo-Json -Compress) }; " +
    `[Console]::Out.Write("\`n" + '${marker}_BEGIN__' + "\`n" + $__o + "\`n" + '${marker}_END__' + "\`n"); ` +
    "[Console]::Out.Flush() }\n"
  );
}

function defaultCommand(): { command: string; cwd: string } {
  const root = process.env["SystemRoot"] ?? process.env["windir"] ?? "C:\\Windows";
  const system32 = path.win32.join(root, "System32");
  return { command: path.win32.join(system32, "WindowsPowerShell", "v1.0", "powershell.exe"), cwd: system32 };
}

function defaultEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.toUpperCase().startsWith("SPECTRA_")) env[k] = v;
  }
  return env;
}

type Child = ChildProcessByStdio<Writable, Readable, Readable>;

interface Pending {
  /** The process the query was written to: a dying predecessor must not fail its successor's query. */
  proc: Child;
  marker: string;
  resolve(text: string): void;
  reject(err: Error): void;
}

/**
 * Creates a lazily started, long-lived PowerShell (`-Command -`) that runs queries strictly one after another.
 * Each query gets a unique end marker; a timeout, an abort or an oversized answer kills the process, and the next
 * query starts a fresh one, as does a crash. Nothing is spawned until the first query.
 */
export function createPowerShellSession(options: PowerShellOptions = {}): PowerShellSession {
  const defaults = options.command === undefined ? defaultCommand() : undefined;
  const command = options.command ?? defaults!.command;
  const args = options.args ?? ["-NoLogo", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-Command", "-"];
  const cwd = options.cwd ?? defaults?.cwd;
  const maxRequests = options.maxRequests ?? DEFAULT_MAX_REQUESTS;
  const maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const logger = options.logger;

  let child: Child | undefined;
  let requests = 0;
  let stdoutText = "";
  let stderrTail = "";
  let pending: Pending | undefined;
  let queue: Promise<void> = Promise.resolve();
  let closed = false;
  const markerPrefix = `__SPECTRA_${randomBytes(8).toString("hex")}_`;
  let seq = 0;

  const stop = (proc: Child): void => {
    if (proc.exitCode === null && proc.signalCode === null) {
      try {
        proc.kill("SIGKILL");
      } catch {
        /* already gone */
      }
    }
    if (child === proc) child = undefined;
  };

  const failPending = (err: Error, proc?: Child): void => {
    const p = pending;
    if (!p || (proc !== undefined && p.proc !== proc)) return;
    pending = undefined;
    p.reject(err);
  };

  const start = (): Child => {
    const proc = spawn(command, [...args], {
      cwd,
      env: options.env ? { ...options.env } : defaultEnv(),
      stdio: ["pipe", "pipe", "pipe"],
      windowsHide: true,
    });
    child = proc;
    requests = 0;
    stdoutText = "";
    stderrTail = "";
    logger?.debug({ pid: proc.pid, command }, "powershell started");

    proc.stdout.setEncoding("utf8");
    proc.stdout.on("data", (chunk: string) => {
      if (child !== proc) return;
      stdoutText += chunk;
      const p = pending;
      if (!p) {
        // Output nobody asked for (a banner): keep only a bounded tail.
        if (stdoutText.length > 4096) stdoutText = stdoutText.slice(-4096);
        return;
      }
      const end = `\n${p.marker}_END__\n`;
      const at = stdoutText.indexOf(end);
      if (at >= 0 && at <= maxResponseBytes) {
        const begin = `\n${p.marker}_BEGIN__\n`;
        const from = stdoutText.lastIndexOf(begin, at);
        const text = from >= 0 ? stdoutText.slice(from + begin.length, at) : stdoutText.slice(0, at);
        stdoutText = stdoutText.slice(at + end.length);
        pending = undefined;
        p.resolve(text.replace(/\uFEFF/g, "").trim());
        return;
      }
      if (stdoutText.length > maxResponseBytes) {
        stop(proc);
        failPending(new Error(`powershell answer exceeds ${maxResponseBytes} bytes`), proc);
      }
    });
    proc.stderr.setEncoding("utf8");
    proc.stderr.on("data", (chunk: string) => {
      // Warnings must not truncate answers (unlike systeminformation); keep a tail for crash messages.
      stderrTail = (stderrTail + chunk).slice(-STDERR_TAIL_BYTES);
    });
    // EPIPE when the process died mid-write surfaces through 'exit'; do not crash the agent on it.
    proc.stdin.on("error", () => {});
    proc.once("error", (cause) => {
      if (child === proc) child = undefined;
      failPending(new Error(`start powershell (${command})`, { cause }), proc);
    });
    proc.once("exit", (code, signal) => {
      if (child === proc) child = undefined;
      const tail = stderrTail.trim();
      logger?.debug({ pid: proc.pid, code, signal }, "powershell exited");
      failPending(
        new Error(`powershell exited (code ${code ?? "null"}, signal ${signal ?? "none"})${tail ? `: ${tail}` : ""}`),
        proc,
      );
    });
    proc.stdin.write(INIT_LINE);
    return proc;
  };

  const runOne = (script: string, timeoutMs: number, signal?: AbortSignal): Promise<string> => {
    if (closed) return Promise.reject(new Error("powershell session closed"));
    if (signal?.aborted) return Promise.reject(new Error("powershell query aborted", { cause: signal.reason }));
    let proc: Child;
    try {
      proc = child ?? start();
    } catch (cause) {
      return Promise.reject(new Error(`start powershell (${command})`, { cause }));
    }
    const marker = `${markerPrefix}${++seq}`;
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        stop(proc);
        failPending(new Error(`powershell query timed out after ${timeoutMs} ms`), proc);
      }, timeoutMs);
      const onAbort = (): void => {
        // A running CIM call cannot be interrupted: the only way to get the session back is a fresh process.
        stop(proc);
        failPending(new Error("powershell query aborted", { cause: signal?.reason }), proc);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      pending = {
        proc,
        marker,
        resolve: (text) => {
          done();
          requests++;
          if (requests >= maxRequests) {
            logger?.debug({ requests }, "powershell recycled");
            void retire(proc);
          }
          resolve(text);
        },
        reject: (err) => {
          done();
          reject(err);
        },
      };
      proc.stdin.write(buildRequestLine(script, marker));
    });
  };

  /** Lets a process finish cleanly (`exit`), killing it if it does not. */
  const retire = (proc: Child): Promise<void> => {
    if (child === proc) child = undefined;
    if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        stop(proc);
      }, CLOSE_GRACE_MS);
      proc.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
      proc.stdin.end("exit\n");
    });
  };

  return {
    query(script, timeoutMs, signal) {
      const result = queue.then(() => runOne(script, timeoutMs, signal));
      // The queue waits for each query to settle, whatever its outcome.
      queue = result.then(
        () => undefined,
        () => undefined,
      );
      return result;
    },
    async close() {
      closed = true;
      failPending(new Error("powershell session closed"));
      const proc = child;
      if (proc) await retire(proc);
    },
  };
}

interface SharedEntry {
  session: PowerShellSession;
  refs: number;
}

const shared = new WeakMap<HostAccess, SharedEntry>();

/** A reference to the host's shared PowerShell session; `release()` closes the process after the last one. */
export interface PowerShellLease extends PowerShellQuery {
  release(): Promise<void>;
}

/**
 * The one PowerShell session of a host, shared by every Windows collector (one process for all, not one each).
 * It is keyed by the `HostAccess` object, so tests that build their own host get their own session. The options
 * apply when the first lease creates the session.
 */
export function sharedPowerShell(host: HostAccess, options: PowerShellOptions = {}): PowerShellLease {
  let entry = shared.get(host);
  if (!entry) {
    entry = { session: createPowerShellSession(options), refs: 0 };
    shared.set(host, entry);
  }
  const e = entry;
  e.refs++;
  let released = false;
  return {
    query: (script, timeoutMs, signal) => e.session.query(script, timeoutMs, signal),
    async release() {
      if (released) return;
      released = true;
      e.refs--;
      if (e.refs === 0) {
        shared.delete(host);
        await e.session.close();
      }
    },
  };
}
