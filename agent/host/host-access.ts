import type { Platform } from "../collectors/types.js";

/** Roots under which the agent reads the host; an agent in a container points them at the host's mounts. */
export interface HostPaths {
  /** Default "/proc" (SPECTRA_PROC_ROOT, `--proc-root`). */
  procRoot: string;
  /** Default "/sys" (SPECTRA_SYS_ROOT, `--sys-root`). */
  sysRoot: string;
  /** Prefix for host mount points when calling statfs; default "" (SPECTRA_ROOTFS, `--rootfs`). */
  rootfs: string;
}

/** Options for one external command. Every command has a timeout. */
export interface ExecOptions {
  timeoutMs: number;
  /** Output beyond this many bytes (stdout and stderr each) is dropped and `truncated` set; default 4 MiB. */
  maxOutputBytes?: number;
  signal?: AbortSignal;
  env?: Readonly<Record<string, string>>;
}

/** Outcome of a command that started; a non-zero exit is not an exception. */
export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number | null;
  /** Set when the process was killed by a signal (including our timeout). */
  signal: string | null;
  timedOut: boolean;
  truncated: boolean;
}

/** Runs programs with argument arrays (never a shell). Rejects when the program cannot start (ENOENT, EACCES). */
export interface CommandRunner {
  run(file: string, args: readonly string[], opts: ExecOptions): Promise<ExecResult>;
}

/** Everything a collector or diagnostic may touch on the host, injectable in tests. */
export interface HostAccess {
  platform: Platform;
  paths: HostPaths;
  exec: CommandRunner;
}
