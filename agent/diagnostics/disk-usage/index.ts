import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { DirUsageSchema, DiskUsageResultSchema, FileUsageSchema, type DiskUsageParams, type DiskUsageResult } from "../../../gen/spectra/v1/diagnostics_pb.js";
import type { HostAccess } from "../../host/host-access.js";
import type { DiagnosticContext, DiagnosticDefinition } from "../registry.js";
import { normalizeDiskScan } from "./params.js";
import { walk, type WalkFs } from "./walk.js";

// Hosts with a scan in progress: one at a time per agent (a second one is refused, not queued).
const running = new WeakSet<HostAccess>();

/** Test seams for {@link diskUsage}. */
export interface DiskUsageOptions {
  fs?: WalkFs;
  /** The Windows system drive ("C:"); default `%SystemDrive%`. */
  systemDrive?: string;
  now?: () => number;
}

/**
 * Runs one disk usage scan: validates the parameters (params.ts), walks the tree (walk.ts) and answers in the legacy
 * shape — root, the top_n largest directories (the root included, as its total) and files, counts, error_count,
 * partial when the file-count or time budget (or an abort) stopped it, duration and start time. On Linux the path is
 * looked up under the host root (`rootfs`, for an agent in a container) and reported without it.
 */
export async function diskUsage(params: DiskUsageParams, ctx: Pick<DiagnosticContext, "host" | "signal">, opts: DiskUsageOptions = {}): Promise<DiskUsageResult> {
  const windows = ctx.host.platform === "windows";
  const scan = normalizeDiskScan(params, ctx.host.platform, opts.systemDrive ?? process.env["SystemDrive"] ?? "C:");
  const rootfs = windows ? "" : ctx.host.paths.rootfs;
  const now = opts.now ?? Date.now;
  const startedMs = now();
  const w = await walk({
    root: rootfs + scan.root,
    topN: scan.topN,
    maxEntries: scan.maxEntries,
    timeoutMs: scan.timeoutMs,
    crossFilesystems: scan.crossFilesystems,
    signal: ctx.signal,
    pathModule: windows ? path.win32 : path.posix,
    skipPseudoFs: !windows,
    display: rootfs === "" ? (p) => p : (p) => p.slice(rootfs.length) || "/",
    now,
    ...(opts.fs ? { fs: opts.fs } : {}),
  });
  return create(DiskUsageResultSchema, {
    root: scan.root,
    topDirs: w.topDirs.map((d) => create(DirUsageSchema, { path: d.path, size: BigInt(d.size), count: BigInt(d.count) })),
    topFiles: w.topFiles.map((f) => create(FileUsageSchema, { path: f.path, size: BigInt(f.size) })),
    scannedDirs: BigInt(w.scannedDirs),
    scannedFiles: BigInt(w.scannedFiles),
    errorCount: BigInt(w.errorCount),
    partial: w.stopped !== undefined,
    durationMs: BigInt(Math.max(0, now() - startedMs)),
    scannedAt: timestampFromMs(startedMs),
  });
}

/**
 * `disk_usage`: the largest directories and files under a path (default "/" on Linux, the system drive root on
 * Windows), without following symlinks or leaving the root's filesystem unless asked, bounded by a file-count and a
 * time budget, memory bounded. The same code on both OSes (libuv fills blocks, dev and ino on Windows too).
 */
export const diskUsageDiagnostic: DiagnosticDefinition<"diskUsage"> = {
  name: "diskUsage",
  platforms: ["linux", "windows"],
  async run(params, ctx) {
    normalizeDiskScan(params, ctx.host.platform, process.env["SystemDrive"]); // refuse bad parameters before "busy"
    if (running.has(ctx.host)) throw new Error("disk_usage is already running on this agent");
    running.add(ctx.host);
    try {
      return await diskUsage(params, ctx);
    } finally {
      running.delete(ctx.host);
    }
  },
};
