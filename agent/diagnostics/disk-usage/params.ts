import path from "node:path";
import type { DiskUsageParams } from "../../../gen/spectra/v1/diagnostics_pb.js";
import type { Platform } from "../../collectors/types.js";

/** `top_n` when 0: 50, as the original agent did (the server fills 20 for its own triggers). */
export const DEFAULT_TOP_N = 50;
/** Highest `top_n` (the server's cap too). */
export const MAX_TOP_N = 1000;
/** `max_files` when 0, and its cap. */
export const DEFAULT_MAX_FILES = 1_000_000;
export const MAX_MAX_FILES = 10_000_000;
/**
 * `timeout_seconds` when 0, and its cap. The cap stays under the command loop's default 120 s command timeout so a
 * scan stopped by its own budget still gets its partial result back.
 */
export const DEFAULT_TIMEOUT_SECONDS = 60;
export const MAX_TIMEOUT_SECONDS = 100;

/** Linux trees never scanned: pseudo filesystems whose "files" are kernel objects. */
const LINUX_REFUSED_ROOTS = ["/proc", "/sys", "/dev"];

/** Parameters after validation. */
export interface DiskScan {
  /** The path as reported (host view): "/var/log", "C:\\Users". */
  root: string;
  topN: number;
  crossFilesystems: boolean;
  maxEntries: number;
  timeoutMs: number;
}

/** Raised for parameters the agent refuses. */
export class InvalidDiskParamsError extends Error {
  override name = "InvalidDiskParamsError";
}

/**
 * Validates DiskUsageParams again on the agent and fills the defaults: the path ("" = "/" on Linux, the system drive
 * root on Windows, e.g. "C:\\") must be absolute, without NUL, at most 4096 characters, and is normalised ("." and
 * ".." resolved lexically, never through a link, repeated and trailing separators dropped); on Windows it must be a
 * drive path (`C:\…`; UNC and device paths `\\?\`, `\\.\` refused, as are `:` after the drive and `<>"|?*`); on
 * Linux /proc, /sys and /dev are refused. top_n 0 → 50, capped at 1000; max_files 0 → 1 000 000, capped at
 * 10 000 000; timeout_seconds 0 → 60, capped at 100. Throws {@link InvalidDiskParamsError}.
 */
export function normalizeDiskScan(params: DiskUsageParams, platform: Platform, systemDrive = "C:"): DiskScan {
  return {
    root: normalizeScanPath(params.path, platform, systemDrive),
    topN: params.topN === 0 ? DEFAULT_TOP_N : Math.min(params.topN, MAX_TOP_N),
    crossFilesystems: params.crossFilesystems,
    maxEntries: params.maxFiles === 0 ? DEFAULT_MAX_FILES : Math.min(params.maxFiles, MAX_MAX_FILES),
    timeoutMs: (params.timeoutSeconds === 0 ? DEFAULT_TIMEOUT_SECONDS : Math.min(params.timeoutSeconds, MAX_TIMEOUT_SECONDS)) * 1000,
  };
}

/** The path part of {@link normalizeDiskScan}. */
export function normalizeScanPath(input: string, platform: Platform, systemDrive = "C:"): string {
  if (input.length > 4096) throw new InvalidDiskParamsError("path is longer than 4096 characters");
  if (input.includes("\0")) throw new InvalidDiskParamsError("path contains a NUL byte");
  if (platform === "windows") {
    const raw = input === "" ? `${/^[A-Za-z]:$/.test(systemDrive) ? systemDrive : "C:"}\\` : input;
    if (!/^[A-Za-z]:[\\/]/.test(raw)) throw new InvalidDiskParamsError(`path ${JSON.stringify(raw)} must be a drive path like C:\\dir`);
    if (/[<>"|?*]/.test(raw) || raw.indexOf(":", 2) >= 0) throw new InvalidDiskParamsError(`path ${JSON.stringify(raw)} has characters Windows paths cannot have`);
    const norm = path.win32.normalize(raw);
    const trimmed = norm.length > 3 ? norm.replace(/\\+$/, "") : norm;
    return trimmed[0]!.toUpperCase() + trimmed.slice(1);
  }
  const raw = input === "" ? "/" : input;
  if (!raw.startsWith("/")) throw new InvalidDiskParamsError(`path ${JSON.stringify(raw)} must be absolute`);
  const norm = path.posix.normalize(raw);
  const trimmed = norm.length > 1 ? norm.replace(/\/+$/, "") : norm;
  for (const refused of LINUX_REFUSED_ROOTS) {
    if (trimmed === refused || trimmed.startsWith(`${refused}/`)) throw new InvalidDiskParamsError(`path ${trimmed} is a pseudo filesystem (refused)`);
  }
  return trimmed;
}
